"""The case borrowers' plans land where their names say, before the contracts ever see them.

A planning check in exact fractions (no rounding, no interest): healthy and borrowable when
seeded, and after the -25 % WETH crash the branch of v3.6's liquidation rules each case is named
for. The integration suite proves the same on the real contracts.
"""

from __future__ import annotations

from fractions import Fraction

import pytest

from keeper.devnet.accounts import user_addresses
from keeper.devnet.cases import (
    CASES,
    CLOSE_FACTOR_THRESHOLD_BASE,
    GRACE_ASSET,
    MIN_LEFTOVER_BASE,
    CasePlan,
    borrow_capacity,
    cases_by_name,
    health,
    plan_cases,
    prices,
    total_debt,
    value,
)
from keeper.devnet.spec import CASE_ASSETS, CASE_EMODE, asset

PLANS = plan_cases(user_addresses("aave-case", len(CASES), 1))
BEFORE, AFTER = prices(crashed=False), prices(crashed=True)
MARGIN = Fraction(1, 200)
"""Every inequality holds by at least 0.5 %: interest and rounding move values by far less."""


def _bonus(plan: CasePlan, collateral: str) -> Fraction:
    spec = asset(collateral)
    in_emode = plan.emode == CASE_EMODE.category_id and spec.emode_category == plan.emode
    return Fraction(CASE_EMODE.liquidation_bonus_bps if in_emode else spec.liquidation_bonus_bps, 10_000)


def _max_liquidation(plan: CasePlan, collateral: str, debt: str) -> dict[str, Fraction]:
    """`debtToCover = uint max` on one pair: close factor, then collateral seized (with bonus)."""
    coll_amount = dict(plan.collateral)[collateral]
    coll_value = value(collateral, coll_amount, AFTER)
    debt_value = value(debt, dict(plan.debts)[debt], AFTER)
    hf = health(plan, AFTER)
    max_debt = debt_value
    big = min(coll_value, debt_value) >= CLOSE_FACTOR_THRESHOLD_BASE * (1 + MARGIN)
    if big and hf > Fraction(95, 100) * (1 + MARGIN):
        max_debt = min(debt_value, total_debt(plan, AFTER) / 2)
    seized = min(coll_value, max_debt * _bonus(plan, collateral))
    repaid = seized / _bonus(plan, collateral) if seized == coll_value else max_debt
    return {
        "collateral": coll_value,
        "debt": debt_value,
        "max_debt": max_debt,
        "repaid": repaid,
        "debt_left": debt_value - repaid,
        "collateral_left": coll_value - seized,
    }


def _leaves_dust(outcome: dict[str, Fraction]) -> bool:
    partial = outcome["debt_left"] > 0 and outcome["collateral_left"] > 0
    return partial and min(outcome["debt_left"], outcome["collateral_left"]) < MIN_LEFTOVER_BASE


@pytest.mark.parametrize("plan", PLANS, ids=lambda p: p.case)
def test_every_case_is_borrowable_and_healthy_when_seeded(plan: CasePlan) -> None:
    assert total_debt(plan, BEFORE) <= borrow_capacity(plan, BEFORE) * (1 - MARGIN)
    assert health(plan, BEFORE) >= 1 + MARGIN


def test_case_names_and_sizes() -> None:
    sizes = {name: len(users) for name, users in cases_by_name(PLANS).items()}
    assert sizes == {
        "close_factor_full_small": 3,
        "close_factor_half": 3,
        "close_factor_full_deep": 2,
        "dust_debt": 2,
        "dust_collateral": 2,
        "deficit": 3,
        "lt_zero": 2,
        "grace_period": 2,
    }
    assert len({p.user for p in PLANS}) == len(PLANS)


def _plans(name: str) -> list[CasePlan]:
    return [p for p in PLANS if p.case == name]


def _first_pair(plan: CasePlan) -> tuple[str, str]:
    return plan.collateral[0][0], plan.debts[0][0]


def _liquidatable_not_deep(plan: CasePlan) -> None:
    assert Fraction(95, 100) * (1 + MARGIN) < health(plan, AFTER) < 1 - MARGIN


