"""The SQLite store on real files: schema migrations, atomic blocks, reorg rollback, kill -9, 100k load."""

from __future__ import annotations

import itertools
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from keeper.errors import Halt, UsageError
from keeper.protocols.base import BlockRef, PositionKey
from keeper.state import store as store_module
from keeper.state.store import RECENT_BLOCKS_KEPT, SCHEMA_VERSION, Cursor, RecentBlock, Store

ROOT = Path(__file__).resolve().parents[2]
P = "aave-main"


def block(number: int, branch: str = "a") -> BlockRef:
    return BlockRef(number, f"0x{branch}{number}", 1_700_000_000 + 12 * number)


def keys(*users: str, market: str = "0xpool") -> list[PositionKey]:
    return [PositionKey(market, user) for user in users]


def raw(path: Path) -> closing[sqlite3.Connection]:
    return closing(sqlite3.connect(path))


def rows(path: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with raw(path) as conn:
        return conn.execute(sql, args).fetchall()


# -- opening and migrations -----------------------------------------------------------------------


def test_open_creates_the_schema_in_wal_mode(path: Path) -> None:
    with Store.open(path) as store:
        assert store.cursor(P) is None
        assert store.positions(P) == []
        assert store.markets(P) == {}
        assert store.recent_blocks() == []
        assert store.count(P) == 0
    assert rows(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert rows(path, "PRAGMA journal_mode") == [("wal",)]
    tables = {name for (name,) in rows(path, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {
        "positions", "markets", "cursor", "recent_blocks", "transactions", "guard_settlements", "guard_state",
    }  # fmt: skip


def test_reopen_keeps_data_and_does_not_migrate_again(path: Path) -> None:
    with Store.open(path) as store:
        store.apply_block(P, block(10), "0xa9", keys("0xu1", "0xu2"), {"0xm": '{"lltv": 1}'})
    with Store.open(path) as store:
        assert store.cursor(P) == Cursor(10, "0xa10")
        assert sorted(store.positions(P)) == keys("0xu1", "0xu2")
        assert store.markets(P) == {"0xm": '{"lltv": 1}'}
        assert store.recent_blocks() == [RecentBlock(10, "0xa10", "0xa9")]
    assert rows(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]


def test_a_new_migration_is_applied_once_on_open_and_keeps_data(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Store.open(path) as store:
        store.apply_block(P, block(1), "0xa0", keys("0xu1"))
    extra = ("CREATE TABLE extra (x INTEGER)", "INSERT INTO extra VALUES (7)")
    monkeypatch.setattr(store_module, "MIGRATIONS", (*store_module.MIGRATIONS, extra))
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    for _ in range(2):
        with Store.open(path) as store:
            assert store.positions(P) == keys("0xu1")
    assert rows(path, "SELECT x FROM extra") == [(7,)]
    assert rows(path, "PRAGMA user_version") == [(SCHEMA_VERSION + 1,)]


def test_a_failing_migration_leaves_the_previous_version_intact(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Store.open(path).close()
    broken = ("CREATE TABLE half (x INTEGER)", "THIS IS NOT SQL")
    monkeypatch.setattr(store_module, "MIGRATIONS", (*store_module.MIGRATIONS, broken))
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(sqlite3.OperationalError):
        Store.open(path)
    assert rows(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert rows(path, "SELECT name FROM sqlite_master WHERE name = 'half'") == []


def test_a_store_from_a_newer_keeper_is_refused(path: Path) -> None:
    Store.open(path).close()
    with raw(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 3}")
    expected = f"has schema version {SCHEMA_VERSION + 3}, this keeper knows up to {SCHEMA_VERSION}"
    with pytest.raises(Halt, match=expected) as info:
        Store.open(path)
    assert str(path) in str(info.value)


def test_a_missing_directory_is_a_usage_error_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "keeper.sqlite"
    with pytest.raises(UsageError, match="does not exist") as info:
        Store.open(missing)
    assert str(missing) in str(info.value)
    assert not missing.parent.exists()


def test_a_file_that_is_not_sqlite_halts(path: Path) -> None:
    path.write_bytes(b"definitely not a database" * 100)
    with pytest.raises(Halt, match="not a usable SQLite database"):
        Store.open(path)


# -- writes ---------------------------------------------------------------------------------------


def test_apply_block_keeps_first_block_and_moves_last_block(store: Store, path: Path) -> None:
    store.apply_block(P, block(5), "0xa4", keys("0xu1", "0xu2"))
    store.apply_block(P, block(6), "0xa5", keys("0xu2", "0xu3"))
    store.apply_block("morpho", block(3), "0xa2", keys("0xu9", market="0xid"))
    got = rows(path, "SELECT protocol, user, first_block, last_block FROM positions ORDER BY protocol, user")
    assert got == [
        (P, "0xu1", 5, 5),
        (P, "0xu2", 5, 6),
        (P, "0xu3", 6, 6),
        ("morpho", "0xu9", 3, 3),
    ]
    assert store.cursor(P) == Cursor(6, "0xa6")
    assert store.cursor("morpho") == Cursor(3, "0xa3")
    assert store.count(P) == 3
    assert store.positions("morpho") == keys("0xu9", market="0xid")


def test_market_metadata_is_upserted_per_protocol(store: Store) -> None:
    store.apply_block(P, block(1), "0xa0", [], {"0xm1": "{}", "0xm2": '{"a": 1}'})
    store.apply_block(P, block(2), "0xa1", [], {"0xm2": '{"a": 2}'})
    assert store.markets(P) == {"0xm1": "{}", "0xm2": '{"a": 2}'}
    assert store.markets("other") == {}


def test_apply_block_is_all_or_nothing(store: Store, path: Path) -> None:
    store.apply_block(P, block(1), "0xa0", keys("0xold"))
    seen_mid_transaction: list[int] = []

    def good_then_bad() -> Iterator[Any]:
        yield from keys("0xu1", "0xu2", "0xu3")
        # Another connection, as another process would, sees none of this block yet.
        with raw(path) as other:
            seen_mid_transaction.append(other.execute("SELECT COUNT(*) FROM positions").fetchone()[0])
        yield "not a PositionKey"

    with pytest.raises(AttributeError):
        store.apply_block(P, block(2), "0xa1", good_then_bad(), {"0xm": "{}"})
    assert seen_mid_transaction == [1]
    assert store.positions(P) == keys("0xold")
    assert store.cursor(P) == Cursor(1, "0xa1")
    assert store.markets(P) == {}
    assert [b.number for b in store.recent_blocks()] == [1]
    store.apply_block(P, block(2), "0xa1", keys("0xu1"))  # the store is usable afterwards
    assert store.count(P) == 2


@pytest.mark.parametrize("number", [7, 6])
def test_the_cursor_never_moves_back_outside_a_rollback(store: Store, number: int) -> None:
    store.apply_block(P, block(7), "0xa6", keys("0xu1"))
    with pytest.raises(ValueError, match="not after the cursor 7"):
        store.apply_block(P, block(number, "b"), "0xb5", keys("0xu2"))
    with pytest.raises(ValueError, match="not after the cursor 7"):
        store.apply_range(P, block(number, "b"), keys("0xu2"))
    assert store.positions(P) == keys("0xu1")
    assert store.cursor(P) == Cursor(7, "0xa7")


def test_apply_range_moves_the_cursor_to_the_chunk_end_without_block_hashes(store: Store, path: Path) -> None:
    store.apply_range(P, block(1000), keys("0xu1"), {"0xm": "{}"})
    store.apply_range(P, block(2000), keys("0xu1", "0xu2"))
    assert store.cursor(P) == Cursor(2000, "0xa2000")
    assert store.recent_blocks() == []
    assert store.markets(P) == {"0xm": "{}"}
    # first_block is the chunk's first block: (cursor, to_block] -> cursor + 1.
    got = rows(path, "SELECT user, first_block, last_block FROM positions ORDER BY user")
    assert got == [("0xu1", 0, 2000), ("0xu2", 1001, 2000)]


# -- reorgs ---------------------------------------------------------------------------------------


def test_rollback_forgets_the_abandoned_branch_and_keeps_older_positions(store: Store, path: Path) -> None:
    for n in range(1, 6):
        store.apply_block(P, block(n), f"0xa{n - 1}", keys(f"0xu{n}", "0xshared"))
    store.apply_block("other", block(5), "0xa4", keys("0xo5"))

    store.rollback_to(P, 3, "0xa3")

    assert sorted(store.positions(P)) == sorted(keys("0xu1", "0xu2", "0xu3", "0xshared"))
    assert store.cursor(P) == Cursor(3, "0xa3")
    assert [b.number for b in store.recent_blocks()] == [1, 2, 3]
    assert rows(path, "SELECT MAX(last_block) FROM positions WHERE protocol = ?", P) == [(3,)]
    assert store.positions("other") == keys("0xo5")  # other protocols roll back on their own call

    # Re-applying the new branch re-adds what is real on it.
    store.apply_block(P, block(4, "b"), "0xa3", keys("0xu4"))
    assert store.count(P) == 5
    assert store.recent_blocks()[-1] == RecentBlock(4, "0xb4", "0xa3")


def test_rollback_above_the_cursor_is_refused(store: Store) -> None:
    store.apply_block(P, block(3), "0xa2", keys("0xu1"))
    with pytest.raises(ValueError, match="above its cursor"):
        store.rollback_to(P, 4, "0xa4")
    assert store.cursor(P) == Cursor(3, "0xa3")


def test_recent_blocks_keep_the_last_128(store: Store) -> None:
    for n in range(1, 301):
        store.apply_block(P, block(n), f"0xa{n - 1}", [])
    recent = store.recent_blocks()
    assert len(recent) == RECENT_BLOCKS_KEPT == 128
    assert [b.number for b in recent] == list(range(173, 301))
    assert all(b.parent_hash == a.hash for a, b in itertools.pairwise(recent))


# -- threads, crashes, size -----------------------------------------------------------------------


def test_the_store_can_be_called_from_another_thread(store: Store) -> None:
    errors: list[BaseException] = []

    def work() -> None:
        try:
            store.apply_block(P, block(1), "0xa0", keys("0xu1"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    assert errors == []
    assert store.positions(P) == keys("0xu1")


KEYS_PER_BLOCK = 200
WRITER = f"""
import sys
from pathlib import Path
from keeper.protocols.base import BlockRef, PositionKey
from keeper.state.store import Store

store = Store.open(Path(sys.argv[1]))
cursor = store.cursor("p")
n = 0 if cursor is None else cursor.number
while True:
    n += 1
    keys = [PositionKey(f"m{{j % 3}}", f"u{{n}}-{{j}}") for j in range({KEYS_PER_BLOCK})]
    store.apply_block("p", BlockRef(n, f"h{{n}}", n), f"h{{n - 1}}", keys, {{f"m{{n % 5}}": str(n)}})
    print(n, flush=True)
"""


def kill_writer_after(path: Path, commits: int) -> int:
    """Run the writer, SIGKILL it after it reports ``commits`` commits, return the last one reported."""
    with subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True, cwd=ROOT
    ) as proc:
        assert proc.stdout is not None
        reported: list[int] = []
        while len(reported) < commits:
            line = proc.stdout.readline()
            assert line, f"writer exited early with {proc.poll()}"
            reported.append(int(line))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL
    return reported[-1]


def test_kill_9_mid_write_leaves_a_consistent_store_that_resumes(path: Path) -> None:
    last_reported = 0
    for _ in range(3):
        last_reported = kill_writer_after(path, commits=15)
        with Store.open(path) as store:
            cursor = store.cursor("p")
            assert cursor is not None
            # A killed process loses nothing committed, and nothing after the cursor is visible.
            assert cursor.number >= last_reported
            assert cursor.hash == f"h{cursor.number}"
            users = {key.user for key in store.positions("p")}
            expected = {f"u{n}-{j}" for n in range(1, cursor.number + 1) for j in range(KEYS_PER_BLOCK)}
            assert users == expected
            recent = store.recent_blocks()
            assert recent[-1] == RecentBlock(cursor.number, f"h{cursor.number}", f"h{cursor.number - 1}")
            assert store.markets("p")[f"m{cursor.number % 5}"] == str(cursor.number)
    assert last_reported >= 45  # each run resumed from the previous cursor


def test_100k_positions_write_and_load_fast(path: Path) -> None:
    many = [PositionKey(f"0x{m:040x}", f"0x{u:040x}") for m in range(10) for u in range(10_000)]
    with Store.open(path) as store:
        started = time.perf_counter()
        store.apply_range(P, block(1_000_000), many)
        write_s = time.perf_counter() - started
    started = time.perf_counter()
    with Store.open(path) as store:
        loaded = store.positions(P)
    load_s = time.perf_counter() - started
    print(f"\nstore: wrote 100,000 positions in {write_s:.3f} s, reopened and loaded in {load_s:.3f} s")
    assert len(loaded) == 100_000
    assert set(loaded) == set(many)
    assert load_s < 5
    assert write_s < 5
