"""The shared adapter suite, second half: what every adapter tells the engine agrees with the chain.

The engine knows protocols only through `LendingAdapter`: a snapshot (prices with their feeds'
``updatedAt``, reference prices, tokens, spenders, feeds), a screen, quotes that name the prices
they depend on, cash sharing, feed updates and what-if shocks. Each is checked here against the
contracts' own views, for every protocol, on the session devnet.
"""

from __future__ import annotations

import random
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest

from keeper.chain.rpc import HttpRpc
from keeper.devnet.abi import decode_result, encode_call
from keeper.devnet.feeds import set_price
from keeper.protocols.base import LendingAdapter, PositionKey
from tests.conftest import Devnet

from .adapter_support import PROTOCOLS, Follower, execute, make_adapter, position_change_txs

pytestmark = pytest.mark.integration


def view(devnet: Devnet, to: str, signature: str, out: list[str], *args: object) -> tuple[object, ...]:
    return tuple(decode_result(out, devnet.rpc.eth_call(to, encode_call(signature, *args))))


def liquidatable_keys(adapter: LendingAdapter, timestamp: int) -> set[PositionKey]:
    return {PositionKey(h.market, h.user) for h in adapter.health(timestamp) if h.liquidatable}


def uint(devnet: Devnet, to: str, signature: str, *args: object) -> int:
    return int(str(view(devnet, to, signature, ["uint256"], *args)[0]))


