"""Aave V3 events that change a user's position, and which topic holds the user.

Reserve-level changes (rates, indexes, configuration, prices) need no events: the global part of
every refresh re-reads them. Only *who* changed comes from logs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from eth_utils.address import to_checksum_address

from keeper.chain.abi import Contract, contract

POOL = contract("aave_v3_0/IPool")
POOL_V3_6 = contract("aave_v3_6/IPool")
CONFIGURATOR_V3_6 = contract("aave_v3_6/IPoolConfigurator")
A_TOKEN = contract("aave_v3_0/IAToken")
FEED = contract("common/AggregatorV3Interface")

POOL_USER_FIELDS: dict[str, tuple[str, ...]] = {
    "Supply": ("onBehalfOf",),
    "MintUnbacked": ("onBehalfOf",),
    "Withdraw": ("user",),
    "Borrow": ("onBehalfOf",),
    "Repay": ("user",),
    "SwapBorrowRateMode": ("user",),
    "RebalanceStableBorrowRate": ("user",),
    "UserEModeSet": ("user",),
    "ReserveUsedAsCollateralEnabled": ("user",),
    "ReserveUsedAsCollateralDisabled": ("user",),
    "LiquidationCall": ("user",),
}
"""Pool events that change a position -> the indexed fields naming the affected user."""

A_TOKEN_USER_FIELDS: dict[str, tuple[str, ...]] = {"BalanceTransfer": ("from", "to")}
"""aToken transfers move collateral without a pool event (unless a balance reaches zero)."""


def _user_topics(abi: Contract, fields: dict[str, tuple[str, ...]]) -> dict[str, tuple[int, ...]]:
    events = {name: abi.event(name) for name in fields}
    return {event.topic: tuple(event.topic_index(f) for f in fields[name]) for name, event in events.items()}


POOL_USER_TOPICS = _user_topics(POOL, POOL_USER_FIELDS) | _user_topics(
    POOL_V3_6, {"DeficitCreated": ("user",)}
)
"""Pool event topic0 -> indexes of the topics that name an affected user (v3.3+: a deficit burns the
user's remaining debts)."""

A_TOKEN_USER_TOPICS = _user_topics(A_TOKEN, A_TOKEN_USER_FIELDS)

BORROW_TOPIC = POOL.event("Borrow").topic


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


LIQUIDATION_CALL_EVENT = POOL.event("LiquidationCall")
LIQUIDATION_CALL = LIQUIDATION_CALL_EVENT.topic


def liquidation(log: dict[str, Any]) -> dict[str, Any] | None:
    """What a ``LiquidationCall`` event says happened (amounts as the pool moved them)."""
    if not LIQUIDATION_CALL_EVENT.matches(log):
        return None
    fields = LIQUIDATION_CALL_EVENT.decode(log)
    return {
        "collateral_asset": fields["collateralAsset"],
        "debt_asset": fields["debtAsset"],
        "user": fields["user"],
        "debt_repaid": fields["debtToCover"],
        "collateral_seized": fields["liquidatedCollateralAmount"],
        "liquidator": fields["liquidator"],
        "receive_a_token": fields["receiveAToken"],
    }


ANSWER_UPDATED_EVENT = FEED.event("AnswerUpdated")
ANSWER_UPDATED = ANSWER_UPDATED_EVENT.topic
"""Chainlink-style feeds emit it on every new answer (the devnet's feeds and Chainlink aggregators)."""


def feed_answer(log: dict[str, Any]) -> tuple[str, int] | None:
    """(feed, new answer) of an ``AnswerUpdated`` log; the answer is a signed int256 topic."""
    if not ANSWER_UPDATED_EVENT.matches(log):
        return None
    current: int = ANSWER_UPDATED_EVENT.decode(log)["current"]
    return to_checksum_address(log["address"]), current


RULE_EVENTS = tuple(CONFIGURATOR_V3_6.events.values())
"""PoolConfigurator events that change who can be liquidated and how (eMode bitmaps 3.2+ / 3.6,
grace periods 3.1+, collateral parameters, pause). The state they change is re-read every block
with the pool's; these say *why* it changed, for the log."""
RULE_TOPICS = {event.topic: event for event in RULE_EVENTS}


def rule_changes(logs: Iterable[dict[str, Any]], configurator: str) -> list[dict[str, Any]]:
    """The configurator's rule changes in these logs: the event's name (``change``) and its fields."""
    configurator_lower = configurator.lower()
    changes = []
    for log in logs:
        topics = log["topics"]
        if not topics or log["address"].lower() != configurator_lower:
            continue
        event = RULE_TOPICS.get(topics[0])
        if event is not None and event.matches(log):
            changes.append({"change": event.name, **event.decode(log)})
    return changes
