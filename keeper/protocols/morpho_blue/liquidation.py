"""Morpho Blue liquidation, exactly as ``Morpho.liquidate`` (1.0.0) computes it. Pure.

The liquidator names either the collateral to seize or the borrow shares to repay; the other side
follows with the protocol's rounding. When the position's collateral reaches zero, the remaining
debt is realized as bad debt against suppliers.
"""

from __future__ import annotations

from dataclasses import dataclass

from keeper.math.morpho import (
    WAD,
    mul_div_down,
    mul_div_up,
    to_assets_down,
    to_assets_up,
    to_shares_up,
    w_div_down,
    w_div_up,
    w_mul_down,
)
from keeper.protocols.base import NotLiquidatable

from .math import ORACLE_PRICE_SCALE, is_healthy
from .state import Market, Position

LIQUIDATION_CURSOR = 3 * 10**17
MAX_LIQUIDATION_INCENTIVE_FACTOR = 115 * 10**16


@dataclass(frozen=True, slots=True)
class Outcome:
    seized_assets: int
    repaid_shares: int
    repaid_assets: int
    bad_debt_assets: int
    bad_debt_shares: int


def liquidation_incentive_factor(lltv: int) -> int:
    """min(1.15, 1 / (1 - 0.3 * (1 - lltv))) in WAD, rounded as the contract does."""
    return min(
        MAX_LIQUIDATION_INCENTIVE_FACTOR, w_div_down(WAD, WAD - w_mul_down(LIQUIDATION_CURSOR, WAD - lltv))
    )


def repaid_shares_for_seized(seized: int, market: Market, price: int, lltv: int) -> int:
    quoted = mul_div_up(seized, price, ORACLE_PRICE_SCALE)
    return to_shares_up(
        w_div_up(quoted, liquidation_incentive_factor(lltv)),
        market.total_borrow_assets,
        market.total_borrow_shares,
    )


def seized_for_repaid_shares(shares: int, market: Market, price: int, lltv: int) -> int:
    assets = to_assets_down(shares, market.total_borrow_assets, market.total_borrow_shares)
    return mul_div_down(w_mul_down(assets, liquidation_incentive_factor(lltv)), ORACLE_PRICE_SCALE, price)


def liquidate(
    market: Market, position: Position, price: int, lltv: int, seized_assets: int = 0, repaid_shares: int = 0
) -> Outcome:
    """``liquidate(params, borrower, seizedAssets, repaidShares)`` on an already accrued ``market``."""
    if (seized_assets == 0) == (repaid_shares == 0):
        raise NotLiquidatable("INCONSISTENT_INPUT")
    if is_healthy(position, market, price, lltv):
        raise NotLiquidatable("HEALTHY_POSITION")
    if seized_assets > 0:
        repaid_shares = repaid_shares_for_seized(seized_assets, market, price, lltv)
    else:
        seized_assets = seized_for_repaid_shares(repaid_shares, market, price, lltv)
    repaid_assets = to_assets_up(repaid_shares, market.total_borrow_assets, market.total_borrow_shares)
    if repaid_shares > position.borrow_shares or seized_assets > position.collateral:
        raise NotLiquidatable("UNDERFLOW")
    borrow_shares_left = position.borrow_shares - repaid_shares
    total_shares = market.total_borrow_shares - repaid_shares
    total_assets = max(market.total_borrow_assets - repaid_assets, 0)
    bad_shares = bad_assets = 0
    if position.collateral == seized_assets:
        bad_shares = borrow_shares_left
        bad_assets = min(total_assets, to_assets_up(bad_shares, total_assets, total_shares))
    return Outcome(seized_assets, repaid_shares, repaid_assets, bad_assets, bad_shares)


def largest_liquidation(market: Market, position: Position, price: int, lltv: int) -> Outcome:
    """The biggest liquidation the contract accepts: all the debt, or else all the collateral.

    Repaying every share is tried first; if that would seize more collateral than there is, the
    whole collateral is seized instead (realizing bad debt). Rounding can make "all collateral"
    ask for one share too many, so the seized amount is then searched down to the largest that fits.
    """
    if is_healthy(position, market, price, lltv):
        raise NotLiquidatable("HEALTHY_POSITION")
    if (
        position.borrow_shares
        and seized_for_repaid_shares(position.borrow_shares, market, price, lltv) <= position.collateral
    ):
        return liquidate(market, position, price, lltv, repaid_shares=position.borrow_shares)
    if position.collateral == 0:
        raise NotLiquidatable("NO_COLLATERAL")
    low, high = 1, position.collateral
    if repaid_shares_for_seized(low, market, price, lltv) > position.borrow_shares:
        raise NotLiquidatable("UNDERFLOW")
    while low < high:
        middle = (low + high + 1) // 2
        if repaid_shares_for_seized(middle, market, price, lltv) <= position.borrow_shares:
            low = middle
        else:
            high = middle - 1
    return liquidate(market, position, price, lltv, seized_assets=low)
