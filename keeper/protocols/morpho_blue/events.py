"""Morpho Blue events: markets from ``CreateMarket``, touched borrowers from position events.

Market-level changes (interest accrual, fees) need no events: every refresh re-reads the
markets that hold tracked positions. Supply-side events do not change any borrower's health.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from eth_utils.address import to_checksum_address

from keeper.chain.abi import Binding, Param, contract

from .state import MarketParams

MORPHO = contract("morpho_blue_1_0/IMorpho")
CREATE_MARKET_EVENT = MORPHO.event("CreateMarket")
CREATE_MARKET = CREATE_MARKET_EVENT.topic


def _market_params_struct() -> Param:
    (struct,) = (p for p in CREATE_MARKET_EVENT.inputs if p.name == "marketParams")
    return struct


MARKET_PARAMS = Binding(
    MarketParams,
    [c.name for c in _market_params_struct().components],
    given=("id",),
    source="IMorpho MarketParams",
)
"""``MarketParams`` as Morpho spells it (``CreateMarket``, ``idToMarketParams``, ``liquidate``, the IRM)."""

BORROWER_FIELDS: dict[str, str] = {
    "SupplyCollateral": "onBehalf",
    "WithdrawCollateral": "onBehalf",
    "Borrow": "onBehalf",
    "Repay": "onBehalf",
    "Liquidate": "borrower",
}
"""Events that change a borrower's position -> the indexed field naming the borrower."""

BORROWER_TOPICS: dict[str, int] = {
    MORPHO.event(name).topic: MORPHO.event(name).topic_index(field) for name, field in BORROWER_FIELDS.items()
}
"""Event topic0 -> index of the topic naming the borrower (topic 1 is always the market id)."""


def _address(word: str) -> str:
    return to_checksum_address("0x" + word[-40:])


def created_markets(logs: Iterable[dict[str, Any]], morpho: str) -> list[MarketParams]:
    markets = []
    for log in logs:
        if log["address"].lower() != morpho.lower() or not CREATE_MARKET_EVENT.matches(log):
            continue
        fields = CREATE_MARKET_EVENT.decode(log)
        markets.append(MARKET_PARAMS.fill_named(fields["marketParams"], id=log["topics"][1]))
    return markets


def touched_positions(logs: Iterable[dict[str, Any]], morpho: str) -> set[tuple[str, str]]:
    """(market id, borrower) pairs whose borrow shares or collateral may have changed."""
    touched = set()
    for log in logs:
        topics = log["topics"]
        if log["address"].lower() != morpho.lower() or not topics:
            continue
        index = BORROWER_TOPICS.get(topics[0])
        if index is not None and len(topics) > index:
            touched.add((topics[1], _address(topics[index])))
    return touched


LIQUIDATE_EVENT = MORPHO.event("Liquidate")
LIQUIDATE = LIQUIDATE_EVENT.topic


def liquidation(log: dict[str, Any]) -> dict[str, Any] | None:
    """What a ``Liquidate`` event says happened (amounts as Morpho moved them)."""
    if not LIQUIDATE_EVENT.matches(log):
        return None
    fields = LIQUIDATE_EVENT.decode(log)
    return {
        "market": log["topics"][1],
        "liquidator": fields["caller"],
        "user": fields["borrower"],
        "debt_repaid": fields["repaidAssets"],
        "repaid_shares": fields["repaidShares"],
        "collateral_seized": fields["seizedAssets"],
        "bad_debt": fields["badDebtAssets"],
        "bad_debt_shares": fields["badDebtShares"],
    }
