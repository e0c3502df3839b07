"""Aave V3 health, exactly as ``GenericLogic.calculateUserAccountData`` of v3.0.x computes it.

Pure: the caller supplies the pool state read at some block and the timestamp to evaluate at;
indexes are grown to that timestamp the way ``ReserveLogic.getNormalizedIncome/Debt`` would.
Per-reserve work (indexes, units) is done once per timestamp in `reserves_at`, not per user.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from keeper.math.interest import calculate_compounded_interest, calculate_linear_interest
from keeper.math.uint import UINT256_MAX
from keeper.math.wad_ray import percent_mul, ray_mul, wad_div

from .state import PoolState, Reserve, StableDebt, UserReserve, UserState


def normalized_income(reserve: Reserve, timestamp: int) -> int:
    if reserve.last_update_timestamp == timestamp:
        return reserve.liquidity_index
    factor = calculate_linear_interest(
        reserve.current_liquidity_rate, reserve.last_update_timestamp, timestamp
    )
    return ray_mul(factor, reserve.liquidity_index)


def normalized_debt(reserve: Reserve, timestamp: int) -> int:
    if reserve.last_update_timestamp == timestamp:
        return reserve.variable_borrow_index
    factor = calculate_compounded_interest(
        reserve.current_variable_borrow_rate, reserve.last_update_timestamp, timestamp
    )
    return ray_mul(factor, reserve.variable_borrow_index)


def stable_debt_balance(stable: StableDebt | None, timestamp: int) -> int:
    """``StableDebtToken.balanceOf``: the principal compounded at the user's own rate since their update."""
    if stable is None or stable.principal == 0:
        return 0
    factor = calculate_compounded_interest(stable.rate_ray, stable.last_update_timestamp, timestamp)
    return ray_mul(stable.principal, factor)


@dataclass(frozen=True, slots=True)
class ReserveAt:
    """One reserve evaluated at one timestamp."""

    reserve: Reserve
    normalized_income: int
    normalized_debt: int
    unit: int
    price: int


def reserves_at(
    pool: PoolState, timestamp: int, debt_index: Callable[[Reserve, int], int] | None = None
) -> dict[int, ReserveAt]:
    """Every reserve's indexes, unit and price at ``timestamp``; ``debt_index`` is the version's
    ``getNormalizedDebt`` (3.0.x's unless given: v3.6 compounds differently)."""
    debt_at = normalized_debt if debt_index is None else debt_index
    return {
        reserve_id: ReserveAt(
            reserve,
            normalized_income(reserve, timestamp),
            debt_at(reserve, timestamp),
            10**reserve.config.decimals,
            pool.prices[reserve.asset],
        )
        for reserve_id, reserve in pool.reserves.items()
    }


def collateral_balance(at: ReserveAt, balances: UserReserve) -> int:
    """``AToken.balanceOf``: scaled balance times the normalized income."""
    return ray_mul(balances.scaled_a_token, at.normalized_income)


def debt_balances(at: ReserveAt, balances: UserReserve, timestamp: int) -> tuple[int, int]:
    """(stable, variable) debt as ``Helpers.getUserCurrentDebt`` returns them."""
    variable = (
        ray_mul(balances.scaled_variable_debt, at.normalized_debt) if balances.scaled_variable_debt else 0
    )
    return stable_debt_balance(balances.stable, timestamp), variable


@dataclass(frozen=True, slots=True)
class AccountData:
    total_collateral_base: int
    total_debt_base: int
    avg_ltv: int
    avg_liquidation_threshold: int
    health_factor: int
    has_zero_ltv_collateral: bool


NO_POSITION = AccountData(0, 0, 0, 0, UINT256_MAX, False)
EMPTY_BALANCES = UserReserve()


def emode_price(pool: PoolState, category: int) -> int:
    """``EModeLogic.getEModeConfiguration``'s price: the category's price source, or 0 when it has none."""
    emode = pool.emode_categories.get(category)
    if emode is None or int(emode.price_source, 16) == 0:
        return 0
    return pool.prices[emode.price_source]


def account_data(pool: PoolState, at: dict[int, ReserveAt], user: UserState, timestamp: int) -> AccountData:
    """``calculateUserAccountData`` for one user: same loop, same order of integer operations."""
    if user.configuration == 0:
        return NO_POSITION
    category = user.emode_category
    emode = pool.emode_categories.get(category) if category else None
    emode_ltv = emode.ltv if emode else 0
    emode_threshold = emode.liquidation_threshold if emode else 0
    emode_asset_price = emode_price(pool, category) if category else 0
    total_collateral = total_debt = avg_ltv = avg_threshold = 0
    has_zero_ltv = False
    for reserve_id in user.flagged_reserve_ids():
        reserve_at = at.get(reserve_id)
        if reserve_at is None:  # a dropped reserve: the pool skips address(0) too
            continue
        config = reserve_at.reserve.config
        price = (
            emode_asset_price
            if emode_asset_price != 0 and category == config.emode_category
            else reserve_at.price
        )
        balances = user.reserves.get(reserve_id, EMPTY_BALANCES)
        if config.liquidation_threshold != 0 and user.is_using_as_collateral(reserve_id):
            value = collateral_balance(reserve_at, balances) * price // reserve_at.unit
            total_collateral += value
            in_emode = category != 0 and config.emode_category == category
            if config.ltv != 0:
                avg_ltv += value * (emode_ltv if in_emode else config.ltv)
            else:
                has_zero_ltv = True
            avg_threshold += value * (emode_threshold if in_emode else config.liquidation_threshold)
        if user.is_borrowing(reserve_id):
            stable, variable = debt_balances(reserve_at, balances, timestamp)
            total_debt += price * (variable + stable) // reserve_at.unit
    if total_collateral:
        avg_ltv //= total_collateral
        avg_threshold //= total_collateral
    else:
        avg_ltv = avg_threshold = 0
    health = (
        UINT256_MAX if total_debt == 0 else wad_div(percent_mul(total_collateral, avg_threshold), total_debt)
    )
    return AccountData(total_collateral, total_debt, avg_ltv, avg_threshold, health, has_zero_ltv)