def oracle_prices(protocol: str, devnet: Devnet) -> dict[str, int]:
    """What the protocol's own oracle says, keyed like `MarketSnapshot.prices` (lowercase)."""
    if protocol == "aave_v3":
        oracle = devnet.summary["aave"]["oracle"]
        return {
            a.lower(): uint(devnet, oracle, "getAssetPrice(address)", a)
            for a in devnet.summary["aave"]["reserves"].values()
        }
    return {
        m["id"].lower(): uint(devnet, m["oracle"], "price()")
        for m in devnet.summary["morpho"]["market_params"]
    }


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_snapshot_prices_tokens_and_spenders_are_the_chains(chain: Devnet, protocol: str) -> None:
    async with HttpRpc(chain.summary["rpc_url"]) as rpc:
        follower = Follower(make_adapter(protocol, chain), rpc)
        block = await follower.sync()
        adapter = follower.adapter
        snapshot = adapter.snapshot()
        assert {k.lower(): p.price for k, p in snapshot.prices.items()} == oracle_prices(protocol, chain)
        if protocol == "aave_v3":
            assert snapshot.price_kind == "asset"
            assert set(snapshot.feeds.values()) == set(snapshot.prices)
            for feed, asset in snapshot.feeds.items():
                round_data = view(
                    chain, feed, "latestRoundData()", ["uint80", "int256", "uint256", "uint256", "uint80"]
                )
                updated_at = int(str(round_data[3]))
                assert snapshot.prices[asset].updated_at == updated_at
                assert 0 <= block.timestamp - updated_at < 86_400
            assert set(snapshot.reference_prices) == set(snapshot.prices)
            for asset, price in snapshot.reference_prices.items():
                assert price.price == snapshot.prices[asset].price
                assert price.decimals == view(chain, asset, "decimals()", ["uint8"])[0]
            spender = chain.summary["aave"]["pool"]
        else:
            assert snapshot.price_kind == "market"
            assert snapshot.feeds == {} and snapshot.reference_prices == {}
            spender = chain.summary["morpho"]["address"]
        assert all(p.price > 0 for p in snapshot.prices.values())
        # every token a position can hold or owe is named; every debt token has its spender
        markets = chain.summary["morpho"]["market_params"]
        expected_tokens = (
            set(chain.summary["aave"]["reserves"].values())
            if protocol == "aave_v3"
            else {m[side] for m in markets for side in ("loan_token", "collateral_token")}
        )
        assert {t.lower() for t in snapshot.tokens} == {t.lower() for t in expected_tokens}
        assert set(snapshot.spenders) <= snapshot.tokens
        assert set(snapshot.spenders.values()) == {spender}
        if protocol == "morpho_blue":
            assert {t.lower() for t in snapshot.spenders} == {m["loan_token"].lower() for m in markets}


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_screen_flags_every_position_the_exact_maths_calls_liquidatable(
    chain: Devnet, protocol: str
) -> None:
    set_price(chain.rpc, "WETH", move=Decimal("-22"))
    async with HttpRpc(chain.summary["rpc_url"]) as rpc:
        follower = Follower(make_adapter(protocol, chain), rpc)
        block = await follower.sync()
        adapter = follower.adapter
        at = block.timestamp + 1
        exact = liquidatable_keys(adapter, at)
        assert exact, "the shock made nothing liquidatable: the test proves too little"
        screen = adapter.screen()
        estimates = screen.estimates(at, None)
        assert len(estimates) == len(adapter.tracked())
        rows = {screen.key(row): float(estimates[row]) for row in range(len(estimates))}
        assert set(rows) == set(adapter.tracked())
        flagged = {key for key, estimate in rows.items() if estimate < 1 + screen.margin}
        assert exact <= flagged
        assert len(flagged) <= len(exact) + max(3, len(exact) // 10), "the screen should be tight"
        # quotes name the prices they depend on, and only prices the snapshot has
        prices = adapter.snapshot().prices
        quotes = [q for q in (adapter.quote(key, at) for key in sorted(exact)) if q is not None]
        assert quotes
        for quote in quotes:
            assert quote.priced_by and quote.priced_by <= set(prices)
            if protocol == "aave_v3":
                assert {quote.collateral_asset, quote.debt_asset} <= quote.priced_by
            else:
                assert quote.priced_by == {quote.market}
            target, _ = adapter.liquidation_call(quote)
            assert adapter.snapshot().spenders[quote.debt_asset] == target
        shared = adapter.share_cash(quotes)
        assert [(q.market, q.user, q.debt_repaid) for q in shared] == [
            (q.market, q.user, q.debt_repaid) for q in quotes
        ]
        # positions change on chain; refreshing only the rows they touched equals a rebuild
        execute(chain, position_change_txs(protocol, chain, adapter, block.timestamp, random.Random(5)))
        later = (await follower.follow()).timestamp + 1
        assert follower.last_touched, "the changes must reach the adapter through logs"
        untouched = screen.estimates(later, set())  # every row still on its state before the changes
        incremental = screen.estimates(later, follower.last_touched)
        moved = {screen.key(row) for row in np.flatnonzero(incremental != untouched)}
        assert moved, "no touched row moved: the check proves nothing"
        assert moved <= follower.last_touched
        assert np.array_equal(incremental, screen.estimates(later, None))


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_shocked_copy_predicts_the_real_shock(chain: Devnet, protocol: str) -> None:
    async with HttpRpc(chain.summary["rpc_url"]) as rpc:
        follower = Follower(make_adapter(protocol, chain), rpc)
        block = await follower.sync()
        adapter = follower.adapter
        weth = chain.summary["aave"]["reserves"]["WETH"]
        at = block.timestamp + 1
        before = liquidatable_keys(adapter, at)
        unshocked = adapter.shocked({})
        assert liquidatable_keys(unshocked, at) == before
        predicted = liquidatable_keys(adapter.shocked({weth: Fraction(-25, 100)}), at)
        assert liquidatable_keys(adapter, at) == before, "the original must be left untouched"
        set_price(chain.rpc, "WETH", move=Decimal("-25"))
        await follower.follow()
        assert predicted == liquidatable_keys(follower.adapter, at)
        assert len(predicted) > len(before)


async def test_feed_updates_name_the_asset_and_the_new_answer(chain: Devnet) -> None:
    async with HttpRpc(chain.summary["rpc_url"]) as rpc:
        aave = Follower(make_adapter("aave_v3", chain), rpc)
        morpho = Follower(make_adapter("morpho_blue", chain), rpc)
        await aave.sync()
        await morpho.sync()
        update = set_price(chain.rpc, "WBTC", move=Decimal("-5"))
        receipt = chain.rpc.call("eth_getTransactionReceipt", [update.tx])
        feeds = aave.adapter.feed_updates(receipt["logs"])
        assert [(f.feed, f.answer) for f in feeds] == [(update.feed, update.new_answer)]
        assert feeds[0].price_key == chain.summary["aave"]["reserves"]["WBTC"]
        assert aave.adapter.snapshot().feeds[update.feed] == feeds[0].price_key
        assert morpho.adapter.feed_updates(receipt["logs"]) == []
