"""The devnet deploys what it claims: read back from the contracts on a real Anvil."""

from __future__ import annotations

from eth_utils.crypto import keccak

from keeper.config import AaveV3Config, MorphoBlueConfig, load_config
from keeper.devnet.abi import encode_call
from keeper.devnet.feeds import pool_addresses_provider
from keeper.devnet.inspect import MULTICALL3, multicall
from keeper.devnet.morpho import MARKET_PARAMS, market_id
from keeper.devnet.seed import KEEPER_INVENTORY_USD, usd_to_amount
from keeper.devnet.spec import ASSETS, CASE_ASSETS, EMODE, MORPHO_MARKETS, asset
from tests.conftest import Devnet

from .helpers import view

MARKET = "(uint128,uint128,uint128,uint128,uint128,uint128)"


def test_summary_and_config_describe_the_same_devnet(devnet: Devnet) -> None:
    s = devnet.summary
    assert s["chain_id"] == int(devnet.rpc.call("eth_chainId"), 16) == 31337
    assert s["aave"]["pool_addresses_provider"] == pool_addresses_provider()
    # v3.6 lists the case borrowers' two reserves after the four every devnet has
    assert set(s["aave"]["reserves"]) == set(s["feeds"]) == {a.symbol for a in ASSETS + CASE_ASSETS}
    config = load_config(devnet.config_path)
    assert config.chain.chain_id == 31337
    assert s["ws_url"] in config.chain.rpc_urls and s["rpc_url"] in config.chain.rpc_urls
    aave, morpho = config.protocols
    assert (
        isinstance(aave, AaveV3Config)
        and aave.pool_addresses_provider == s["aave"]["pool_addresses_provider"]
    )
    assert isinstance(morpho, MorphoBlueConfig) and morpho.address == s["morpho"]["address"]


def test_aave_reserves_read_back_as_configured(large_devnet_v30: Devnet) -> None:
    """v3.0.x through its data provider; the v3.6 market: tests/integration/test_devnet_v36.py."""
    devnet = large_devnet_v30
    rpc, s = devnet.rpc, devnet.summary
    provider = s["aave"]["pool_addresses_provider"]
    (data_provider,) = view(rpc, provider, "getPoolDataProvider()", ["address"])
    assert data_provider.lower() == s["aave"]["data_provider"].lower()
    (reserves,) = view(rpc, s["aave"]["pool"], "getReservesList()", ["address[]"])
    assert len(reserves) >= 4
    decimals_seen = set()
    for symbol, token in s["aave"]["reserves"].items():
        spec = asset(symbol)
        decimals, ltv, lt, bonus, factor, collateral_on, borrowing_on, _, active, frozen = view(
            rpc, data_provider, "getReserveConfigurationData(address)", ["uint256"] * 5 + ["bool"] * 5, token
        )
        assert (decimals, ltv, lt, bonus, factor) == (
            spec.decimals,
            spec.ltv_bps,
            spec.liquidation_threshold_bps,
            spec.liquidation_bonus_bps,
            spec.reserve_factor_bps,
        )
        assert collateral_on and borrowing_on and active and not frozen
        (fee,) = view(rpc, data_provider, "getLiquidationProtocolFee(address)", ["uint256"], token)
        assert fee == spec.liquidation_protocol_fee_bps
        (category,) = view(rpc, data_provider, "getReserveEModeCategory(address)", ["uint256"], token)
        assert category == spec.emode_category
        (price,) = view(rpc, s["aave"]["oracle"], "getAssetPrice(address)", ["uint256"], token)
        assert price == spec.price_usd_8
        decimals_seen.add(decimals)
    assert {18, 8, 6} <= decimals_seen
    assert len({(a.ltv_bps, a.liquidation_threshold_bps, a.liquidation_bonus_bps) for a in ASSETS}) == len(
        ASSETS
    )
    assert sum(1 for a in ASSETS if a.emode_category == EMODE.category_id) == 2
    ((ltv, lt, bonus, _, label),) = view(
        rpc,
        s["aave"]["pool"],
        "getEModeCategoryData(uint8)",
        ["(uint16,uint16,uint16,address,string)"],
        EMODE.category_id,
    )
    assert (ltv, lt, bonus, label) == (
        EMODE.ltv_bps,
        EMODE.liquidation_threshold_bps,
        EMODE.liquidation_bonus_bps,
        EMODE.label,
    )


