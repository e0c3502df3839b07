"""Morpho Blue interest accrual and health, exactly as ``Morpho._accrueInterest`` and ``_isHealthy``.

Pure. ``accrue`` turns stored totals into what the contract would hold after accruing at a
timestamp, given the IRM's rate for that accrual; health then uses those totals.
"""

from __future__ import annotations

from dataclasses import replace

from keeper.math.morpho import (
    WAD,
    mul_div_down,
    to_assets_up,
    to_shares_down,
    w_div_down,
    w_mul_down,
    w_taylor_compounded,
)
from keeper.math.uint import UINT256_MAX

from .state import Market, MarketState, Position

ORACLE_PRICE_SCALE = 10**36


def accrue(market: Market, borrow_rate: int, has_irm: bool, timestamp: int) -> Market:
    """The market after ``_accrueInterest`` at ``timestamp`` (totals, fee shares, last update)."""
    elapsed = timestamp - market.last_update
    if elapsed <= 0:
        return market
    if not has_irm:
        return replace(market, last_update=timestamp)
    interest = w_mul_down(market.total_borrow_assets, w_taylor_compounded(borrow_rate, elapsed))
    total_borrow = market.total_borrow_assets + interest
    total_supply = market.total_supply_assets + interest
    supply_shares = market.total_supply_shares
    if market.fee != 0:
        fee_amount = w_mul_down(interest, market.fee)
        supply_shares += to_shares_down(fee_amount, total_supply - fee_amount, supply_shares)
    return Market(
        total_supply, supply_shares, total_borrow, market.total_borrow_shares, timestamp, market.fee
    )


def market_at(state: MarketState, timestamp: int) -> Market:
    return accrue(state.market, state.borrow_rate, state.params.has_irm, timestamp)


def borrowed_assets(position: Position, market: Market) -> int:
    """Debt rounded up, in the protocol's favour, as the health check sees it."""
    return to_assets_up(position.borrow_shares, market.total_borrow_assets, market.total_borrow_shares)


def max_borrow(collateral: int, price: int, lltv: int) -> int:
    return w_mul_down(mul_div_down(collateral, price, ORACLE_PRICE_SCALE), lltv)


def is_healthy(position: Position, market: Market, price: int, lltv: int) -> bool:
    if position.borrow_shares == 0:
        return True
    return max_borrow(position.collateral, price, lltv) >= borrowed_assets(position, market)


def health_factor(position: Position, market: Market, price: int, lltv: int) -> int:
    """Max borrow over borrowed assets, in WAD; below 1e18 exactly when ``_isHealthy`` is false."""
    borrowed = borrowed_assets(position, market) if position.borrow_shares else 0
    if borrowed == 0:
        return UINT256_MAX
    return w_div_down(max_borrow(position.collateral, price, lltv), borrowed)


__all__ = ["WAD", "accrue", "borrowed_assets", "health_factor", "is_healthy", "market_at", "max_borrow"]
