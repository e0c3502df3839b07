"""Morpho Blue 1.0.0 MathLib and SharesMathLib, mirrored from the Solidity.

Morpho rounds explicitly (``Down`` / ``Up``) rather than half up, always in the protocol's favour,
and relies on Solidity 0.8 checked arithmetic: any intermediate above uint256 reverts, which here
raises ``OverflowError``. A zero divisor raises ``ZeroDivisionError``.
"""

from __future__ import annotations

from typing import Final

from keeper.math.uint import checked, require_uint256

WAD: Final[int] = 10**18

VIRTUAL_SHARES: Final[int] = 10**6
"""Virtual shares and assets blunt share-price manipulation of an empty market (OpenZeppelin's method)."""
VIRTUAL_ASSETS: Final[int] = 1


def mul_div_down(x: int, y: int, d: int) -> int:
    """``x * y / d`` rounded down; the product is checked before dividing, as in Solidity."""
    require_uint256(x, y, d)
    return checked(x * y) // d


def mul_div_up(x: int, y: int, d: int) -> int:
    """``(x * y + (d - 1)) / d``: rounded up, and it reverts when the padded numerator overflows.

    With ``d == 0`` Solidity panics on the ``d - 1`` underflow; that is reported as ZeroDivisionError.
    """
    require_uint256(x, y, d)
    product = checked(x * y)
    if d == 0:
        raise ZeroDivisionError("mul_div_up by zero")
    return checked(product + (d - 1)) // d


def w_mul_down(x: int, y: int) -> int:
    """``x * y / WAD`` rounded down."""
    return mul_div_down(x, y, WAD)


def w_div_down(x: int, y: int) -> int:
    """``x * WAD / y`` rounded down."""
    return mul_div_down(x, WAD, y)


def w_div_up(x: int, y: int) -> int:
    """``x * WAD / y`` rounded up."""
    return mul_div_up(x, WAD, y)


def w_taylor_compounded(x: int, n: int) -> int:
    """``e**(x*n) - 1`` in wad from its first three Taylor terms: Morpho's per-accrual growth factor."""
    require_uint256(x, n)
    first_term = checked(x * n)
    second_term = mul_div_down(first_term, first_term, 2 * WAD)
    third_term = mul_div_down(second_term, first_term, 3 * WAD)
    return checked(checked(first_term + second_term) + third_term)


def _virtual_totals(total_assets: int, total_shares: int) -> tuple[int, int]:
    """Totals plus the virtual offsets; each addition is checked like the Solidity expression."""
    require_uint256(total_assets, total_shares)
    return checked(total_assets + VIRTUAL_ASSETS), checked(total_shares + VIRTUAL_SHARES)


def to_shares_down(assets: int, total_assets: int, total_shares: int) -> int:
    """Shares worth ``assets``, rounded down (what a supplier receives)."""
    virtual_assets, virtual_shares = _virtual_totals(total_assets, total_shares)
    return mul_div_down(assets, virtual_shares, virtual_assets)


def to_shares_up(assets: int, total_assets: int, total_shares: int) -> int:
    """Shares worth ``assets``, rounded up (what a borrower owes)."""
    virtual_assets, virtual_shares = _virtual_totals(total_assets, total_shares)
    return mul_div_up(assets, virtual_shares, virtual_assets)


def to_assets_down(shares: int, total_assets: int, total_shares: int) -> int:
    """Assets worth ``shares``, rounded down (what a supplier can withdraw)."""
    virtual_assets, virtual_shares = _virtual_totals(total_assets, total_shares)
    return mul_div_down(shares, virtual_assets, virtual_shares)


def to_assets_up(shares: int, total_assets: int, total_shares: int) -> int:
    """Assets worth ``shares``, rounded up (a borrower's debt, as the health check sees it)."""
    virtual_assets, virtual_shares = _virtual_totals(total_assets, total_shares)
    return mul_div_up(shares, virtual_assets, virtual_shares)