def test_morpho_markets_read_back_with_feed_oracles(devnet: Devnet) -> None:
    rpc, s = devnet.rpc, devnet.summary
    morpho = s["morpho"]["address"]
    assert len(s["morpho"]["markets"]) == len(MORPHO_MARKETS) >= 2
    assert len({m.lltv for m in MORPHO_MARKETS}) == len(MORPHO_MARKETS)
    for spec, params in zip(MORPHO_MARKETS, s["morpho"]["market_params"], strict=True):
        on_chain = view(
            rpc,
            morpho,
            "idToMarketParams(bytes32)",
            ["address"] * 4 + ["uint256"],
            bytes.fromhex(params["id"][2:]),
        )
        assert market_id(tuple(on_chain)) == params["id"]
        assert on_chain[4] == spec.lltv
        (enabled,) = view(rpc, morpho, "isLltvEnabled(uint256)", ["bool"], spec.lltv)
        assert enabled
        # The oracle reads the same feeds as Aave: Chainlink-V2 scale, collateral in loan units.
        loan, coll = asset(spec.loan), asset(spec.collateral)
        (loan_answer,) = view(rpc, s["feeds"][spec.loan], "latestAnswer()", ["int256"])
        (coll_answer,) = view(rpc, s["feeds"][spec.collateral], "latestAnswer()", ["int256"])
        (price,) = view(rpc, params["oracle"], "price()", ["uint256"])
        assert price == 10 ** (36 + loan.decimals - coll.decimals) * coll_answer // loan_answer
        supply, _, borrow, _, _, fee = view(
            rpc, morpho, "market(bytes32)", ["uint128"] * 6, bytes.fromhex(params["id"][2:])
        )
        assert 0 < borrow < supply and fee == spec.fee


def test_morpho_irm_rate_rises_with_utilization(devnet: Devnet) -> None:
    rpc, s = devnet.rpc, devnet.summary
    params = s["morpho"]["market_params"][0]
    mp = (
        params["loan_token"],
        params["collateral_token"],
        params["oracle"],
        params["irm"],
        int(params["lltv"]),
    )
    sig = f"borrowRateView({MARKET_PARAMS},{MARKET})"
    rates = [
        view(rpc, s["morpho"]["irm"], sig, ["uint256"], mp, (10**6, 0, borrowed, 0, 0, 0))[0]
        for borrowed in (0, 300_000, 800_000, 900_000, 950_000, 1_000_000)
    ]
    assert rates == sorted(rates) and len(set(rates)) == len(rates)
    assert rates[-1] - rates[-2] > 5 * (rates[2] - rates[1])  # steep after the kink


def test_feed_updates_emit_answer_updated_and_move_both_oracles(chain: Devnet) -> None:
    from tests.conftest import run_keeper

    rpc, s = chain.rpc, chain.summary
    weth = s["aave"]["reserves"]["WETH"]
    usdc_weth = next(
        m for m in s["morpho"]["market_params"] if m["collateral"] == "WETH" and m["loan"] == "USDC"
    )
    (morpho_before,) = view(rpc, usdc_weth["oracle"], "price()", ["uint256"])
    proc = run_keeper("devnet", "price", "--rpc", s["rpc_url"], "--asset", "WETH", "--set", "1500")
    assert proc.returncode == 0, proc.stderr
    logs = rpc.call(
        "eth_getLogs", [{"address": s["feeds"]["WETH"], "fromBlock": "latest", "toBlock": "latest"}]
    )
    topic = "0x" + keccak(text="AnswerUpdated(int256,uint256,uint256)").hex()
    updated = [log for log in logs if log["topics"][0] == topic]
    assert len(updated) == 1 and int(updated[0]["topics"][1], 16) == 1500 * 10**8
    (aave_price,) = view(rpc, s["aave"]["oracle"], "getAssetPrice(address)", ["uint256"], weth)
    (morpho_after,) = view(rpc, usdc_weth["oracle"], "price()", ["uint256"])
    assert aave_price == 1500 * 10**8
    assert morpho_after * 2000 == morpho_before * 1500


def test_multicall3_at_canonical_address(devnet: Devnet) -> None:
    rpc = devnet.rpc
    code = rpc.call("eth_getCode", [MULTICALL3, "latest"])
    assert len(code) > 1000
    head = rpc.block_number()
    [raw_block, raw_chain] = multicall(
        rpc, [(MULTICALL3, encode_call("getBlockNumber()")), (MULTICALL3, encode_call("getChainId()"))]
    )
    assert int.from_bytes(raw_block, "big") == head
    assert int.from_bytes(raw_chain, "big") == 31337


def test_keeper_holds_every_debt_asset(devnet: Devnet) -> None:
    rpc, s = devnet.rpc, devnet.summary
    for symbol, token in s["aave"]["reserves"].items():
        (balance,) = view(rpc, token, "balanceOf(address)", ["uint256"], s["keeper_address"])
        assert balance == usd_to_amount(KEEPER_INVENTORY_USD, asset(symbol)) > 0
