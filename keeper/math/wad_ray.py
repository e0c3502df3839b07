"""Aave V3 (v3.0.x) WadRayMath and PercentageMath, mirrored from the Solidity assembly.

Aave rounds half up and reverts *before* multiplying, using a pre-check of the form
``a > (MAX - half) / b``. The checks below are written in that same shape, not as "the product is
too big", so a reviewer can diff them line by line against ``WadRayMath.sol`` and
``PercentageMath.sol`` (``@aave/core-v3`` 1.19.x). A Solidity revert becomes ``OverflowError``, or
``ZeroDivisionError`` when the revert is caused by a zero divisor.
"""

from __future__ import annotations

from typing import Final

from keeper.math.uint import UINT256_MAX, checked, require_uint256

WAD: Final[int] = 10**18
HALF_WAD: Final[int] = 5 * 10**17
RAY: Final[int] = 10**27
HALF_RAY: Final[int] = 5 * 10**26
WAD_RAY_RATIO: Final[int] = 10**9

PERCENTAGE_FACTOR: Final[int] = 10**4
HALF_PERCENTAGE_FACTOR: Final[int] = 5 * 10**3


def _half_up_mul(a: int, b: int, half: int, unit: int) -> int:
    """Shared body of wadMul/rayMul/percentMul: revert iff ``b != 0 and a > (MAX - half) / b``."""
    require_uint256(a, b)
    if b != 0 and a > (UINT256_MAX - half) // b:
        raise OverflowError("fixed-point multiplication overflows uint256")
    return (a * b + half) // unit


def _half_up_div(a: int, b: int, unit: int) -> int:
    """Shared body of wadDiv/rayDiv/percentDiv: revert iff ``b == 0 or a > (MAX - b / 2) / unit``."""
    require_uint256(a, b)
    if b == 0:
        raise ZeroDivisionError("fixed-point division by zero")
    half_b = b // 2
    if a > (UINT256_MAX - half_b) // unit:
        raise OverflowError("fixed-point division overflows uint256")
    return (a * unit + half_b) // b


def wad_mul(a: int, b: int) -> int:
    """``a * b`` in wad, rounded half up (WadRayMath.wadMul)."""
    return _half_up_mul(a, b, HALF_WAD, WAD)


def wad_div(a: int, b: int) -> int:
    """``a / b`` in wad, rounded half up (WadRayMath.wadDiv)."""
    return _half_up_div(a, b, WAD)


def ray_mul(a: int, b: int) -> int:
    """``a * b`` in ray, rounded half up (WadRayMath.rayMul); used for every index application."""
    return _half_up_mul(a, b, HALF_RAY, RAY)


def ray_div(a: int, b: int) -> int:
    """``a / b`` in ray, rounded half up (WadRayMath.rayDiv); used to scale amounts by an index."""
    return _half_up_div(a, b, RAY)


def ray_to_wad(a: int) -> int:
    """Ray to wad, rounding a remainder of at least half a unit up. Cannot revert."""
    require_uint256(a)
    wad, remainder = divmod(a, WAD_RAY_RATIO)
    if remainder >= WAD_RAY_RATIO // 2:
        wad += 1
    return wad


def wad_to_ray(a: int) -> int:
    """Wad to ray; Solidity reverts when ``a * 1e9`` wraps, i.e. exceeds uint256."""
    require_uint256(a)
    return checked(a * WAD_RAY_RATIO)


def percent_mul(value: int, percentage: int) -> int:
    """``value * percentage / 1e4`` rounded half up (PercentageMath.percentMul), e.g. liquidation bonus."""
    return _half_up_mul(value, percentage, HALF_PERCENTAGE_FACTOR, PERCENTAGE_FACTOR)


def percent_div(value: int, percentage: int) -> int:
    """``value * 1e4 / percentage`` rounded half up (PercentageMath.percentDiv)."""
    return _half_up_div(value, percentage, PERCENTAGE_FACTOR)


# --- v3.5+ directed rounding (WadRayMath / PercentageMath of @aave-dao/aave-v3-origin 3.6.0) ---
# TokenMath picks floor or ceil so that every scaled<->unscaled conversion favours the pool; a
# half-up result is off by one wei in half the cases. Each revert is checked in the library's shape.


def _checked_product(a: int, b: int) -> int:
    """``a * b`` with the assembly pre-check ``b != 0 and a > MAX / b`` -> revert."""
    require_uint256(a, b)
    if b != 0 and a > UINT256_MAX // b:
        raise OverflowError("fixed-point multiplication overflows uint256")
    return a * b


def _checked_scaled(a: int, b: int, unit: int) -> int:
    """``a * unit`` for a division by ``b``: revert iff ``b == 0 or a > MAX / unit``."""
    require_uint256(a, b)
    if b == 0:
        raise ZeroDivisionError("fixed-point division by zero")
    if a > UINT256_MAX // unit:
        raise OverflowError("fixed-point division overflows uint256")
    return a * unit


def _ceil_div(numerator: int, denominator: int) -> int:
    """``n / d + (n % d != 0)``, as the assembly computes it."""
    quotient, remainder = divmod(numerator, denominator)
    return quotient + (remainder != 0)


def ray_mul_floor(a: int, b: int) -> int:
    """``floor(a * b / RAY)`` (WadRayMath.rayMulFloor): the aToken balance of a scaled amount."""
    return _checked_product(a, b) // RAY


def ray_mul_ceil(a: int, b: int) -> int:
    """``ceil(a * b / RAY)`` (WadRayMath.rayMulCeil): the variable debt of a scaled amount."""
    return _ceil_div(_checked_product(a, b), RAY)


def ray_div_floor(a: int, b: int) -> int:
    """``floor(a * RAY / b)`` (WadRayMath.rayDivFloor): aToken mint, vToken burn scaled amounts."""
    return _checked_scaled(a, b, RAY) // b


def ray_div_ceil(a: int, b: int) -> int:
    """``ceil(a * RAY / b)`` (WadRayMath.rayDivCeil): aToken burn/transfer, vToken mint scaled amounts."""
    return _ceil_div(_checked_scaled(a, b, RAY), b)


def percent_mul_floor(value: int, percentage: int) -> int:
    """``floor(value * percentage / 1e4)`` (PercentageMath.percentMulFloor)."""
    return _checked_product(value, percentage) // PERCENTAGE_FACTOR


def percent_mul_ceil(value: int, percentage: int) -> int:
    """``ceil(value * percentage / 1e4)`` (PercentageMath.percentMulCeil)."""
    return _ceil_div(_checked_product(value, percentage), PERCENTAGE_FACTOR)


def percent_div_ceil(value: int, percentage: int) -> int:
    """``ceil(value * 1e4 / percentage)`` (PercentageMath.percentDivCeil)."""
    return _ceil_div(_checked_scaled(value, percentage, PERCENTAGE_FACTOR), percentage)
