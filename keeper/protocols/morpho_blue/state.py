"""Morpho Blue state as plain data, decoded from ``idToMarketParams``, ``market`` and ``position``."""

from __future__ import annotations

from dataclasses import dataclass

ZERO_ADDRESS = "0x" + "00" * 20


@dataclass(frozen=True, slots=True)
class MarketParams:
    id: str
    loan_token: str
    collateral_token: str
    oracle: str
    irm: str
    lltv: int

    @property
    def has_irm(self) -> bool:
        return int(self.irm, 16) != 0


@dataclass(frozen=True, slots=True)
class Market:
    """``Morpho.market(id)``: totals as stored, i.e. as of ``last_update``."""

    total_supply_assets: int
    total_supply_shares: int
    total_borrow_assets: int
    total_borrow_shares: int
    last_update: int
    fee: int


@dataclass(frozen=True, slots=True)
class MarketState:
    """One market at one block: stored totals, the oracle's price and the IRM's rate for the next accrual."""

    params: MarketParams
    market: Market
    price: int
    """``IOracle.price()``: collateral priced in loan token, scaled by 1e36."""
    borrow_rate: int
    """``IIrm.borrowRateView(params, market)`` per second, in WAD; 0 when the market has no IRM."""


@dataclass(frozen=True, slots=True)
class Position:
    supply_shares: int
    borrow_shares: int
    collateral: int
