"""The seeding plan is pure: every planned borrow must be accepted by the protocols' own checks."""

from __future__ import annotations

import random
from dataclasses import replace
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keeper.devnet.feeds import moved_answer, parse_percent, parse_usd, usd_answer
from keeper.devnet.morpho import MorphoMarket
from keeper.devnet.seed import base_value, morpho_oracle_price, plan_aave, plan_morpho
from keeper.devnet.spec import (
    ASSETS,
    BPS_TO_RAY,
    EMODE,
    MORPHO_MARKETS,
    AssetSpec,
    asset,
    interest_rate_data_bps,
)
from keeper.errors import UsageError

USERS = [f"0x{i:040x}" for i in range(1, 301)]
MARKETS = tuple(
    MorphoMarket(
        f"0x{i:064x}",
        m.loan,
        m.collateral,
        "0x" + "1" * 40,
        "0x" + "2" * 40,
        "0x" + "3" * 40,
        "0x" + "4" * 40,
        m.lltv,
    )
    for i, m in enumerate(MORPHO_MARKETS)
)


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=0, max_value=2**32))
def test_aave_plans_stay_within_ltv_and_above_liquidation(seed: int) -> None:
    for plan in plan_aave(USERS[:40], random.Random(seed)):
        ltv_capacity = lt_capacity = 0
        for symbol, amount in plan.collateral:
            spec = asset(symbol)
            ltv = EMODE.ltv_bps if plan.emode else spec.ltv_bps
            lt = EMODE.liquidation_threshold_bps if plan.emode else spec.liquidation_threshold_bps
            ltv_capacity += base_value(amount, spec) * ltv // 10_000
            lt_capacity += base_value(amount, spec) * lt // 10_000
        debt_value = Fraction(
            plan.debt_amount * asset(plan.debt_symbol).price_usd_8, 10 ** asset(plan.debt_symbol).decimals
        )
        assert 0 < debt_value <= ltv_capacity
        assert lt_capacity / debt_value > 1


def test_aave_plans_put_some_borrowers_within_five_percent_of_liquidation() -> None:
    plans = plan_aave(USERS, random.Random(7))
    near = 0
    for plan in plans:
        lt_capacity = sum(
            base_value(a, asset(s))
            * (EMODE.liquidation_threshold_bps if plan.emode else asset(s).liquidation_threshold_bps)
            // 10_000
            for s, a in plan.collateral
        )
        debt = (
            plan.debt_amount * asset(plan.debt_symbol).price_usd_8 // 10 ** asset(plan.debt_symbol).decimals
        )
        near += lt_capacity < debt * 105 // 100
    assert 0.1 * len(plans) < near < 0.5 * len(plans)


def test_morpho_plans_borrow_below_max_borrow() -> None:
    for plan in plan_morpho(USERS, MARKETS, random.Random(3)):
        market = MARKETS[plan.market]
        price = morpho_oracle_price(asset(market.loan), asset(market.collateral))
        max_borrow = plan.collateral_amount * price // 10**36 * market.lltv // 10**18
        assert 0 < plan.borrow_amount < max_borrow


def test_morpho_oracle_price_uses_chainlink_v2_scale() -> None:
    # 1 WETH (1e18) at $2000 must be worth 2000 USDC (2000e6): price * 1e18 / 1e36 == 2000e6.
    assert morpho_oracle_price(asset("USDC"), asset("WETH")) * 10**18 // 10**36 == 2000 * 10**6


@pytest.mark.parametrize(
    ("answer", "percent", "expected"),
    [(200_000_000_000, "-20", 160_000_000_000), (100, "7.5", 107), (3, "-99.99", 1), (10**8, "0", 10**8)],
)
def test_moved_answer(answer: int, percent: str, expected: int) -> None:
    assert moved_answer(answer, parse_percent(percent)) == expected


@pytest.mark.parametrize("text", ["abc", "-100", "-150", "nan", "inf", ""])
def test_parse_percent_rejects(text: str) -> None:
    with pytest.raises(UsageError):
        parse_percent(text)


@pytest.mark.parametrize("text", ["0", "-1", "x", "inf"])
def test_parse_usd_rejects(text: str) -> None:
    with pytest.raises(UsageError):
        parse_usd(text)


def test_usd_answer_scales_to_feed_decimals() -> None:
    assert usd_answer(Decimal("1650.25"), 8) == 165_025_000_000


@pytest.mark.parametrize("spec", ASSETS, ids=lambda a: a.symbol)
def test_v36_rate_curves_are_the_v30_curves_in_bps_within_the_v2_bounds(spec: AssetSpec) -> None:
    """Both devnet versions lend on the same curve, and the v3.6 one passes the bounds of
    DefaultReserveInterestRateStrategyV2._setInterestRateParams (else initReserves reverts)."""
    optimal, base, slope1, slope2 = interest_rate_data_bps(spec)
    assert (optimal * BPS_TO_RAY, base, slope1 * BPS_TO_RAY, slope2 * BPS_TO_RAY) == (
        spec.optimal_usage_ray,
        0,
        spec.slope1_ray,
        spec.slope2_ray,
    )
    assert 1_00 <= optimal <= 99_00 and slope1 <= slope2 and base + slope1 + slope2 <= 1000_00


def test_rate_curve_off_the_bps_grid_is_refused() -> None:
    off_grid = replace(asset("WETH"), slope1_ray=asset("WETH").slope1_ray + 1)
    with pytest.raises(ValueError, match="WETH"):
        interest_rate_data_bps(off_grid)
