"""The local Uniswap V3 swap maths pays exactly what QuoterV2 (the pool's own `swap`) says, on the
devnet's real pools: both directions, amounts from a few units to more than the pools' in-range
depth (crossing the ±3 % and ±40 % ranges' ticks), at the seeded prices and after a -25 % move."""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal

import pytest

from keeper.chain.multicall import Call, aggregate3
from keeper.chain.rpc import HttpRpc
from keeper.devnet.feeds import set_price
from keeper.execution.flash import QUOTE_EXACT_INPUT_SINGLE
from keeper.execution.venues import PoolBook, discover_pools, refresh_pools
from keeper.math.uniswap_v3 import exact_input
from tests.conftest import Devnet

pytestmark = pytest.mark.integration

AMOUNTS_PER_POOL_AND_SIDE = 40


def _book(devnet: Devnet) -> tuple[PoolBook, list[tuple[str, str, int, int]]]:
    """The pools read at head, and the sales to compare: (token in, token out, fee, amount)."""
    s = devnet.summary["uniswap_v3"]
    tokens = {p[k] for p in s["pools"] for k in ("token0", "token1")}

    async def read() -> PoolBook:
        async with HttpRpc(devnet.summary["rpc_url"]) as rpc:
            book = await discover_pools(rpc, s["factory"], tokens, s["fee_tiers"])
            await refresh_pools(rpc, book, "latest")
            return book

    book = asyncio.run(read())
    rng = random.Random(7)
    sales = []
    for pool in s["pools"]:
        for token_in, token_out in ((pool["token0"], pool["token1"]), (pool["token1"], pool["token0"])):
            balance = int(
                devnet.rpc.eth_call(
                    token_in, bytes.fromhex("70a08231") + bytes(12) + bytes.fromhex(pool["address"][2:])
                ).hex(),
                16,
            )
            for _ in range(AMOUNTS_PER_POOL_AND_SIDE):
                amount = int(balance * 10 ** rng.uniform(-9, 0.3)) + 1  # up to twice the pool's balance
                sales.append((token_in, token_out, pool["fee"], amount))
    return book, sales


def _quoted(devnet: Devnet, sales: list[tuple[str, str, int, int]]) -> list[int | None]:
    quoter = devnet.summary["uniswap_v3"]["quoter"]

    async def read() -> list[int | None]:
        async with HttpRpc(devnet.summary["rpc_url"]) as rpc:
            calls = [
                Call(
                    quoter,
                    QUOTE_EXACT_INPUT_SINGLE.call(
                        {"tokenIn": a, "tokenOut": b, "amountIn": n, "fee": fee, "sqrtPriceLimitX96": 0}
                    ),
                    allow_failure=True,
                )
                for a, b, fee, n in sales
            ]
            results = await aggregate3(rpc, calls, "latest")
        return [
            QUOTE_EXACT_INPUT_SINGLE.decode(r.data)["amountOut"] if r.success and len(r.data) >= 128 else None
            for r in results
        ]

    return asyncio.run(read())


def _compare(devnet: Devnet) -> tuple[int, int]:
    book, sales = _book(devnet)
    assert len(book.states) == len(devnet.summary["uniswap_v3"]["pools"])
    quotes = _quoted(devnet, sales)
    local = []
    for token_in, token_out, fee, amount in sales:
        found = book.state(token_in, token_out, fee)
        assert found is not None
        state, zero_for_one = found
        local.append(exact_input(state, zero_for_one, amount))
    compared = [(q, x) for q, x in zip(quotes, local, strict=True) if x is not None]
    assert [
        (sale, q, x) for sale, q, x in zip(sales, quotes, local, strict=True) if x is not None and q != x
    ] == []
    return len(compared), len(sales)


def test_local_swaps_equal_the_quoter_at_the_seeded_prices(chain: Devnet) -> None:
    compared, tried = _compare(chain)
    assert compared >= tried * 3 // 4, (compared, tried)  # the rest: more than the pool can fill


def test_local_swaps_equal_the_quoter_after_a_crash_moved_the_pools(chain: Devnet) -> None:
    set_price(chain.rpc, "WETH", move=Decimal("-25"))
    compared, tried = _compare(chain)
    assert compared >= tried * 3 // 4, (compared, tried)
