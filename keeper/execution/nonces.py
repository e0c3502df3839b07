"""Nonce allocation and the one-transaction-per-position rule, owned by the app, pure.

The keeper is the only sender for its account, so it counts nonces itself instead of asking the
node for every transaction (``eth_getTransactionCount(pending)`` lags and differs between nodes).
At start it resumes above both the chain's pending count and every transaction the store says is
still in flight, so a restart never signs a second transaction with a nonce already in use.

A nonce is *reserved*, then either *confirmed* (the signed transaction was handed to the RPC: the
nonce is spent for good, and only a replacement may use it again) or *released* (nothing was sent,
e.g. the simulation failed after reserving). Only the newest reservation can be released: handing
back an older one would leave a gap, and a gap blocks every later transaction of the account. So
reserve at the last moment, just before signing, one opportunity at a time.
"""

from __future__ import annotations

from collections.abc import Sequence

from keeper.errors import Halt
from keeper.protocols.base import PositionKey
from keeper.state.txstate import SentTx


class NonceManager:
    def __init__(self, chain_nonce: int, in_flight: Sequence[SentTx]) -> None:
        """``chain_nonce``: the account's pending transaction count; ``in_flight``: the store's."""
        if chain_nonce < 0:
            raise ValueError(f"chain nonce {chain_nonce} is negative")
        self._next = max(chain_nonce, max((tx.nonce + 1 for tx in in_flight), default=0))
        self._unconfirmed: set[int] = set()
        self._claims: dict[PositionKey, int] = {}
        for tx in (tx for tx in in_flight if tx.holds_position):
            holder = self._claims.setdefault(tx.position, tx.nonce)
            if holder != tx.nonce:
                raise Halt(
                    f"store has two transactions in flight for {tx.protocol} {tx.market} {tx.user}: "
                    f"nonces {holder} and {tx.nonce}"
                )

    @property
    def next_nonce(self) -> int:
        """The nonce :meth:`reserve` will hand out next."""
        return self._next

    def reserve(self) -> int:
        """Hand out the next nonce; it is never handed out again unless released first."""
        nonce = self._next
        self._next += 1
        self._unconfirmed.add(nonce)
        return nonce

    def confirm(self, nonce: int) -> None:
        """The transaction with ``nonce`` was sent: the nonce can no longer be released."""
        if nonce not in self._unconfirmed:
            raise Halt(f"confirm of nonce {nonce}, which is not an open reservation")
        self._unconfirmed.remove(nonce)

    def release(self, nonce: int) -> None:
        """Give back a reserved nonce whose transaction was not sent, and the positions it claimed.

        Only the newest reservation can go back; anything else would leave a gap (or reuse a nonce
        that was sent), so it halts.
        """
        if nonce != self._next - 1 or nonce not in self._unconfirmed:
            raise Halt(
                f"release of nonce {nonce}: only the newest unsent reservation can be released "
                f"(next nonce {self._next}, open reservations {sorted(self._unconfirmed)})"
            )
        self._unconfirmed.remove(nonce)
        self._next = nonce
        for key in [key for key, held in self._claims.items() if held == nonce]:
            del self._claims[key]

    # -- one transaction in flight per position ---------------------------------------------------

    def claim(self, position: PositionKey, nonce: int) -> bool:
        """Mark ``position`` as having the transaction with ``nonce`` in flight; False if it already has one.

        A replacement keeps its nonce and its claim; it does not claim again.
        """
        if position in self._claims:
            return False
        self._claims[position] = nonce
        return True

    def free(self, position: PositionKey) -> None:
        """The position's transaction reached a terminal state (mined, reverted, dropped)."""
        self._claims.pop(position, None)

    def holder(self, position: PositionKey) -> int | None:
        """The nonce of the transaction in flight for ``position``, if any."""
        return self._claims.get(position)
