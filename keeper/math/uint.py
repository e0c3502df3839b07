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
