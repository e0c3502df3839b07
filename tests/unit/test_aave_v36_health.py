"""Aave v3.6 health (`keeper.protocols.aave_v3.v3_6.math`) by hand, and its float screen's proof.

The hand cases pin each v3.6 difference from 3.0.x on numbers small enough to check on paper
(``aave-v3.6-notes.md`` §1.4); the property extends the screen's never-miss proof to v3.6's
rounding (floor collateral, ceil debt, no floored average LT) and its eMode bitmaps.
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from keeper.math.uint import UINT256_MAX
from keeper.math.wad_ray import RAY, WAD
from keeper.protocols.aave_v3.math import account_data as account_data_v3_0
from keeper.protocols.aave_v3.math import reserves_at as reserves_at_v3_0
from keeper.protocols.aave_v3.screen import AaveScreen
from keeper.protocols.aave_v3.state import ZERO_ADDRESS, EModeCategory, PoolState, UserReserve, UserState
from keeper.protocols.aave_v3.v3_6.math import account_data, normalized_debt, reserves_at
from tests.unit.test_screen import (
    PROPERTY,
    T0,
    aave_reserve,
    aave_user,
    aave_users,
    assert_screen_is_safe,
    asset,
    boundary,
    pools,
    with_leg,
)

USD = 10**8  # the oracle's base unit
USER = "0x" + "ab" * 20
POOL = "0x" + "cd" * 20


def pool_of(*thresholds: int, category: EModeCategory | None = None) -> PoolState:
    """Reserves with 6 decimals priced at 1 USD, the given reserve LTs, indexes 1.5 (income) / 1.25 (debt)."""
    reserves = {
        i: aave_reserve(i, 6, lt, indexes=(3 * RAY // 2, 5 * RAY // 4)) for i, lt in enumerate(thresholds)
    }
    return PoolState(
        "0xpool",
        "0xoracle",
        reserves,
        {category.id: category} if category else {},
        {asset(i): USD for i in reserves},
    )


def hf(pool: PoolState, user: UserState) -> tuple[int, int, int, int, int, bool]:
    data = account_data(pool, reserves_at(pool, T0), user)
    return (
        data.total_collateral_base,
        data.total_debt_base,
        data.avg_ltv,
        data.avg_liquidation_threshold,
        data.health_factor,
        data.has_zero_ltv_collateral,
    )


def test_balances_round_floor_for_collateral_and_ceil_for_debt() -> None:
    # scaled 1 at income 1.5 -> aToken 1 (floor; half-up would say 2); scaled 1 at debt 1.25 -> 2 (ceil)
    pool = pool_of(8_000)
    user = aave_user("u", 0, {0: (True, True, UserReserve(1, 1))})
    collateral, debt, *_ = hf(pool, user)
    assert (collateral, debt) == (100, 200)  # 1 and 2 units of 1e6, each worth 1e8 / 1e6 base
    old = account_data_v3_0(pool, reserves_at_v3_0(pool, T0), user, T0)
    assert (old.total_collateral_base, old.total_debt_base) == (200, 100)  # half-up: 2 and 1 units


def test_health_is_wad_div_of_the_weighted_sum_without_flooring_the_average() -> None:
    # collateral 100 (LT 80 %) + 200 (LT 75 %) whole units, debt 240 units of base 1e8 each
    pool = replace(
        pool_of(8_000, 7_500),
        reserves={
            i: replace(r, liquidity_index=RAY, variable_borrow_index=RAY)
            for i, r in pool_of(8_000, 7_500).reserves.items()
        },
    )
    legs = {
        0: (True, False, UserReserve(100 * 10**6, 0)),
        1: (True, True, UserReserve(200 * 10**6, 240 * 10**6)),
    }
    collateral, debt, avg_ltv, avg_lt, health, zero_ltv = hf(pool, aave_user("u", 0, legs))
    s = 100 * USD * 8_000 + 200 * USD * 7_500  # 2.3e14
    assert (collateral, debt, avg_lt) == (300 * USD, 240 * USD, s // (300 * USD))  # 7666 bps
    assert health == (s * WAD + debt // 2) // debt // 10_000 == 958333333333333333
    assert avg_ltv == (100 * 7_200 + 200 * 6_750) // 300 and not zero_ltv
    # 3.0 floors the average LT to 7666 bps first: a lower health factor
    assert (
        account_data_v3_0(pool, reserves_at_v3_0(pool, T0), aave_user("u", 0, legs), T0).health_factor
        == ((300 * USD * 7_666 + 5_000) // 10_000 * WAD + debt // 2) // debt
    )


def test_emode_lt_comes_from_the_collateral_bitmap_and_ltv_zero_from_its_bitmap() -> None:
    category = EModeCategory(
        1, 9_000, 9_500, 10_100, ZERO_ADDRESS, collateral_bitmap=0b01, ltvzero_bitmap=0b01
    )
    base = pool_of(8_000, 7_500, category=category)
    pool = replace(
        base,
        reserves={
            i: replace(r, liquidity_index=RAY, variable_borrow_index=RAY) for i, r in base.reserves.items()
        },
    )
    legs = {
        0: (True, False, UserReserve(100 * 10**6, 0)),
        1: (True, True, UserReserve(100 * 10**6, 100 * 10**6)),
    }
    _, debt, avg_ltv, avg_lt, health, zero_ltv = hf(pool, aave_user("u", 1, legs))
    # reserve 0 in the bitmap: LT 95 %, LTV 0 (ltv-zero bitmap); reserve 1 keeps its own 75 % / 67.5 %
    assert avg_lt == (9_500 + 7_500) // 2 and avg_ltv == 6_750 // 2 and zero_ltv
    assert health == (100 * USD * (9_500 + 7_500) * WAD + debt // 2) // debt // 10_000
    # out of eMode the same user has the reserve parameters
    assert hf(pool, aave_user("u", 0, legs))[3] == (8_000 + 7_500) // 2


def test_collateral_with_reserve_lt_zero_counts_with_weight_zero() -> None:
    base = pool_of(0, 8_000)
    pool = replace(
        base,
        reserves={
            i: replace(r, liquidity_index=RAY, variable_borrow_index=RAY) for i, r in base.reserves.items()
        },
    )
    legs = {
        0: (True, False, UserReserve(100 * 10**6, 0)),
        1: (True, True, UserReserve(100 * 10**6, 50 * 10**6)),
    }
    collateral, _, _, avg_lt, health, zero_ltv = hf(pool, aave_user("u", 0, legs))
    assert collateral == 200 * USD and avg_lt == 4_000 and zero_ltv  # 3.0 would say 100 USD, 8000
    assert health == 16 * WAD // 10
    old = account_data_v3_0(pool, reserves_at_v3_0(pool, T0), aave_user("u", 0, legs), T0)
    assert (old.total_collateral_base, old.avg_liquidation_threshold) == (100 * USD, 8_000)


def test_empty_configuration_and_no_debt() -> None:
    pool = pool_of(8_000)
    assert hf(pool, UserState("u", 0, 0)) == (0, 0, 0, 0, UINT256_MAX, False)
    assert hf(pool, aave_user("u", 0, {0: (True, False, UserReserve(10**6, 0))}))[4] == UINT256_MAX


def test_debt_index_grows_with_the_3_4_compounding() -> None:
    reserve = aave_reserve(0, 6, 8_000, indexes=(RAY, RAY), rates=(0, 5 * 10**25), last_update=T0 - 86_400)
    assert normalized_debt(reserve, T0) == 1000136995684421674802557900  # test_math's 5 %, 1 day value
    assert normalized_debt(reserve, T0 - 86_400) == RAY


# ---------------------------------------------------------------------------- the screen, for v3.6


@st.composite
def v36_books(draw: st.DrawFn) -> tuple[PoolState, int, list[UserState]]:
    pool, timestamp = draw(pools())
    width = len(pool.reserves) + 1
    categories = {
        c.id: replace(
            c,
            price_source=ZERO_ADDRESS,
            collateral_bitmap=draw(st.integers(0, 2**width - 1)),
            ltvzero_bitmap=draw(st.integers(0, 2**width - 1)),
        )
        for c in pool.emode_categories.values()
    }
    reserves = {i: replace(r, config=replace(r.config, emode_category=0)) for i, r in pool.reserves.items()}
    pool = replace(pool, emode_categories=categories, reserves=reserves)
    base = [_no_stable(draw(aave_users(pool, timestamp, f"u{i}"))) for i in range(3)]
    return pool, timestamp, base + [b for u in base for b in _boundary_users(pool, timestamp, u)]


def _no_stable(user: UserState) -> UserState:
    return replace(user, reserves={i: replace(r, stable=None) for i, r in user.reserves.items()})


def _boundary_users(pool: PoolState, timestamp: int, user: UserState) -> list[UserState]:
    at = reserves_at(pool, timestamp)
    out = []
    for reserve_id in user.flagged_reserve_ids():
        debt = user.is_borrowing(reserve_id)
        flips = boundary(
            lambda x: account_data(pool, at, with_leg(user, reserve_id, debt, x)).health_factor < WAD,  # noqa: B023
            0,
            1,
            2**120,
        )
        if flips is not None:
            out += [with_leg(user, reserve_id, debt, x) for x in flips]
    return [replace(u, user=f"{user.user}-b{i}") for i, u in enumerate(out)]


@given(v36_books())
@PROPERTY
def test_v36_screen_never_misses_a_liquidatable_user(book: tuple[PoolState, int, list[UserState]]) -> None:
    pool, timestamp, users = book
    screen = AaveScreen()
    screen.set_users(users)
    estimates = dict(zip(screen.users, screen.estimates(pool, timestamp, v3_6=True).tolist(), strict=True))
    candidates = set(screen.candidates(pool, timestamp, margin=0.0, v3_6=True))
    at = reserves_at(pool, timestamp)
    exact = {u.user: account_data(pool, at, u).health_factor for u in users}
    assert_screen_is_safe(estimates, candidates, exact)


def test_v36_screen_grows_debt_with_the_3_4_index() -> None:
    """A year at 100 %: the 3.0 index runs ~1e-6 below 3.4's, so a screen on it would rate a
    boundary borrower above its exact health factor."""
    year = 365 * 86_400
    pool = PoolState(
        "0xpool",
        "0xoracle",
        {
            0: aave_reserve(0, 18, 8_000),
            1: aave_reserve(1, 18, 8_000, rates=(0, RAY), last_update=T0 - year),
        },
        {},
        {asset(0): 2_000 * USD, asset(1): USD},
    )
    user = aave_user("u", 0, {0: (True, False, UserReserve(10**18, 0)), 1: (False, True, UserReserve(0, 1))})
    users = _boundary_users(pool, T0, user)
    assert users, "no boundary found"
    screen = AaveScreen()
    screen.set_users(users)
    estimates = dict(zip(screen.users, screen.estimates(pool, T0, v3_6=True).tolist(), strict=True))
    at = reserves_at(pool, T0)
    exact = {u.user: account_data(pool, at, u).health_factor for u in users}
    assert_screen_is_safe(estimates, set(screen.candidates(pool, T0, margin=0.0, v3_6=True)), exact)
