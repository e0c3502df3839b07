"""The sent-transaction records of the store: every move of a nonce, written before it is relied on.

A mixin of `keeper.state.store.Store` (same connection, same lock, same write transactions): each
sent transaction is recorded before it is broadcast, and every state change is checked against
`keeper.state.txstate.allowed`. A move outside it means the store (or the caller's picture of
its own transactions) is wrong, and the keeper must stop rather than guess. These commits are
synced to disk (``durable``): a forgotten sent transaction cannot be re-read from the chain.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, fields, replace
from typing import Any

from keeper.errors import Halt
from keeper.state.txstate import REORGED_OUT, SentTx, TxState, allowed

_TX_FIELDS = tuple(field.name for field in fields(SentTx))
_TX_COLUMNS = ", ".join(_TX_FIELDS)
_INSERT_TX = f"INSERT INTO transactions ({_TX_COLUMNS}) VALUES ({', '.join('?' * len(_TX_FIELDS))})"


@dataclass(frozen=True, slots=True)
class ReceiptRecord:
    """What the store keeps of a keeper transaction's receipt."""

    tx_hash: str
    block: int
    gas_used: int
    effective_gas_price: int
    success: bool


class TransactionLog:
    _conn: sqlite3.Connection
    _lock: threading.Lock

    def _write(self, *, durable: bool = False) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def record_sent(self, tx: SentTx) -> None:
        """Record a signed transaction as pending. Its nonce must not be in use already.

        Call it *before* broadcasting (the hash is known once signed): a crash in between then
        leaves a record to re-broadcast or drop, never a transaction the store does not know.
        """
        _require_pending(tx)
        with self._write(durable=True) as conn:
            _check_new(conn, tx)
            conn.execute(_INSERT_TX, _tx_row(tx, time.time()))

    def record_sent_many(self, txs: Sequence[SentTx]) -> None:
        """`record_sent` for a block's worth of transactions: one durable commit for all of them."""
        for tx in txs:
            _require_pending(tx)
        with self._write(durable=True) as conn:
            now = time.time()
            for tx in txs:
                _check_new(conn, tx)
                conn.execute(_INSERT_TX, _tx_row(tx, now))

    def mark_replaced(self, old_hash: str, new: SentTx) -> None:
        """``new`` (same nonce, higher fees) replaces ``old_hash``: one transaction for both rows.

        Like :meth:`record_sent`, call it before broadcasting ``new``.
        """
        _require_pending(new)
        with self._write(durable=True) as conn:
            old = _transition(conn, old_hash, TxState.REPLACED)
            if new.nonce != old.nonce:
                raise ValueError(
                    f"replacement {new.tx_hash} has nonce {new.nonce}, {old_hash} has {old.nonce}"
                )
            if _get_tx(conn, new.tx_hash) is not None:
                raise Halt(f"replacement {new.tx_hash} is already recorded")
            now = time.time()
            conn.execute(
                "UPDATE transactions SET state = ?, updated_at = ? WHERE tx_hash = ?",
                (TxState.REPLACED.value, now, old_hash),
            )
            conn.execute(_INSERT_TX, _tx_row(new, now))

    def mark_mined(
        self, tx_hash: str, block: int, gas_used: int, effective_gas_price: int, success: bool
    ) -> None:
        """Record the receipt (status 1: mined, 0: reverted); the nonce's other transactions are dropped."""
        self.mark_mined_many([ReceiptRecord(tx_hash, block, gas_used, effective_gas_price, success)])

    def mark_mined_many(self, receipts: Sequence[ReceiptRecord]) -> None:
        """`mark_mined` for a block's receipts in one durable commit (one disk sync, not one each)."""
        if not receipts:
            return
        with self._write(durable=True) as conn:
            for receipt in receipts:
                _mined(conn, receipt)

    def drop_for_filler(self, refused_hash: str, note: str, filler: SentTx) -> None:
        """The node refused ``refused_hash``: it is dropped and ``filler`` (its nonce, an empty
        self-transfer) recorded in the same commit, so a crash between the two cannot leave the nonce
        recorded by nothing pending - a gap that would hold back every later transaction."""
        _require_pending(filler)
        with self._write(durable=True) as conn:
            refused = _transition(conn, refused_hash, TxState.DROPPED)
            if filler.nonce != refused.nonce:
                raise ValueError(
                    f"filler {filler.tx_hash} has nonce {filler.nonce}, {refused_hash} has {refused.nonce}"
                )
            now = time.time()
            conn.execute(
                "UPDATE transactions SET state = ?, note = ?, updated_at = ? WHERE tx_hash = ?",
                (TxState.DROPPED.value, note, now, refused_hash),
            )
            _check_new(conn, filler)
            conn.execute(_INSERT_TX, _tx_row(filler, now))

    def mark_dropped(self, tx_hash: str, note: str) -> None:
        """The transaction will never be included (abandoned, or evicted); ``note`` says why."""
        with self._write(durable=True) as conn:
            _transition(conn, tx_hash, TxState.DROPPED)
            conn.execute(
                "UPDATE transactions SET state = ?, note = ?, updated_at = ? WHERE tx_hash = ?",
                (TxState.DROPPED.value, note, time.time(), tx_hash),
            )

    def reopen_mined_after(self, block_number: int, head: int) -> list[SentTx]:
        """A reorg abandoned every block above ``block_number``: the transactions recorded as mined
        (or reverted) in them are pending again, with their receipt fields cleared and ``head`` (the
        newest block known) as their sent block, so a fee bump waits as long as for one just sent
        (they are re-sent now). Returns them.

        This is the one way out of a terminal state (`keeper.state.txstate.REORGED_OUT`): the receipt
        the keeper settled on no longer exists, and a nonce the store calls used while the chain
        does not would hold back every later transaction of the account.
        """
        with self._write(durable=True) as conn:
            rows = conn.execute(
                f"SELECT {_TX_COLUMNS} FROM transactions"
                " WHERE mined_block > ? AND state IN (?, ?) ORDER BY nonce",
                (block_number, *(state.value for state in REORGED_OUT)),
            ).fetchall()
            reopened = [_tx_from_row(row) for row in rows]
            conn.executemany(
                """UPDATE transactions SET state = ?, mined_block = NULL, gas_used = NULL,
                   effective_gas_price = NULL, sent_block = ?, updated_at = ? WHERE tx_hash = ?""",
                ((TxState.PENDING.value, head, time.time(), tx.tx_hash) for tx in reopened),
            )
        return [
            replace(
                tx,
                state=TxState.PENDING,
                sent_block=head,
                mined_block=None,
                gas_used=None,
                effective_gas_price=None,
            )
            for tx in reopened
        ]

    def nonce_records(self, nonce: int) -> list[SentTx]:
        """Every transaction recorded with ``nonce`` (the original, its fee bumps, a cancel)."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_TX_COLUMNS} FROM transactions WHERE nonce = ? ORDER BY rowid", (nonce,)
            ).fetchall()
        return [_tx_from_row(row) for row in rows]

    def in_flight(self) -> list[SentTx]:
        """The pending transactions (the newest one of each unmined nonce), by nonce."""
        return self.transactions(TxState.PENDING)

    def transactions(self, state: TxState | None = None, min_nonce: int = 0) -> list[SentTx]:
        """Recorded transactions, all or in one state, from ``min_nonce`` on, by nonce then in the
        order they were sent."""
        sql = f"SELECT {_TX_COLUMNS} FROM transactions WHERE nonce >= ?"
        args: tuple[str | int, ...] = (min_nonce,)
        if state is not None:
            sql, args = f"{sql} AND state = ?", (min_nonce, TxState(state).value)
        with self._lock:
            return [_tx_from_row(row) for row in self._conn.execute(f"{sql} ORDER BY nonce, rowid", args)]


def _require_pending(tx: SentTx) -> None:
    if tx.state is not TxState.PENDING:
        raise ValueError(f"a newly sent transaction is pending, {tx.tx_hash} is {tx.state}")


def _check_new(conn: sqlite3.Connection, tx: SentTx) -> None:
    """Refuse a second record of one hash, or a new transaction on a nonce that is not free."""
    if _get_tx(conn, tx.tx_hash) is not None:
        raise Halt(f"transaction {tx.tx_hash} is already recorded")
    row = conn.execute(
        "SELECT tx_hash, state FROM transactions WHERE nonce = ? AND state != ? LIMIT 1",
        (tx.nonce, TxState.DROPPED.value),
    ).fetchone()
    if row is not None:
        raise Halt(
            f"nonce {tx.nonce} of {tx.tx_hash} is already used by {row[0]} ({row[1]}); "
            "only a replacement may reuse a nonce"
        )


def _transition(conn: sqlite3.Connection, tx_hash: str, to_state: TxState) -> SentTx:
    """The transaction ``tx_hash``, after checking that it exists and may move to ``to_state``."""
    tx = _get_tx(conn, tx_hash)
    if tx is None:
        raise Halt(f"transaction {tx_hash} is not in the store; cannot mark it {to_state}")
    if not allowed(tx.state, to_state):
        raise Halt(f"transaction {tx_hash} (nonce {tx.nonce}) cannot go from {tx.state} to {to_state}")
    return tx


def _get_tx(conn: sqlite3.Connection, tx_hash: str) -> SentTx | None:
    row = conn.execute(f"SELECT {_TX_COLUMNS} FROM transactions WHERE tx_hash = ?", (tx_hash,)).fetchone()
    return None if row is None else _tx_from_row(row)


def _tx_row(tx: SentTx, now: float) -> tuple[Any, ...]:
    values = {name: getattr(tx, name) for name in _TX_FIELDS}
    values.update(expected_profit_wei=str(tx.expected_profit_wei), state=tx.state.value, updated_at=now)
    return tuple(values.values())


def _tx_from_row(row: tuple[Any, ...]) -> SentTx:
    values = dict(zip(_TX_FIELDS, row, strict=True))
    values.update(expected_profit_wei=int(values["expected_profit_wei"]), state=TxState(values["state"]))
    return SentTx(**values)


def _mined(conn: sqlite3.Connection, receipt: ReceiptRecord) -> None:
    state = TxState.MINED if receipt.success else TxState.REVERTED
    tx = _transition(conn, receipt.tx_hash, state)
    others = conn.execute(
        "SELECT tx_hash, state FROM transactions WHERE nonce = ? AND tx_hash != ? AND state != ?",
        (tx.nonce, receipt.tx_hash, TxState.DROPPED.value),
    ).fetchall()
    for other_hash, other_state in others:
        if not allowed(TxState(other_state), TxState.DROPPED):
            raise Halt(f"nonce {tx.nonce} mined twice: {receipt.tx_hash} and {other_hash} ({other_state})")
    now = time.time()
    conn.execute(
        """UPDATE transactions SET state = ?, mined_block = ?, gas_used = ?,
           effective_gas_price = ?, updated_at = ? WHERE tx_hash = ?""",
        (state.value, receipt.block, receipt.gas_used, receipt.effective_gas_price, now, receipt.tx_hash),
    )
    conn.executemany(
        "UPDATE transactions SET state = ?, note = ?, updated_at = ? WHERE tx_hash = ?",
        ((TxState.DROPPED.value, f"nonce used by {receipt.tx_hash}", now, h) for h, _ in others),
    )