@pytest.mark.parametrize("plan", _plans("close_factor_full_small"), ids=lambda p: p.user)
def test_full_small_repays_the_whole_reserve_debt(plan: CasePlan) -> None:
    _liquidatable_not_deep(plan)
    outcome = _max_liquidation(plan, *_first_pair(plan))
    assert max(outcome["collateral"], outcome["debt"]) < CLOSE_FACTOR_THRESHOLD_BASE * (1 - MARGIN)
    assert outcome["debt_left"] == 0 and outcome["collateral_left"] > 0


@pytest.mark.parametrize("plan", _plans("close_factor_half"), ids=lambda p: p.user)
def test_half_repays_half_of_all_debt(plan: CasePlan) -> None:
    _liquidatable_not_deep(plan)
    outcome = _max_liquidation(plan, *_first_pair(plan))
    assert outcome["debt"] > total_debt(plan, AFTER) / 2 * (1 + MARGIN)
    assert outcome["repaid"] == total_debt(plan, AFTER) / 2
    assert not _leaves_dust(outcome)


@pytest.mark.parametrize("plan", _plans("close_factor_full_deep"), ids=lambda p: p.user)
def test_full_deep_repays_everything_and_seizes_less_than_all(plan: CasePlan) -> None:
    assert health(plan, AFTER) < Fraction(95, 100) * (1 - MARGIN)
    outcome = _max_liquidation(plan, *_first_pair(plan))
    assert min(outcome["collateral"], outcome["debt"]) >= CLOSE_FACTOR_THRESHOLD_BASE
    assert outcome["debt_left"] == 0 and outcome["collateral_left"] > outcome["collateral"] * MARGIN


@pytest.mark.parametrize("plan", _plans("dust_debt"), ids=lambda p: p.user)
def test_dust_debt_only_on_the_first_debt_reserve(plan: CasePlan) -> None:
    _liquidatable_not_deep(plan)
    assert len(plan.debts) == 2
    first = _max_liquidation(plan, *_first_pair(plan))
    assert MIN_LEFTOVER_BASE * MARGIN < first["debt_left"] < MIN_LEFTOVER_BASE * (1 - MARGIN)
    assert first["collateral_left"] > MIN_LEFTOVER_BASE
    other = _max_liquidation(plan, plan.collateral[0][0], plan.debts[1][0])
    assert other["debt_left"] == 0


@pytest.mark.parametrize("plan", _plans("dust_collateral"), ids=lambda p: p.user)
def test_dust_collateral_only_on_weth(plan: CasePlan) -> None:
    _liquidatable_not_deep(plan)
    assert [s for s, _ in plan.collateral] == ["WETH", "WBTC"]
    weth = _max_liquidation(plan, *_first_pair(plan))
    assert MIN_LEFTOVER_BASE * MARGIN < weth["collateral_left"] < MIN_LEFTOVER_BASE * (1 - MARGIN)
    assert weth["debt_left"] > MIN_LEFTOVER_BASE
    wbtc = _max_liquidation(plan, "WBTC", plan.debts[0][0])
    assert not _leaves_dust(wbtc)


@pytest.mark.parametrize("plan", _plans("deficit"), ids=lambda p: p.user)
def test_deficit_seizes_all_collateral_and_leaves_debt(plan: CasePlan) -> None:
    assert len(plan.collateral) == 1
    outcome = _max_liquidation(plan, *_first_pair(plan))
    assert outcome["collateral_left"] == 0
    assert outcome["debt_left"] > outcome["debt"] * MARGIN
    assert any(len(p.debts) == 2 for p in _plans("deficit"))


@pytest.mark.parametrize("plan", _plans("lt_zero"), ids=lambda p: p.user)
def test_lt_zero_holds_emode_only_collateral_and_becomes_liquidatable(plan: CasePlan) -> None:
    (emc,) = (spec for spec in CASE_ASSETS if spec.emode_category == CASE_EMODE.category_id)
    assert emc.liquidation_threshold_bps == emc.ltv_bps == emc.liquidation_bonus_bps == 0
    assert plan.emode == CASE_EMODE.category_id and emc.symbol in dict(plan.collateral)
    assert health(plan, AFTER) < 1 - MARGIN


@pytest.mark.parametrize("plan", _plans("grace_period"), ids=lambda p: p.user)
def test_grace_period_positions_owe_only_the_grace_asset(plan: CasePlan) -> None:
    assert [s for s, _ in plan.debts] == [GRACE_ASSET]
    assert health(plan, AFTER) < 1 - MARGIN
