"""The life of a sent transaction as explicit, persisted state: which moves are legal, and the record.

Every nonce the keeper uses moves pending -> replaced -> mined / reverted / dropped, and the store
writes each move before the keeper acts on it, so a restart knows exactly what is in flight. The
transition table lives here, pure, so the store, the tracker and the tests agree on one definition;
a move outside it means the keeper's picture of its own transactions is wrong, which is a reason
to stop, not to carry on.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from keeper.protocols.base import PositionKey


class TxState(StrEnum):
    PENDING = "pending"
    """Broadcast, no receipt yet: the newest transaction for its nonce."""
    REPLACED = "replaced"
    """Superseded by a higher-fee transaction with the same nonce; it may still be the one mined."""
    MINED = "mined"
    """Included with status 1."""
    REVERTED = "reverted"
    """Included with status 0: the nonce is used and the gas is paid."""
    DROPPED = "dropped"
    """Will never be included: another transaction used its nonce, or the keeper abandoned it."""


APPROVAL_NOTE = "approval"
"""The note of an ERC-20 approval the keeper sent for its inventory (and of its fee bumps): its
``market`` is the token and its ``user`` the spender, so one approval per (token, spender) is in
flight at a time, like one liquidation per position."""

CANCEL_NOTE = "cancel"
GAP_FILLER_NOTE = "gap filler"
"""Notes of the keeper's empty self-transfers: a cancel takes a waiting liquidation's nonce, a gap
filler a refused one's. Neither holds a position (their ``user`` is the keeper's own address)."""

TERMINAL: frozenset[TxState] = frozenset({TxState.MINED, TxState.REVERTED, TxState.DROPPED})

_ALLOWED: dict[TxState, frozenset[TxState]] = {
    TxState.PENDING: frozenset({TxState.REPLACED, TxState.MINED, TxState.REVERTED, TxState.DROPPED}),
    TxState.REPLACED: frozenset({TxState.MINED, TxState.REVERTED, TxState.DROPPED}),
    TxState.MINED: frozenset(),
    TxState.REVERTED: frozenset(),
    TxState.DROPPED: frozenset(),
}


REORGED_OUT: frozenset[TxState] = frozenset({TxState.MINED, TxState.REVERTED})
"""The states a reorg can take back: the block holding the receipt left the canonical chain, so the
nonce is free again and the transaction is pending once more (Anvil, like a real node after a deep
reorg, may not even have it in its pool: the keeper re-sends or cancels it)."""


def allowed(from_state: TxState, to_state: TxState) -> bool:
    """Whether a transaction may move from ``from_state`` to ``to_state``.

    No state moves to itself, and nothing leaves a terminal state: a receipt is final as far as the
    keeper is concerned (it marks a transaction mined only once the receipt is deep enough).
    """
    return to_state in _ALLOWED[from_state]


@dataclass(frozen=True, slots=True)
class SentTx:
    """One signed transaction the keeper broadcast, with what it needs to re-broadcast and account it.

    ``raw_tx`` is the hex of the signed transaction, so a restart can send the very same bytes again
    (same hash, no new nonce). Fees and gas are in wei / gas units; ``expected_profit_wei`` is the
    profit after gas the keeper computed when it decided to send.
    """

    nonce: int
    tx_hash: str
    protocol: str
    market: str
    user: str
    raw_tx: str
    max_fee_per_gas: int
    max_priority_fee_per_gas: int
    gas_limit: int
    expected_profit_wei: int
    sent_block: int
    state: TxState = TxState.PENDING
    mined_block: int | None = None
    gas_used: int | None = None
    effective_gas_price: int | None = None
    note: str | None = None
    updated_at: float = 0.0
    """Unix time of the last write, stamped by the store; the value passed in is not stored."""

    @property
    def position(self) -> PositionKey:
        return PositionKey(self.market, self.user)

    @property
    def is_approval(self) -> bool:
        return self.note == APPROVAL_NOTE

    @property
    def holds_position(self) -> bool:
        """Whether it is the one transaction in flight for its (market, user) - or, for an approval,
        (token, spender); a cancel or gap filler only keeps a nonce."""
        return self.note not in (CANCEL_NOTE, GAP_FILLER_NOTE)

    @property
    def in_flight(self) -> bool:
        return self.state is TxState.PENDING
