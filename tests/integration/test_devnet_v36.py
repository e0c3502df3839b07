"""`keeper devnet up --aave-version 3.6` deploys the real Aave v3.6 with the devnet's market shape:
read back from the compiled v3.6 bytecode on Anvil, then crashed and liquidated for real."""

from __future__ import annotations

import random
from collections.abc import Iterator
from fractions import Fraction

import pytest
from eth_utils.crypto import keccak

from keeper.devnet.accounts import user_addresses
from keeper.devnet.rpc import Rpc
from keeper.devnet.seed import MAX_UINT, base_value, plan_aave
from keeper.devnet.spec import ASSETS, CASE_ASSETS, EMODE, asset, interest_rate_data_bps
from keeper.errors import DevnetError
from tests.conftest import Devnet, reverted_after, run_keeper
from tests.support.devnet import running_devnet

from .helpers import WAD, account_data, send, view

pytestmark = pytest.mark.integration

BORROWERS = 40
SEED = 1  # `devnet up`'s default --seed: the plans below are the ones it seeded
LIQUIDATION_CALL = (
    "0x" + keccak(text="LiquidationCall(address,address,address,uint256,uint256,address,bool)").hex()
)
HIGHEST_TARGET_HF = 3  # seed.target_health draws up to HF 3


@pytest.fixture(scope="module")
def devnet36(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    config_out = tmp_path_factory.mktemp("devnet36") / "devnet.toml"
    with running_devnet(config_out, BORROWERS, BORROWERS, "--aave-version", "3.6") as devnet:
        yield devnet


@pytest.fixture
def chain36(devnet36: Devnet) -> Iterator[Devnet]:
    """The v3.6 devnet, reverted to its seeded state after the test."""
    yield from reverted_after(devnet36)


def _reverts(rpc: Rpc, to: str, sig: str, out: list[str], *args: object) -> bool:
    try:
        view(rpc, to, sig, out, *args)
    except DevnetError:
        return True
    return False


def _reserve_id(rpc: Rpc, pool: str, token: str) -> int:
    (reserve_id,) = view(rpc, pool, "getReserveData(address)", ["uint256"] * 7 + ["uint16"], token)[7:]
    return int(reserve_id)


def test_pool_is_v36(devnet36: Devnet) -> None:
    rpc, s = devnet36.rpc, devnet36.summary
    pool = s["aave"]["pool"]
    assert s["aave"]["version"] == "3.6"
    assert view(rpc, pool, "POOL_REVISION()", ["uint256"]) == (10,)
    assert not _reverts(rpc, pool, "getEModeCategoryLtvzeroBitmap(uint8)", ["uint128"], EMODE.category_id)
    # v3.0's views that 3.2+ removed are really gone: this is not the v3.0 bytecode.
    token = s["aave"]["reserves"]["USDC"]
    assert _reverts(rpc, s["aave"]["data_provider"], "getReserveEModeCategory(address)", ["uint256"], token)
    (strategy,) = view(rpc, pool, "RESERVE_INTEREST_RATE_STRATEGY()", ["address"])
    assert len(rpc.call("eth_getCode", [strategy, "latest"])) > 2


def test_reserves_read_back_as_the_devnet_spec(devnet36: Devnet) -> None:
    rpc, s = devnet36.rpc, devnet36.summary
    data_provider, pool = s["aave"]["data_provider"], s["aave"]["pool"]
    (registered,) = view(rpc, s["aave"]["pool_addresses_provider"], "getPoolDataProvider()", ["address"])
    assert registered.lower() == data_provider.lower()
    (strategy,) = view(rpc, pool, "RESERVE_INTEREST_RATE_STRATEGY()", ["address"])
    assert set(s["aave"]["reserves"]) == {a.symbol for a in ASSETS + CASE_ASSETS}
    for spec in ASSETS + CASE_ASSETS:
        token = s["aave"]["reserves"][spec.symbol]
        decimals, ltv, lt, bonus, factor, collateral_on, borrowing_on, stable_on, active, frozen = view(
            rpc, data_provider, "getReserveConfigurationData(address)", ["uint256"] * 5 + ["bool"] * 5, token
        )
        assert (decimals, ltv, lt, bonus, factor) == (
            spec.decimals,
            spec.ltv_bps,
            spec.liquidation_threshold_bps,
            spec.liquidation_bonus_bps,
            spec.reserve_factor_bps,
        )
        assert collateral_on == (spec.liquidation_threshold_bps != 0) and borrowing_on == spec.borrowable
        assert active and not frozen and not stable_on
        (fee,) = view(rpc, data_provider, "getLiquidationProtocolFee(address)", ["uint256"], token)
        assert fee == spec.liquidation_protocol_fee_bps
        (price,) = view(rpc, s["aave"]["oracle"], "getAssetPrice(address)", ["uint256"], token)
        assert price == spec.price_usd_8
        (source,) = view(rpc, s["aave"]["oracle"], "getSourceOfAsset(address)", ["address"], token)
        assert source.lower() == s["feeds"][spec.symbol].lower()
        ((optimal, base, slope1, slope2),) = view(
            rpc, strategy, "getInterestRateDataBps(address)", ["(uint16,uint32,uint32,uint32)"], token
        )
        assert (optimal, base, slope1, slope2) == interest_rate_data_bps(spec)
    assert {a.decimals for a in ASSETS} >= {6, 8, 18}


def test_emode_category_holds_usdc_and_dai(devnet36: Devnet) -> None:
    rpc, s = devnet36.rpc, devnet36.summary
    pool, reserves = s["aave"]["pool"], s["aave"]["reserves"]
    members = {a.symbol for a in ASSETS if a.emode_category == EMODE.category_id}
    assert members == {"USDC", "DAI"}
    expected = sum(1 << _reserve_id(rpc, pool, reserves[symbol]) for symbol in members)
    for getter in ("getEModeCategoryCollateralBitmap", "getEModeCategoryBorrowableBitmap"):
        assert view(rpc, pool, f"{getter}(uint8)", ["uint128"], EMODE.category_id) == (expected,)
    assert view(rpc, pool, "getEModeCategoryLtvzeroBitmap(uint8)", ["uint128"], EMODE.category_id) == (0,)
    ((ltv, lt, bonus),) = view(
        rpc, pool, "getEModeCategoryCollateralConfig(uint8)", ["(uint16,uint16,uint16)"], EMODE.category_id
    )
    assert (ltv, lt, bonus) == (EMODE.ltv_bps, EMODE.liquidation_threshold_bps, EMODE.liquidation_bonus_bps)
    assert view(rpc, pool, "getEModeCategoryLabel(uint8)", ["string"], EMODE.category_id) == (EMODE.label,)


def test_every_seeded_borrower_has_the_planned_health(devnet36: Devnet) -> None:
    """HF read from the pool equals the one the plan aimed at (eMode LT for eMode borrowers), and
    every borrower sits where the seeder puts it: above liquidation, at most HF 3."""
    rpc, s = devnet36.rpc, devnet36.summary
    plans = plan_aave(user_addresses("aave", BORROWERS, SEED), random.Random(SEED))
    closed = set(s["closed_borrowers"]["aave"])
    near = 0
    for plan in (p for p in plans if p.user not in closed):
        collateral, debt, _, _, _, hf = account_data(rpc, s["aave"]["pool"], plan.user)
        assert debt > 0 and collateral > 0
        (emode,) = view(rpc, s["aave"]["pool"], "getUserEMode(address)", ["uint256"], plan.user)
        assert emode == plan.emode
        lt_value = sum(
            base_value(amount, asset(symbol))
            * (EMODE.liquidation_threshold_bps if plan.emode else asset(symbol).liquidation_threshold_bps)
            for symbol, amount in plan.collateral
        )
        debt_spec = asset(plan.debt_symbol)
        planned = Fraction(lt_value, 10_000) / Fraction(
            plan.debt_amount * debt_spec.price_usd_8, 10**debt_spec.decimals
        )
        assert abs(Fraction(hf, WAD) / planned - 1) < Fraction(1, 1000)
        assert WAD < hf <= HIGHEST_TARGET_HF * WAD * 1001 // 1000
        near += hf < WAD * 105 // 100
    assert near > 0


def test_crash_then_one_real_liquidation_by_the_keeper(chain36: Devnet) -> None:
    rpc, s = chain36.rpc, chain36.summary
    pool, reserves, keeper = s["aave"]["pool"], s["aave"]["reserves"], s["keeper_address"]
    plans = plan_aave(user_addresses("aave", BORROWERS, SEED), random.Random(SEED))
    weth_backed = [p for p in plans if [c for c, _ in p.collateral] == ["WETH"]]
    assert weth_backed
    assert all(account_data(rpc, pool, p.user)[5] >= WAD for p in weth_backed)

    proc = run_keeper("devnet", "price", "--rpc", s["rpc_url"], "--asset", "WETH", "--move", "-25")
    assert proc.returncode == 0, proc.stderr
    (price,) = view(rpc, s["aave"]["oracle"], "getAssetPrice(address)", ["uint256"], reserves["WETH"])
    assert price == asset("WETH").price_usd_8 * 3 // 4
    underwater = sorted(
        (account_data(rpc, pool, p.user)[5], p)
        for p in weth_backed
        if account_data(rpc, pool, p.user)[5] < WAD
    )
    assert underwater, "a -25 % WETH move leaves every WETH-backed position healthy"

    _, victim = underwater[0]
    debt_token = reserves[victim.debt_symbol]
    debt_before = account_data(rpc, pool, victim.user)[1]
    (weth_before,) = view(rpc, reserves["WETH"], "balanceOf(address)", ["uint256"], keeper)
    receipt = send(
        rpc,
        keeper,
        pool,
        "liquidationCall(address,address,address,uint256,bool)",
        reserves["WETH"],
        debt_token,
        victim.user,
        MAX_UINT,
        False,
    )
    assert int(receipt["status"], 16) == 1
    events = [log for log in receipt["logs"] if log["topics"][0] == LIQUIDATION_CALL]
    assert len(events) == 1
    assert int(events[0]["topics"][3], 16) == int(victim.user, 16)
    (weth_after,) = view(rpc, reserves["WETH"], "balanceOf(address)", ["uint256"], keeper)
    assert weth_after > weth_before
    assert account_data(rpc, pool, victim.user)[1] < debt_before


def test_inspect_reports_the_v36_market(devnet36: Devnet) -> None:
    proc = run_keeper("devnet", "inspect", "--config", str(devnet36.config_path))
    assert proc.returncode == 0, proc.stderr
    assert "Aave V3 (v3.6) reserves:" in proc.stdout
    lines = {line.split()[0]: line for line in proc.stdout.splitlines() if "decimals" in line}
    for spec in ASSETS + CASE_ASSETS:
        assert lines[spec.symbol].endswith(f"eMode {spec.emode_category}")
    cases = sum(map(len, devnet36.summary["aave"]["cases"].values()))
    assert f"Aave V3 borrowers: {BORROWERS + cases}" in proc.stdout


def test_default_devnet_is_v36(devnet: Devnet, large_devnet_v30: Devnet) -> None:
    """A plain `keeper devnet up` deploys what production runs; `--aave-version 3.0` keeps v3.0.x."""
    assert devnet.summary["aave"]["version"] == "3.6" and devnet.summary["aave"]["cases"]
    assert view(devnet.rpc, devnet.summary["aave"]["pool"], "POOL_REVISION()", ["uint256"]) == (10,)
    assert large_devnet_v30.summary["aave"]["version"] == "3.0"
    assert large_devnet_v30.summary["aave"]["cases"] == {}, "the case borrowers are a v3.6 devnet's"
    pool = large_devnet_v30.summary["aave"]["pool"]
    assert view(large_devnet_v30.rpc, pool, "POOL_REVISION()", ["uint256"]) == (1,)


def test_an_unknown_aave_version_is_one_usage_line() -> None:
    proc = run_keeper("devnet", "up", "--aave-version", "3.1", "--port", "1")
    assert proc.returncode == 2
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("keeper: error: argument --aave-version")
    assert "'3.0', '3.6'" in proc.stderr
