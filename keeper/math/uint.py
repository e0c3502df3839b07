"""uint256 semantics shared by every fixed-point library: range checks and checked arithmetic."""

from __future__ import annotations

from typing import Final

UINT256_MAX: Final[int] = 2**256 - 1


def require_uint256(*values: int) -> None:
    """Reject what a uint256 argument can never hold: Python ints would silently compute nonsense."""
    for value in values:
        if not 0 <= value <= UINT256_MAX:
            raise ValueError(f"{value} is outside the uint256 range")


def checked(value: int) -> int:
    """Solidity 0.8 checked arithmetic: a result outside uint256 reverts instead of wrapping."""
    if not 0 <= value <= UINT256_MAX:
        raise OverflowError("uint256 arithmetic overflow or underflow")
    return value


def mul_div_ceil(a: int, b: int, c: int) -> int:
    """``ceil(a * b / c)`` (MathUtils.mulDivCeil, Aave v3.5+): reverts if ``c == 0`` or ``a * b`` overflows.

    The zero divisor is checked first, as in the assembly; it raises ``ZeroDivisionError``.
    """
    require_uint256(a, b, c)
    if c == 0:
        raise ZeroDivisionError("mulDivCeil by zero")
    if b != 0 and a > UINT256_MAX // b:
        raise OverflowError("mulDivCeil product overflows uint256")
    quotient, remainder = divmod(a * b, c)
    return quotient + (remainder != 0)
