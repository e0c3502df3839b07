"""The spend guard's persisted part: every settlement it counted, and whether it is tripped.

A mixin of `keeper.state.store.Store` (same connection, lock and write transactions), like the
transaction log. A trip must survive a restart (the keeper stays stopped until the operator runs
`keeper guard reset`), and so must the settlements the rolling windows sum, so a restart cannot
start the hour afresh. A settlement and the trip it causes commit together, durably.

Reset does not delete settlements (they stay for the record): it clears the trip and forgives
every settlement recorded so far (``forgiven_through`` is the last one's row id), so the caps count
again from the reset on, instead of tripping at once on the figures the operator just cleared.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from contextlib import AbstractContextManager
from typing import Any

from keeper.state.guardstate import Cap, Settlement, Trip

_SETTLEMENT_COLUMNS = "tx_hash, nonce, block, at_s, gas_paid_wei, loss_wei, reverted"
_TRIP_COLUMNS = "cap, window_s, figure, limit_value, at_s, block, tx_hash"
_INSERT_SETTLEMENT = (
    f"INSERT OR IGNORE INTO guard_settlements ({_SETTLEMENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_SET_TRIP = f"""
    INSERT INTO guard_state (id, forgiven_through, {_TRIP_COLUMNS}) VALUES (1, 0, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (id) DO UPDATE SET {", ".join(f"{c} = excluded.{c}" for c in _TRIP_COLUMNS.split(", "))}
    WHERE guard_state.cap IS NULL
"""
"""Record a trip unless one is already recorded: the first cap reached is the one reported."""
_RESET = f"""
    INSERT INTO guard_state (id, forgiven_through, reset_at) VALUES (1, ?, ?)
    ON CONFLICT (id) DO UPDATE SET forgiven_through = excluded.forgiven_through,
    reset_at = excluded.reset_at, {", ".join(f"{c} = NULL" for c in _TRIP_COLUMNS.split(", "))}
"""


class GuardLedger:
    _conn: sqlite3.Connection
    _lock: threading.Lock

    def _write(self, *, durable: bool = False) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def record_settlement(self, settlement: Settlement, trip: Trip | None = None) -> bool:
        """Count ``settlement`` (once: a second record of its hash is ignored, so the keeper may
        record it before marking the transaction mined) and, with it, ``trip``. Returns whether
        the settlement was new.

        Synced to disk only with a trip: the durable commit that marks the transaction mined comes
        next and syncs the WAL, this commit included; a crash before it leaves the transaction
        pending, to be settled (and counted) again after the restart."""
        with self._write(durable=trip is not None) as conn:
            cursor = conn.execute(
                _INSERT_SETTLEMENT,
                (
                    settlement.tx_hash, settlement.nonce, settlement.block, settlement.at_s,
                    str(settlement.gas_paid_wei), str(settlement.loss_wei), int(settlement.reverted),
                ),
            )  # fmt: skip
            if trip is not None:
                _set_trip(conn, trip)
            return cursor.rowcount == 1

    def record_trip(self, trip: Trip) -> None:
        with self._write(durable=True) as conn:
            _set_trip(conn, trip)

    def guard_trip(self) -> Trip | None:
        with self._lock:
            row = self._conn.execute(f"SELECT {_TRIP_COLUMNS} FROM guard_state WHERE id = 1").fetchone()
        return None if row is None or row[0] is None else _trip(row)

    def guard_forgiven_through(self) -> int:
        with self._lock:
            row = self._conn.execute("SELECT forgiven_through FROM guard_state WHERE id = 1").fetchone()
        return 0 if row is None else int(row[0])

    def settlements(self, since_s: int) -> list[Settlement]:
        """The settlements stamped after ``since_s`` and not forgiven by a reset, oldest first."""
        with self._lock:
            rows = self._conn.execute(
                f"""SELECT {_SETTLEMENT_COLUMNS} FROM guard_settlements
                    WHERE at_s > ? AND id > COALESCE((SELECT forgiven_through FROM guard_state), 0)
                    ORDER BY id""",
                (since_s,),
            ).fetchall()
        return [_settlement(row) for row in rows]

    def reset_guard(self) -> tuple[Trip | None, int]:
        """Clear the trip and forgive every settlement so far; returns the trip cleared and how
        many settlements were forgiven by this reset."""
        with self._write(durable=True) as conn:
            row = conn.execute(f"SELECT {_TRIP_COLUMNS} FROM guard_state WHERE id = 1").fetchone()
            cleared = None if row is None or row[0] is None else _trip(row)
            before = conn.execute("SELECT COALESCE(MAX(forgiven_through), 0) FROM guard_state").fetchone()[0]
            last = conn.execute("SELECT COALESCE(MAX(id), 0) FROM guard_settlements").fetchone()[0]
            conn.execute(_RESET, (last, time.time()))
            return cleared, int(last) - int(before)


def _set_trip(conn: sqlite3.Connection, trip: Trip) -> None:
    values = (trip.cap.value, trip.window_s, str(trip.figure), str(trip.limit), trip.at_s, trip.block)
    conn.execute(_SET_TRIP, (*values, trip.tx_hash))


def _trip(row: tuple[Any, ...]) -> Trip:
    cap, window_s, figure, limit, at_s, block, tx_hash = row
    return Trip(Cap(cap), int(window_s), int(figure), int(limit), int(at_s), int(block), str(tx_hash))


def _settlement(row: tuple[Any, ...]) -> Settlement:
    tx_hash, nonce, block, at_s, gas_paid, loss, reverted = row
    return Settlement(
        str(tx_hash), int(nonce), int(block), int(at_s), int(gas_paid), int(loss), bool(reverted)
    )
