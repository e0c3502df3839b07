"""Durable position store: which borrowers each protocol has, and how far each protocol has read.

A restart must resume from where the keeper stopped, not re-index from ``start_block``. The store
keeps the discovered positions, immutable protocol metadata (e.g. Morpho market params), one cursor
per protocol and a short ring of recent block hashes for reorg detection. It also records every
transaction the keeper sends and its state (``keeper.state.txstate``), so a restart knows which
nonces are in flight and can re-broadcast them instead of sending anew, and the spend guard's
settlements and trip (``keeper.state.guard_ledger``), so a tripped guard stays tripped. Each
block's changes and the cursor move commit in ONE transaction, so after any crash the cursor's
block has all of its positions and no later block has any.

Durability: WAL journal with ``synchronous=NORMAL``. In WAL mode that setting syncs only at
checkpoints, so a power loss may drop the last few commits but can never corrupt the database or
leave a transaction half applied; a killed process loses nothing that was committed. Losing the
last commits is harmless here because the cursor travels with the data it describes: the keeper
simply re-reads those blocks from the older cursor. Transaction records are the exception: they
commit with ``synchronous=FULL``, because a forgotten sent transaction cannot be re-read.

A write the disk refuses (full, a quota, a file-size limit, the file read-only) raises
`StoreUnwritable` after SQLite rolled it back: the caller holds back whatever depended on it (the
daemon sends nothing it could not record) and retries the same write later.

The API is synchronous and fast (no chain I/O); every call holds a lock, so the store may be used
directly or from worker threads (``asyncio.to_thread``), one call at a time.
"""

from __future__ import annotations

import itertools
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import NamedTuple, Self

from keeper.chain.types import BlockRef
from keeper.errors import Halt, KeeperError, UsageError
from keeper.protocols.base import PositionKey
from keeper.state.guard_ledger import GuardLedger
from keeper.state.transactions import TransactionLog

RECENT_BLOCKS_KEPT = 128
"""Reorgs deeper than this cannot be undone from the store; the keeper must resync."""
BUSY_TIMEOUT_S = 5.0

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: initial schema. No index on first_block: only rollback_to filters on it, rarely, and a
    # scan of one protocol's rows is cheaper than maintaining an index on every write.
    (
        """CREATE TABLE positions (
            protocol TEXT NOT NULL, market TEXT NOT NULL, user TEXT NOT NULL,
            first_block INTEGER NOT NULL, last_block INTEGER NOT NULL,
            PRIMARY KEY (protocol, market, user)
        ) WITHOUT ROWID""",
        """CREATE TABLE markets (
            protocol TEXT NOT NULL, market TEXT NOT NULL, params_json TEXT NOT NULL,
            PRIMARY KEY (protocol, market)
        ) WITHOUT ROWID""",
        """CREATE TABLE cursor (
            protocol TEXT PRIMARY KEY, block_number INTEGER NOT NULL, block_hash TEXT NOT NULL
        ) WITHOUT ROWID""",
        """CREATE TABLE recent_blocks (
            number INTEGER PRIMARY KEY, hash TEXT NOT NULL, parent_hash TEXT NOT NULL
        )""",
    ),
    # 2: every transaction the keeper sends, with its state, so a restart knows what is in flight.
    # expected_profit_wei is a decimal string: it may exceed SQLite's int64.
    (
        """CREATE TABLE transactions (
            nonce INTEGER NOT NULL, tx_hash TEXT PRIMARY KEY,
            protocol TEXT NOT NULL, market TEXT NOT NULL, user TEXT NOT NULL,
            raw_tx TEXT NOT NULL, max_fee_per_gas INTEGER NOT NULL,
            max_priority_fee_per_gas INTEGER NOT NULL, gas_limit INTEGER NOT NULL,
            expected_profit_wei TEXT NOT NULL, sent_block INTEGER NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('pending', 'replaced', 'mined', 'dropped', 'reverted')),
            mined_block INTEGER, gas_used INTEGER, effective_gas_price INTEGER, note TEXT,
            updated_at REAL NOT NULL
        )""",
        "CREATE INDEX transactions_state ON transactions (state)",
        "CREATE INDEX transactions_position ON transactions (protocol, market, user)",
    ),
    # 3: the spend guard (keeper.state.guard_ledger): each settlement it counted (wei as decimal
    # strings) and its one-row state: the trip, if any, and the last settlement a reset forgave.
    (
        """CREATE TABLE guard_settlements (
            id INTEGER PRIMARY KEY, tx_hash TEXT NOT NULL UNIQUE, nonce INTEGER NOT NULL,
            block INTEGER NOT NULL, at_s INTEGER NOT NULL, gas_paid_wei TEXT NOT NULL,
            loss_wei TEXT NOT NULL, reverted INTEGER NOT NULL
        )""",
        "CREATE INDEX guard_settlements_at ON guard_settlements (at_s)",
        """CREATE TABLE guard_state (
            id INTEGER PRIMARY KEY CHECK (id = 1), forgiven_through INTEGER NOT NULL DEFAULT 0,
            reset_at REAL, cap TEXT, window_s INTEGER, figure TEXT, limit_value TEXT,
            at_s INTEGER, block INTEGER, tx_hash TEXT
        )""",
    ),
    # 4: transactions by nonce. Every send checks its nonce is free and every receipt drops the
    # nonce's other transactions: without it each was a scan of the whole history (a wave's commit
    # took 40 ms with 8,000 transactions recorded, 1.5 ms with 100).
    ("CREATE INDEX transactions_nonce ON transactions (nonce)",),
)
"""Ordered schema migrations; migration ``i`` takes the store from version ``i`` to ``i + 1``.

Append only: never edit a migration that has shipped, add the next one instead.
"""
SCHEMA_VERSION = len(MIGRATIONS)

