"""Morpho Blue events: markets from ``CreateMarket``, touched borrowers from position events.

Market-level changes (interest accrual, fees) need no events: every refresh re-reads the
markets that hold tracked positions. Supply-side events do not change any borrower's health.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from .state import MarketParams


def topic(signature: str) -> str:
    return "0x" + keccak(text=signature).hex()


MARKET_PARAMS = "(address,address,address,address,uint256)"
CREATE_MARKET = topic(f"CreateMarket(bytes32,{MARKET_PARAMS})")

BORROWER_TOPICS: dict[str, int] = {
    topic("SupplyCollateral(bytes32,address,address,uint256)"): 3,
    topic("WithdrawCollateral(bytes32,address,address,address,uint256)"): 2,
    topic("Borrow(bytes32,address,address,address,uint256,uint256)"): 2,
    topic("Repay(bytes32,address,address,uint256,uint256)"): 3,
    topic("Liquidate(bytes32,address,address,uint256,uint256,uint256,uint256,uint256)"): 3,
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
