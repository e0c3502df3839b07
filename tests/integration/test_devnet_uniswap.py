"""The devnet's Uniswap V3: real pools at the feed prices, real depth, and pools that follow the feeds.

Read back from the contracts on a real Anvil: the factory's pools, their slot0, the quoter's quote
against the router's real swap, and the arbitrage swaps `devnet price` mines with a feed update.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from eth_utils.crypto import keccak

from keeper.devnet.abi import decode_result, encode_call
from keeper.devnet.feeds import set_price
from keeper.devnet.rpc import Rpc
from keeper.devnet.seed import AAVE_PROFILES
from keeper.devnet.spec import MORPHO_MARKETS, UNISWAP_POOLS, UniswapPoolSpec, asset
from keeper.devnet.toolchain import pool_init_code_hash, toolchain, uniswap_artifact
from keeper.devnet.uniswap import pool_address, pool_layout, sell_to_move, sorted_pair
from keeper.devnet.uniswap_math import TICK_SPACINGS, price_of, sqrt_price_x96, tick_of
from tests.conftest import Devnet, run_keeper

from .helpers import MAX_UINT, send, view

SWAPPER = "0x00000000000000000000000000000000005a77e2"
SWAP_PARAMS = "(address,address,uint24,address,uint256,uint256,uint256,uint160)"
QUOTE_PARAMS = "(address,address,uint256,uint24,uint160)"
SWAP_TOPIC = "0x" + keccak(text="Swap(address,address,int256,int256,uint160,uint128,int24)").hex()
ANSWER_UPDATED = "0x" + keccak(text="AnswerUpdated(int256,uint256,uint256)").hex()


def symbols(devnet: Devnet) -> dict[str, str]:
    return {token: symbol for symbol, token in devnet.summary["aave"]["reserves"].items()}


def pools_by_pair(devnet: Devnet) -> dict[tuple[frozenset[str], int], dict[str, Any]]:
    names = symbols(devnet)
    return {
        (frozenset((names[p["token0"]], names[p["token1"]])), p["fee"]): p
        for p in devnet.summary["uniswap_v3"]["pools"]
    }


def slot0_sqrt_price(rpc: Rpc, pool: str) -> tuple[int, int]:
    sqrt_x96, tick = view(rpc, pool, "slot0()", ["uint160", "int24"])
    return int(sqrt_x96), int(tick)


def feed_ratio_sqrt_price(devnet: Devnet, symbol0: str, symbol1: str) -> int:
    rpc, feeds = devnet.rpc, devnet.summary["feeds"]
    (answer0,) = view(rpc, feeds[symbol0], "latestAnswer()", ["int256"])
    (answer1,) = view(rpc, feeds[symbol1], "latestAnswer()", ["int256"])
    return sqrt_price_x96(answer0, asset(symbol0).decimals, answer1, asset(symbol1).decimals)


def test_every_collateral_debt_pair_of_both_protocols_has_a_pool(devnet: Devnet) -> None:
    pairs = {
        frozenset((collateral, debt))
        for _, collaterals, debts, _ in AAVE_PROFILES
        for collateral in collaterals
        for debt in debts
        if collateral != debt
    }
    pairs |= {frozenset((m.loan, m.collateral)) for m in MORPHO_MARKETS}
    pooled = {pair for pair, _ in pools_by_pair(devnet)}
    assert pairs <= pooled and len(pairs) == 5
    assert len(devnet.summary["uniswap_v3"]["pools"]) == len(UNISWAP_POOLS)


def test_the_periphery_finds_the_factory_pools_at_their_create2_address(devnet: Devnet) -> None:
    """POOL_INIT_CODE_HASH in the periphery libraries is the hash of the pool code the factory
    deploys: otherwise the router and quoter would compute addresses with no pool there."""
    chain = toolchain()
    init_hash = pool_init_code_hash(chain)
    pool_code = bytes.fromhex(uniswap_artifact(chain, "UniswapV3Pool").bytecode.removeprefix("0x"))
    assert keccak(pool_code) == init_hash
    rpc, uni = devnet.rpc, devnet.summary["uniswap_v3"]
    for p in uni["pools"]:
        (on_chain,) = view(
            rpc,
            uni["factory"],
            "getPool(address,address,uint24)",
            ["address"],
            p["token1"],
            p["token0"],
            p["fee"],
        )
        assert on_chain.lower() == p["address"].lower()
        assert pool_address(uni["factory"], p["token0"], p["token1"], p["fee"], init_hash) == p["address"]
        assert rpc.call("eth_getCode", [p["address"], "latest"]) not in ("0x", "0x0")
        (factory,) = view(rpc, uni["position_manager"], "factory()", ["address"])
        assert factory.lower() == uni["factory"].lower()


def test_pools_start_at_the_feed_ratio_with_their_liquidity(devnet: Devnet) -> None:
    rpc, names = devnet.rpc, symbols(devnet)
    for p in devnet.summary["uniswap_v3"]["pools"]:
        symbol0, symbol1 = names[p["token0"]], names[p["token1"]]
        sqrt_x96, tick = slot0_sqrt_price(rpc, p["address"])
        expected = feed_ratio_sqrt_price(devnet, symbol0, symbol1)
        assert abs(tick - tick_of(price_of(expected))) <= TICK_SPACINGS[p["fee"]]
        assert sqrt_x96 == expected
        (liquidity,) = view(rpc, p["address"], "liquidity()", ["uint128"])
        spec = next(s for s in UNISWAP_POOLS if {s.a, s.b} == {symbol0, symbol1} and s.fee == p["fee"])
        layout = pool_layout(spec, symbol0, symbol1)
        assert liquidity == pytest.approx(sum(pos.liquidity for _, pos in layout.ranges), rel=1e-6)


def _swap(devnet: Devnet, spec: UniswapPoolSpec, sell: str, amount: int) -> tuple[int, int, int]:
    """Quote, then really swap ``amount`` of ``sell`` through the router: (quoted, received, gas)."""
    rpc, s = devnet.rpc, devnet.summary
    tokens, uni = s["aave"]["reserves"], s["uniswap_v3"]
    buy = spec.b if sell == spec.a else spec.a
    rpc.call("anvil_setBalance", [SWAPPER, hex(10**20)])
    send(rpc, SWAPPER, tokens[sell], "mint(uint256)", amount)
    send(rpc, SWAPPER, tokens[sell], "approve(address,uint256)", uni["swap_router"], MAX_UINT)
    quote = encode_call(
        f"quoteExactInputSingle({QUOTE_PARAMS})", (tokens[sell], tokens[buy], amount, spec.fee, 0)
    )
    quoted, _, _, _ = decode_result(
        ["uint256", "uint160", "uint32", "uint256"], rpc.eth_call(uni["quoter"], quote)
    )
    (before,) = view(rpc, tokens[buy], "balanceOf(address)", ["uint256"], SWAPPER)
    params = (tokens[sell], tokens[buy], spec.fee, SWAPPER, MAX_UINT, amount, quoted, 0)
    receipt = send(rpc, SWAPPER, uni["swap_router"], f"exactInputSingle({SWAP_PARAMS})", params)
    assert int(receipt["status"], 16) == 1
    (after,) = view(rpc, tokens[buy], "balanceOf(address)", ["uint256"], SWAPPER)
    return int(quoted), int(after - before), int(receipt["gasUsed"], 16)


@pytest.mark.parametrize("percent", [1, 5])
@pytest.mark.parametrize("spec", UNISWAP_POOLS, ids=lambda s: f"{s.a}-{s.b}-{s.fee}")
def test_a_large_swap_gets_the_quoted_output_and_the_reported_slippage(
    chain: Devnet, spec: UniswapPoolSpec, percent: int
) -> None:
    """Selling the amount `sell_to_move` reports for a 1 % / 5 % move moves the pool that much,
    yields exactly what QuoterV2 predicted, and pays for the depth it eats (price impact)."""
    rpc, tokens = chain.rpc, chain.summary["aave"]["reserves"]
    pool = pools_by_pair(chain)[(frozenset((spec.a, spec.b)), spec.fee)]
    layout = pool_layout(spec, *sorted_pair(spec, tokens))
    sell = spec.a
    amount, expected_out = sell_to_move(spec, layout, sell, percent)
    before, _ = slot0_sqrt_price(rpc, pool["address"])
    quoted, received, _ = _swap(chain, spec, sell, amount)
    assert received == quoted == pytest.approx(expected_out, rel=1e-4)
    after, _ = slot0_sqrt_price(rpc, pool["address"])
    price_ratio = price_of(after) / price_of(before)  # token1 per token0, after / before
    moved = (1 - price_ratio if sell == layout.symbol0 else 1 - 1 / price_ratio) * 100
    assert moved == pytest.approx(percent, rel=0.02)
    sold, bought = asset(sell), asset(spec.b)
    value_in = amount * sold.price_usd_8 / 10**sold.decimals
    value_out = received * bought.price_usd_8 / 10**bought.decimals
    slippage = 1 - value_out / value_in - spec.fee / 10**6  # beyond the pool fee
    assert slippage > 0.001  # a sale this size is never free
    if spec.a != "USDC":  # the stable pair holds most of its depth within 0.2 % of the peg
        # About half the final move within one range, less where depth thickens near the price.
        assert percent * 0.25 / 100 < slippage < percent * 0.55 / 100


def _weth_pools(devnet: Devnet) -> list[dict[str, Any]]:
    weth = devnet.summary["aave"]["reserves"]["WETH"]
    pools = [p for p in devnet.summary["uniswap_v3"]["pools"] if weth in (p["token0"], p["token1"])]
    assert len(pools) == 3
    return pools


def _assert_weth_pools_follow_the_feed(devnet: Devnet, block: int) -> None:
    """Every WETH pool at the feeds' ratio within 0.1 %, swapped in the feed update's block."""
    rpc, names = devnet.rpc, symbols(devnet)
    feed = devnet.summary["feeds"]["WETH"]
    feed_logs = rpc.call("eth_getLogs", [{"address": feed, "fromBlock": hex(block), "toBlock": hex(block)}])
    assert ANSWER_UPDATED in [log["topics"][0] for log in feed_logs]
    for p in _weth_pools(devnet):
        sqrt_x96, _ = slot0_sqrt_price(rpc, p["address"])
        expected = feed_ratio_sqrt_price(devnet, names[p["token0"]], names[p["token1"]])
        assert price_of(sqrt_x96) == pytest.approx(price_of(expected), rel=1e-3)
        swaps = rpc.call(
            "eth_getLogs", [{"address": p["address"], "fromBlock": hex(block), "toBlock": hex(block)}]
        )
        assert [log["topics"][0] for log in swaps] == [SWAP_TOPIC]


def test_devnet_price_moves_the_weth_pools_in_the_feed_update_block(chain: Devnet) -> None:
    s, rpc = chain.summary, chain.rpc
    others = [p for p in s["uniswap_v3"]["pools"] if p not in _weth_pools(chain)]
    untouched = {p["address"]: slot0_sqrt_price(rpc, p["address"]) for p in others}
    proc = run_keeper("devnet", "price", "--rpc", s["rpc_url"], "--asset", "WETH", "--move", "-25")
    assert proc.returncode == 0, proc.stderr
    update = json.loads(proc.stdout)
    assert int(update["new_answer"]) == 1_500 * 10**8
    assert {pool for pool, _ in update["pools"]} == {p["address"] for p in _weth_pools(chain)}
    for _, tx in update["pools"]:
        assert int(rpc.call("eth_getTransactionReceipt", [tx])["blockNumber"], 16) == update["block"]
    _assert_weth_pools_follow_the_feed(chain, update["block"])
    assert {a: slot0_sqrt_price(rpc, a) for a in untouched} == untouched
    assert rpc.call("anvil_getAutomine") is True


def test_set_price_moves_the_pools_in_one_block_and_a_pool_of_two_moved_feeds_follows_both(
    chain: Devnet,
) -> None:
    rpc, names = chain.rpc, symbols(chain)
    update = set_price(rpc, "WETH", move=Decimal("-25"))
    assert (update.old_answer, update.new_answer) == (2_000 * 10**8, 1_500 * 10**8)
    assert len(update.pools) == 3
    _assert_weth_pools_follow_the_feed(chain, update.block)
    wbtc = set_price(rpc, "WBTC", usd=Decimal("45000"))
    assert len(wbtc.pools) == 3  # WBTC/USDC, WBTC/WETH, WBTC/DAI
    for p in chain.summary["uniswap_v3"]["pools"]:
        symbol0, symbol1 = names[p["token0"]], names[p["token1"]]
        sqrt_x96, _ = slot0_sqrt_price(rpc, p["address"])
        assert sqrt_x96 == feed_ratio_sqrt_price(chain, symbol0, symbol1), (symbol0, symbol1)


def test_with_interval_mining_the_moves_share_the_feed_block_and_the_interval_comes_back(
    chain: Devnet,
) -> None:
    rpc = chain.rpc
    rpc.call("evm_setIntervalMining", [30])  # no interval block can come between the sends
    try:
        update = set_price(rpc, "WETH", move=Decimal("-10"))
        assert rpc.call("anvil_getIntervalMining") == 30
    finally:
        rpc.call("evm_setAutomine", [True])
    assert len(update.pools) == 3
    _assert_weth_pools_follow_the_feed(chain, update.block)
    assert update.new_answer == 1_800 * 10**8
