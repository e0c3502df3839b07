"""Aave V3 events that change a user's position, and which topic holds the user.

Reserve-level changes (rates, indexes, configuration, prices) need no events: the global part of
every refresh re-reads them. Only *who* changed comes from logs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from eth_utils.address import to_checksum_address

from keeper.protocols.base import event_topic

POOL_USER_TOPICS: dict[str, tuple[int, ...]] = {
    event_topic("Supply(address,address,address,uint256,uint16)"): (2,),
    event_topic("MintUnbacked(address,address,address,uint256,uint16)"): (2,),
    event_topic("Withdraw(address,address,address,uint256)"): (2,),
    event_topic("Borrow(address,address,address,uint256,uint8,uint256,uint16)"): (2,),
    event_topic("Repay(address,address,address,uint256,bool)"): (2,),
    event_topic("SwapBorrowRateMode(address,address,uint8)"): (2,),
    event_topic("RebalanceStableBorrowRate(address,address)"): (2,),
    event_topic("UserEModeSet(address,uint8)"): (1,),
    event_topic("ReserveUsedAsCollateralEnabled(address,address)"): (2,),
    event_topic("ReserveUsedAsCollateralDisabled(address,address)"): (2,),
    event_topic("LiquidationCall(address,address,address,uint256,uint256,address,bool)"): (3,),
}
"""Pool event topic0 -> indexes of the topics that name an affected user."""

A_TOKEN_USER_TOPICS: dict[str, tuple[int, ...]] = {
    event_topic("BalanceTransfer(address,address,uint256,uint256)"): (1, 2),
}
"""aToken transfers move collateral without a pool event (unless a balance reaches zero)."""

BORROW_TOPIC = event_topic("Borrow(address,address,address,uint256,uint8,uint256,uint16)")


def _user(word: str) -> str:
    return to_checksum_address("0x" + word[-40:])


def touched_users(logs: Iterable[dict[str, Any]], pool: str, a_tokens: Sequence[str]) -> set[str]:
    """Users whose position may have changed in these logs (from the pool or its aTokens)."""
    pool_lower = pool.lower()
    a_token_set = {a.lower() for a in a_tokens}
    users: set[str] = set()
    for log in logs:
        topics = log["topics"]
        if not topics:
            continue
        address = log["address"].lower()
        if address == pool_lower:
            indexes = POOL_USER_TOPICS.get(topics[0], ())
        elif address in a_token_set:
            indexes = A_TOKEN_USER_TOPICS.get(topics[0], ())
        else:
            continue
        users.update(_user(topics[i]) for i in indexes if i < len(topics))
    users.discard("0x" + "00" * 20)
    return users


LIQUIDATION_CALL = event_topic("LiquidationCall(address,address,address,uint256,uint256,address,bool)")


def liquidation(log: dict[str, Any]) -> dict[str, Any] | None:
    """What a ``LiquidationCall`` event says happened (amounts as the pool moved them)."""
    topics = log["topics"]
    if not topics or topics[0] != LIQUIDATION_CALL:
        return None
    data = bytes.fromhex(log["data"][2:])
    return {
        "collateral_asset": _user(topics[1]),
        "debt_asset": _user(topics[2]),
        "user": _user(topics[3]),
        "debt_repaid": int.from_bytes(data[0:32], "big"),
        "collateral_seized": int.from_bytes(data[32:64], "big"),
        "liquidator": to_checksum_address(data[76:96]),
        "receive_a_token": data[127] == 1,
    }


ANSWER_UPDATED = event_topic("AnswerUpdated(int256,uint256,uint256)")
"""Chainlink-style feeds emit it on every new answer (the devnet's feeds and Chainlink aggregators)."""


def feed_answer(log: dict[str, Any]) -> tuple[str, int] | None:
    """(feed, new answer) of an ``AnswerUpdated`` log; the answer is a signed int256 topic."""
    topics = log["topics"]
    if not topics or topics[0] != ANSWER_UPDATED or len(topics) < 2:
        return None
    raw = int(topics[1], 16)
    return to_checksum_address(log["address"]), raw - (1 << 256) if raw >= 1 << 255 else raw
