"""Aave V3 (v3.0.x) MathUtils: the interest accrual factors that move the liquidity and debt indexes.

The keeper needs the index *as of the block it will land in*, so it recomputes the accrual that
``ReserveLogic`` would perform. Both functions mirror ``MathUtils.sol`` including its evaluation order:
the ``unchecked`` blocks there only wrap divisions and subtractions that cannot overflow, so every
multiplication and addition outside them is checked here and raises ``OverflowError`` like a revert.
"""

from __future__ import annotations

from typing import Final

from keeper.math.uint import UINT256_MAX, checked, require_uint256
from keeper.math.wad_ray import RAY, ray_mul

SECONDS_PER_YEAR: Final[int] = 365 * 24 * 60 * 60
"""Aave ignores leap years."""

UINT40_MAX: Final[int] = 2**40 - 1


def _elapsed_s(last_update_ts: int, current_ts: int) -> int:
    """``current - uint256(lastUpdateTimestamp)``; the cast from uint40 bounds the stored timestamp."""
    require_uint256(current_ts)
    if not 0 <= last_update_ts <= UINT40_MAX:
        raise ValueError(f"last_update_ts {last_update_ts} does not fit the uint40 Aave stores")
    return checked(current_ts - last_update_ts)


def calculate_linear_interest(rate_ray: int, last_update_ts: int, current_ts: int) -> int:
    """Linear accrual factor in ray, used for the liquidity index: ``RAY + rate * dt / year``."""
    require_uint256(rate_ray)
    result = checked(rate_ray * _elapsed_s(last_update_ts, current_ts))
    return checked(RAY + result // SECONDS_PER_YEAR)


def calculate_compounded_interest(rate_ray: int, last_update_ts: int, current_ts: int) -> int:
    """Compounded accrual factor in ray, used for the variable debt index.

    Aave approximates ``(1 + rate/year)**dt`` with the first three binomial terms; the truncation
    and each intermediate floor must match exactly, or the locally predicted debt drifts by wei and a
    "just liquidatable" position is misjudged.
    """
    require_uint256(rate_ray)
    exp = _elapsed_s(last_update_ts, current_ts)
    if exp == 0:
        return RAY

    exp_minus_one = exp - 1
    exp_minus_two = exp - 2 if exp > 2 else 0
    base_power_two = ray_mul(rate_ray, rate_ray) // (SECONDS_PER_YEAR * SECONDS_PER_YEAR)
    base_power_three = ray_mul(base_power_two, rate_ray) // SECONDS_PER_YEAR

    # Solidity multiplies left to right and checks each step, so an intermediate product can
    # revert even when a later factor is zero.
    second_term = checked(checked(exp * exp_minus_one) * base_power_two) // 2
    third_term = checked(checked(checked(exp * exp_minus_one) * exp_minus_two) * base_power_three) // 6

    first_term = checked(rate_ray * exp) // SECONDS_PER_YEAR
    return checked(checked(checked(RAY + first_term) + second_term) + third_term)


def compounded_interest_v3_4(rate_ray: int, last_update_ts: int, current_ts: int) -> int:
    """Compounded accrual factor of Aave v3.4+ (``MathUtils.calculateCompoundedInterest``, 3.6.0).

    ``x = rate * dt / year`` (floor), then ``RAY + x + rayMul(x, x/2 + rayMul(x, x/6))``. It is not
    the 3.0 binomial: the values differ from the first second. ``dt`` is a checked subtraction; the
    rest sits in an ``unchecked`` block, so sums and the first product wrap modulo 2**256 while each
    ``rayMul`` still reverts on overflow as the library does.
    """
    require_uint256(rate_ray)
    exp = _elapsed_s(last_update_ts, current_ts)
    if exp == 0:
        return RAY
    x = ((rate_ray * exp) & UINT256_MAX) // SECONDS_PER_YEAR
    inner = (x // 2 + ray_mul(x, x // 6)) & UINT256_MAX
    return (RAY + x + ray_mul(x, inner)) & UINT256_MAX