_UPSERT_POSITION = """
    INSERT INTO positions (protocol, market, user, first_block, last_block) VALUES (?, ?, ?, ?, ?)
    ON CONFLICT (protocol, market, user) DO UPDATE SET last_block = MAX(last_block, excluded.last_block)
"""
_UPSERT_MARKET = """
    INSERT INTO markets (protocol, market, params_json) VALUES (?, ?, ?)
    ON CONFLICT (protocol, market) DO UPDATE SET params_json = excluded.params_json
"""
"""The transactions table's columns: one per SentTx field, same names, same order."""
_SET_CURSOR = """
    INSERT INTO cursor (protocol, block_number, block_hash) VALUES (?, ?, ?)
    ON CONFLICT (protocol) DO UPDATE
    SET block_number = excluded.block_number, block_hash = excluded.block_hash
"""


class StoreUnwritable(KeeperError):
    """The store could not commit a write (disk full, I/O error, read-only): nothing of it was kept."""


@dataclass(frozen=True, slots=True)
class Cursor:
    """The last block whose changes a protocol has fully committed."""

    number: int
    hash: str


class RecentBlock(NamedTuple):
    number: int
    hash: str
    parent_hash: str


class Store(TransactionLog, GuardLedger):
    """One SQLite file. Open with :meth:`Store.open`; close it (or use it as a context manager)."""

    def __init__(self, conn: sqlite3.Connection, path: Path, recent_blocks_kept: int) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self.path = path
        self.recent_blocks_kept = recent_blocks_kept

    @classmethod
    def open(cls, path: Path, *, recent_blocks_kept: int = RECENT_BLOCKS_KEPT) -> Store:
        """Open or create the store at ``path`` and bring its schema up to date.

        Raises ``UsageError`` when the file cannot be opened (e.g. its directory does not exist)
        and ``Halt`` when the file is not a store this keeper can use (not SQLite, or a newer schema).
        """
        if not path.parent.is_dir():
            raise UsageError(f"store {path}: directory {path.parent} does not exist")
        try:
            # isolation_level=None: no implicit transactions; every write opens its own below.
            conn = sqlite3.connect(
                path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise UsageError(f"store {path}: cannot open: {exc}") from exc
        try:
            _configure(conn, path)
            _migrate(conn, path)
        except BaseException:
            conn.close()
            raise
        return cls(conn, path, recent_blocks_kept)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- writes -----------------------------------------------------------------------------------

    def apply_block(
        self,
        protocol: str,
        block: BlockRef,
        parent_hash: str,
        keys: Iterable[PositionKey],
        markets: Mapping[str, str] = MappingProxyType({}),
    ) -> None:
        """Commit one live block atomically: touched positions, market metadata, block hash, cursor.

        ``markets`` maps a market id to its JSON metadata. Blocks must move the cursor forward;
        going back is :meth:`rollback_to`'s job.
        """
        with self._write() as conn:
            if _cursor(conn, protocol) == Cursor(block.number, block.hash):
                return  # committed before a later protocol's write of the same block failed: a retry
            _check_forward(conn, protocol, block.number)
            _upsert(conn, protocol, block.number, block.number, keys, markets)
            conn.execute(
                "INSERT OR REPLACE INTO recent_blocks (number, hash, parent_hash) VALUES (?, ?, ?)",
                (block.number, block.hash, parent_hash),
            )
            conn.execute(
                "DELETE FROM recent_blocks WHERE number <= ?", (block.number - self.recent_blocks_kept,)
            )
            conn.execute(_SET_CURSOR, (protocol, block.number, block.hash))

    def apply_range(
        self,
        protocol: str,
        to_block: BlockRef,
        keys: Iterable[PositionKey],
        markets: Mapping[str, str] = MappingProxyType({}),
    ) -> None:
        """Commit one backfill chunk, ending at ``to_block``, atomically; the cursor moves to its end.

        The chunk spans (cursor, to_block], so its positions get ``first_block`` = the chunk's first
        block: if a reorg ever reaches into the chunk, rolling back keeps them (tracking a position
        too many is harmless; forgetting one that still exists is not).
        """
        with self._write() as conn:
            previous = _check_forward(conn, protocol, to_block.number)
            first_block = 0 if previous is None else previous.number + 1
            _upsert(conn, protocol, first_block, to_block.number, keys, markets)
            conn.execute(_SET_CURSOR, (protocol, to_block.number, to_block.hash))

    def rollback_to(self, protocol: str, block_number: int, block_hash: str) -> None:
        """Undo a reorg above ``block_number`` (the common ancestor, whose hash is ``block_hash``).

        Positions first seen above it were discovered on the abandoned branch and are deleted;
        older positions stay (being tracked is harmless) with ``last_block`` clamped to the
        ancestor. Block hashes above it are dropped. The caller then re-applies the new branch,
        which re-adds every position that is still real. Market metadata is kept: it is immutable
        per market id. Roll back every protocol whose cursor is above the ancestor.
        """
        with self._write() as conn:
            current = _cursor(conn, protocol)
            if current is not None and block_number > current.number:
                raise ValueError(
                    f"rollback of {protocol} to {block_number} is above its cursor {current.number}"
                )
            conn.execute(
                "DELETE FROM positions WHERE protocol = ? AND first_block > ?", (protocol, block_number)
            )
            conn.execute(
                "UPDATE positions SET last_block = ? WHERE protocol = ? AND last_block > ?",
                (block_number, protocol, block_number),
            )
            conn.execute("DELETE FROM recent_blocks WHERE number > ?", (block_number,))
            conn.execute(_SET_CURSOR, (protocol, block_number, block_hash))

    # -- transactions -----------------------------------------------------------------------------
    # -- reads ------------------------------------------------------------------------------------

    def cursor(self, protocol: str) -> Cursor | None:
        with self._lock:
            return _cursor(self._conn, protocol)

    def positions(self, protocol: str) -> list[PositionKey]:
        with self._lock:
            rows = self._conn.execute("SELECT market, user FROM positions WHERE protocol = ?", (protocol,))
            return list(itertools.starmap(PositionKey, rows))

    def count(self, protocol: str) -> int:
        with self._lock:
            row = self._conn.execute(
                "SELECT COUNT(*) FROM positions WHERE protocol = ?", (protocol,)
            ).fetchone()
            return int(row[0])

    def markets(self, protocol: str) -> dict[str, str]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT market, params_json FROM markets WHERE protocol = ?", (protocol,)
            )
            return dict(rows.fetchall())

    def recent_blocks(self) -> list[RecentBlock]:
        """The recent block ring, oldest first."""
        with self._lock:
            rows = self._conn.execute("SELECT number, hash, parent_hash FROM recent_blocks ORDER BY number")
            return list(itertools.starmap(RecentBlock, rows))

    @contextmanager
    def _write(self, *, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: committed if the body returns, rolled back if it raises.

        ``durable``: the commit is synced to disk before this returns (``synchronous=FULL``), so
        not even a power loss undoes it. Transaction records need that; position blocks do not.
        """
        with self._lock:
            try:
                if durable:
                    self._conn.execute("PRAGMA synchronous = FULL")
                try:
                    self._conn.execute("BEGIN IMMEDIATE")
                    try:
                        yield self._conn
                    except BaseException:
                        if self._conn.in_transaction:  # SQLite rolls back itself on a full disk
                            self._conn.execute("ROLLBACK")
                        raise
                    self._conn.execute("COMMIT")
                finally:
                    if durable:
                        self._conn.execute("PRAGMA synchronous = NORMAL")
            except sqlite3.OperationalError as exc:  # disk full, I/O error, read-only, locked too long
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise StoreUnwritable(f"store {self.path}: cannot write: {exc}") from None


def _configure(conn: sqlite3.Connection, path: Path) -> None:
    try:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise Halt(f"store {path} is not a usable SQLite database: {exc}") from exc
    if mode != "wal":
        raise Halt(f"store {path}: cannot enable WAL journal mode (got {mode!r})")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Apply the pending migrations, each in its own transaction together with its version bump."""
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Read inside the write lock: another process may have migrated meanwhile.
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise Halt(
                    f"store {path} has schema version {version}, this keeper knows up to {SCHEMA_VERSION}"
                )
            if version == SCHEMA_VERSION:
                conn.execute("COMMIT")
                return
            for statement in MIGRATIONS[version]:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version + 1}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


def _cursor(conn: sqlite3.Connection, protocol: str) -> Cursor | None:
    row = conn.execute(
        "SELECT block_number, block_hash FROM cursor WHERE protocol = ?", (protocol,)
    ).fetchone()
    return None if row is None else Cursor(int(row[0]), str(row[1]))


def _check_forward(conn: sqlite3.Connection, protocol: str, block_number: int) -> Cursor | None:
    """Refuse to move a cursor backwards or re-apply its block: that is a caller bug, not a reorg."""
    current = _cursor(conn, protocol)
    if current is not None and block_number <= current.number:
        raise ValueError(f"{protocol}: block {block_number} is not after the cursor {current.number}")
    return current


def _upsert(
    conn: sqlite3.Connection,
    protocol: str,
    first_block: int,
    last_block: int,
    keys: Iterable[PositionKey],
    markets: Mapping[str, str],
) -> None:
    conn.executemany(
        _UPSERT_POSITION, ((protocol, key.market, key.user, first_block, last_block) for key in keys)
    )
    conn.executemany(_UPSERT_MARKET, ((protocol, market, params) for market, params in markets.items()))
