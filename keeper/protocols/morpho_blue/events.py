"""Morpho Blue events: markets from ``CreateMarket``, touched borrowers from position events.

Market-level changes (interest accrual, fees) need no events: every refresh re-reads the
markets that hold tracked positions. Supply-side events do not change any borrower's health.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from eth_utils.address import to_checksum_address

from keeper.protocols.base import event_topic

from .state import MarketParams

MARKET_PARAMS = "(address,address,address,address,uint256)"
CREATE_MARKET = event_topic(f"CreateMarket(bytes32,{MARKET_PARAMS})")

BORROWER_TOPICS: dict[str, int] = {
    event_topic("SupplyCollateral(bytes32,address,address,uint256)"): 3,
    event_topic("WithdrawCollateral(bytes32,address,address,address,uint256)"): 2,
    event_topic("Borrow(bytes32,address,address,address,uint256,uint256)"): 2,
    event_topic("Repay(bytes32,address,address,uint256,uint256)"): 3,
    event_topic("Liquidate(bytes32,address,address,uint256,uint256,uint256,uint256,uint256)"): 3,
}
"""Event topic0 -> index of the topic naming the borrower (topic 1 is always the market id)."""


def _address(word: str) -> str:
    return to_checksum_address("0x" + word[-40:])


def created_markets(logs: Iterable[dict[str, Any]], morpho: str) -> list[MarketParams]:
    markets = []
    for log in logs:
        if log["address"].lower() != morpho.lower() or not log["topics"] or log["topics"][0] != CREATE_MARKET:
            continue
        data = bytes.fromhex(log["data"][2:])
        loan, collateral, oracle, irm = (
            to_checksum_address(data[i * 32 + 12 : i * 32 + 32]) for i in range(4)
        )
        lltv = int.from_bytes(data[128:160], "big")
        markets.append(MarketParams(log["topics"][1], loan, collateral, oracle, irm, lltv))
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


LIQUIDATE = event_topic("Liquidate(bytes32,address,address,uint256,uint256,uint256,uint256,uint256)")


def liquidation(log: dict[str, Any]) -> dict[str, Any] | None:
    """What a ``Liquidate`` event says happened (amounts as Morpho moved them)."""
    topics = log["topics"]
    if not topics or topics[0] != LIQUIDATE:
        return None
    data = bytes.fromhex(log["data"][2:])
    repaid, shares, seized, bad_assets, bad_shares = (
        int.from_bytes(data[i : i + 32], "big") for i in range(0, 160, 32)
    )
    return {
        "market": topics[1],
        "liquidator": _address(topics[2]),
        "user": _address(topics[3]),
        "debt_repaid": repaid,
        "repaid_shares": shares,
        "collateral_seized": seized,
        "bad_debt": bad_assets,
        "bad_debt_shares": bad_shares,
    }
