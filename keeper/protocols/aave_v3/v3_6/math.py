"""Aave v3.6 health, exactly as its ``GenericLogic.calculateUserAccountData`` computes it (pure).

What differs from v3.0.x (`keeper.protocols.aave_v3.math`), per ``aave-v3.6-notes.md`` §1:

* the debt index grows with the 3.4 compounding formula (`compounded_interest_v3_4`); the
  liquidity index is unchanged (linear, half-up ``rayMul``);
* balances round by TokenMath: aToken ``rayMulFloor``, variable debt ``rayMulCeil``; no stable debt;
* a debt value is ``mulDivCeil(debt, price, unit)``; a collateral value still floors;
* eMode: the category's LT applies to reserves in its collateral bitmap, its LTV likewise unless the
  reserve is in its ltv-zero bitmap; no category price source;
* collateral with reserve LT 0 is counted (weight 0) instead of skipped;
* HF = ``wadDiv(sum(value * LT), debt) / 1e4``: the average LT is not floored first.
"""

from __future__ import annotations

from keeper.math.interest import compounded_interest_v3_4
from keeper.math.uint import UINT256_MAX, mul_div_ceil
from keeper.math.wad_ray import PERCENTAGE_FACTOR, ray_mul, ray_mul_ceil, ray_mul_floor, wad_div

from .. import math as base
from ..math import EMPTY_BALANCES, NO_POSITION, AccountData, ReserveAt
from ..state import EModeCategory, PoolState, Reserve, UserReserve, UserState


def normalized_debt(reserve: Reserve, timestamp: int) -> int:
    """``ReserveLogic.getNormalizedDebt`` with the 3.4 compounding formula."""
    if reserve.last_update_timestamp == timestamp:
        return reserve.variable_borrow_index
    factor = compounded_interest_v3_4(
        reserve.current_variable_borrow_rate, reserve.last_update_timestamp, timestamp
    )
    return ray_mul(factor, reserve.variable_borrow_index)


def reserves_at(pool: PoolState, timestamp: int) -> dict[int, ReserveAt]:
    return base.reserves_at(pool, timestamp, normalized_debt)


def collateral_balance(at: ReserveAt, balances: UserReserve) -> int:
    """``TokenMath.getATokenBalance``: ``rayMulFloor(scaled, normalizedIncome)``."""
    return ray_mul_floor(balances.scaled_a_token, at.normalized_income)


def debt_balance(at: ReserveAt, balances: UserReserve) -> int:
    """``TokenMath.getVTokenBalance``: ``rayMulCeil(scaled, normalizedDebt)``."""
    return ray_mul_ceil(balances.scaled_variable_debt, at.normalized_debt)


def _on(bitmap: int, reserve_id: int) -> bool:
    """``EModeConfiguration.isReserveEnabledOnBitmap``."""
    return bool((bitmap >> reserve_id) & 1)


def liquidation_threshold(reserve: Reserve, emode: EModeCategory | None) -> int:
    """The eMode LT for a reserve in the user's category's collateral bitmap, else the reserve's."""
    if emode is not None and _on(emode.collateral_bitmap, reserve.id):
        return emode.liquidation_threshold
    return reserve.config.liquidation_threshold


def ltv(reserve: Reserve, emode: EModeCategory | None) -> int:
    """``ValidationLogic.getUserReserveLtv`` (3.6)."""
    if emode is not None and _on(emode.collateral_bitmap, reserve.id):
        return 0 if _on(emode.ltvzero_bitmap, reserve.id) else emode.ltv
    return reserve.config.ltv


def user_emode(pool: PoolState, user: UserState) -> EModeCategory | None:
    """The user's category; a missing one reads as the pool's zeroed storage: LT 0, empty bitmaps."""
    if user.emode_category == 0:
        return None
    return pool.emode_categories.get(user.emode_category, EModeCategory(user.emode_category, 0, 0, 0, ""))


def account_data(pool: PoolState, at: dict[int, ReserveAt], user: UserState) -> AccountData:
    """``calculateUserAccountData`` (3.6) for one user: same loop, same integer operations."""
    if user.configuration == 0:
        return NO_POSITION
    emode = user_emode(pool, user)
    total_collateral = total_debt = weighted_ltv = weighted_threshold = 0
    has_zero_ltv = False
    for reserve_id in user.flagged_reserve_ids():
        reserve_at = at.get(reserve_id)
        if reserve_at is None:  # a dropped reserve: the pool skips address(0) too
            continue
        reserve = reserve_at.reserve
        balances = user.reserves.get(reserve_id, EMPTY_BALANCES)
        if user.is_using_as_collateral(reserve_id):
            value = collateral_balance(reserve_at, balances) * reserve_at.price // reserve_at.unit
            total_collateral += value
            reserve_ltv = ltv(reserve, emode)
            if reserve_ltv == 0:
                has_zero_ltv = True
            else:
                weighted_ltv += value * reserve_ltv
            weighted_threshold += value * liquidation_threshold(reserve, emode)
        if user.is_borrowing(reserve_id):
            total_debt += mul_div_ceil(debt_balance(reserve_at, balances), reserve_at.price, reserve_at.unit)
    health = UINT256_MAX if total_debt == 0 else wad_div(weighted_threshold, total_debt) // PERCENTAGE_FACTOR
    avg_ltv = weighted_ltv // total_collateral if total_collateral else 0
    avg_threshold = weighted_threshold // total_collateral if total_collateral else 0
    return AccountData(total_collateral, total_debt, avg_ltv, avg_threshold, health, has_zero_ltv)
