"""The store's transaction records on real SQLite files: every state move, atomicity, restarts."""

from __future__ import annotations

import dataclasses
import os
import signal
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from keeper.errors import Halt
from keeper.protocols.base import BlockRef, PositionKey
from keeper.state import store as store_module
from keeper.state import transactions as transactions_module
from keeper.state.store import SCHEMA_VERSION, Store
from keeper.state.transactions import ReceiptRecord
from keeper.state.txstate import SentTx, TxState

ROOT = Path(__file__).resolve().parents[2]
S = TxState
BIG_PROFIT_WEI = 2**200  # far beyond SQLite's int64: stored as a decimal string


def sent(nonce: int, tx_hash: str, user: str = "0xu1", fee_gwei: int = 30) -> SentTx:
    return SentTx(
        nonce=nonce,
        tx_hash=tx_hash,
        protocol="aave-main",
        market="0xpool",
        user=user,
        raw_tx=f"0x02f8{tx_hash[2:]}",
        max_fee_per_gas=fee_gwei * 10**9,
        max_priority_fee_per_gas=10**9,
        gas_limit=650_000,
        expected_profit_wei=BIG_PROFIT_WEI,
        sent_block=1_000,
    )


def bare(txs: list[SentTx]) -> list[SentTx]:
    """Without the store's write timestamps, to compare with what was recorded."""
    assert all(tx.updated_at > 1.6e9 for tx in txs)
    return [dataclasses.replace(tx, updated_at=0.0) for tx in txs]


def states(store: Store) -> dict[str, tuple[TxState, str | None]]:
    return {tx.tx_hash: (tx.state, tx.note) for tx in store.transactions()}


def rows(path: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql, args).fetchall()


# -- round trips ----------------------------------------------------------------------------------


def test_record_sent_round_trips_every_field(store: Store) -> None:
    a, b = sent(7, "0xa"), sent(8, "0xb", user="0xu2")
    store.record_sent(b)
    store.record_sent(a)
    assert bare(store.in_flight()) == [a, b]  # by nonce
    assert bare(store.transactions()) == [a, b]
    assert bare(store.transactions(S.PENDING)) == [a, b]
    assert store.transactions(S.MINED) == []
    assert store.in_flight()[0].expected_profit_wei == BIG_PROFIT_WEI


def test_replace_mine_and_drop_round_trip(store: Store) -> None:
    first, bumped = sent(7, "0xa"), sent(7, "0xa2", fee_gwei=34)
    store.record_sent(first)
    store.mark_replaced("0xa", bumped)
    assert bare(store.in_flight()) == [bumped]
    assert bare(store.transactions(S.REPLACED)) == [dataclasses.replace(first, state=S.REPLACED)]

    store.mark_mined("0xa2", block=1_002, gas_used=412_345, effective_gas_price=31 * 10**9, success=True)
    [mined] = store.transactions(S.MINED)
    assert (mined.tx_hash, mined.mined_block, mined.gas_used, mined.effective_gas_price) == (
        "0xa2",
        1_002,
        412_345,
        31 * 10**9,
    )
    assert states(store)["0xa"] == (S.DROPPED, "nonce used by 0xa2")
    assert store.in_flight() == []

    store.record_sent(sent(8, "0xb"))
    store.mark_dropped("0xb", "position no longer liquidatable")
    assert states(store)["0xb"] == (S.DROPPED, "position no longer liquidatable")
    store.record_sent(sent(9, "0xc"))
    store.mark_mined("0xc", block=1_003, gas_used=21_000, effective_gas_price=10**9, success=False)
    assert states(store)["0xc"] == (S.REVERTED, None)
    assert [tx.tx_hash for tx in store.transactions()] == ["0xa", "0xa2", "0xb", "0xc"]


def test_mark_mined_drops_every_other_transaction_of_that_nonce_only(store: Store) -> None:
    store.record_sent(sent(7, "0xa"))
    store.mark_replaced("0xa", sent(7, "0xb", fee_gwei=34))
    store.mark_replaced("0xb", sent(7, "0xc", fee_gwei=39))
    store.record_sent(sent(8, "0xother", user="0xu2"))
    # The middle one wins: an earlier replacement can still be the one included.
    store.mark_mined("0xb", block=1_001, gas_used=400_000, effective_gas_price=33 * 10**9, success=True)
    assert states(store) == {
        "0xa": (S.DROPPED, "nonce used by 0xb"),
        "0xb": (S.MINED, None),
        "0xc": (S.DROPPED, "nonce used by 0xb"),
        "0xother": (S.PENDING, None),
    }
    assert [tx.tx_hash for tx in store.in_flight()] == ["0xother"]


def test_sending_and_settling_never_scan_the_whole_history(store: Store) -> None:
    """Each wave's commit checks its nonces are free and each receipt drops its nonce's other
    transactions: with a long history a scan of the table per transaction made the first wave's
    commit 40 ms. Every statement on those paths, explained by SQLite, must find its rows by index."""
    history = [sent(nonce, f"0x{nonce:x}") for nonce in range(300)]
    store.record_sent_many(history)
    store.mark_mined_many([ReceiptRecord(tx.tx_hash, 1_001, 400_000, 10**9, True) for tx in history])
    conn = store._conn  # the store's own connection: its statements are what is checked
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    try:
        wave = [sent(nonce, f"0x{nonce:x}") for nonce in range(300, 316)]
        store.record_sent_many(wave)
        store.mark_replaced(wave[0].tx_hash, sent(300, "0xbump", fee_gwei=40))
        store.mark_mined_many([ReceiptRecord(tx.tx_hash, 1_002, 400_000, 10**9, True) for tx in wave[1:]])
        store.mark_mined("0xbump", block=1_002, gas_used=400_000, effective_gas_price=10**9, success=True)
    finally:
        conn.set_trace_callback(None)
    on_transactions = [sql for sql in statements if "transactions" in sql and "EXPLAIN" not in sql]
    assert len(on_transactions) > 30, statements  # the paths above ran their statements through here
    scans = {
        sql: plan
        for sql in on_transactions
        if not sql.lstrip().upper().startswith("INSERT")
        for plan in [" / ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql))]
        if "SCAN transactions" in plan
    }
    assert scans == {}


def test_a_dropped_nonce_may_be_used_again(store: Store) -> None:
    store.record_sent(sent(7, "0xa"))
    store.mark_dropped("0xa", "evicted from the mempool")
    store.record_sent(sent(7, "0xb"))
    assert [tx.tx_hash for tx in store.in_flight()] == ["0xb"]


def test_a_reorg_reopens_what_was_mined_in_the_abandoned_blocks_only(store: Store) -> None:
    """Mined (or reverted) above the ancestor: pending again, receipt fields cleared, sent at the old
    head; mined at or below it, and the dropped siblings of a reopened one, stay as they are."""
    for nonce, tx_hash, block, success in (
        (7, "0xa", 1_001, True),
        (8, "0xb", 1_002, True),
        (9, "0xc", 1_003, False),
    ):
        store.record_sent(sent(nonce, tx_hash, user=f"0xu{nonce}"))
        store.mark_mined(tx_hash, block=block, gas_used=400_000, effective_gas_price=10**9, success=success)
    store.record_sent(sent(10, "0xd", user="0xu10"))
    store.mark_replaced("0xd", sent(10, "0xd2", user="0xu10", fee_gwei=34))
    store.mark_mined("0xd2", block=1_003, gas_used=400_000, effective_gas_price=10**9, success=True)

    reopened = store.reopen_mined_after(1_001, head=1_004)
    assert [tx.tx_hash for tx in reopened] == ["0xb", "0xc", "0xd2"]
    assert bare(store.in_flight()) == [dataclasses.replace(tx, updated_at=0.0) for tx in reopened]
    assert all((tx.mined_block, tx.gas_used, tx.sent_block) == (None, None, 1_004) for tx in reopened)
    assert states(store)["0xa"] == (S.MINED, None) and states(store)["0xd"][0] is S.DROPPED
    assert store.reopen_mined_after(1_001, head=1_004) == []  # already pending: nothing twice
    store.mark_mined("0xb", block=1_002, gas_used=400_000, effective_gas_price=10**9, success=True)


def test_a_refused_transaction_and_its_filler_are_one_commit(
    store: Store, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.record_sent(sent(7, "0xa"))
    filler = dataclasses.replace(sent(7, "0xf", user="0xkeeper"), note="gap filler", expected_profit_wei=0)
    store.drop_for_filler("0xa", "broadcast refused: nonce too low", filler)
    assert states(store) == {
        "0xa": (S.DROPPED, "broadcast refused: nonce too low"),
        "0xf": (S.PENDING, "gap filler"),
    }
    assert [tx.tx_hash for tx in store.nonce_records(7)] == ["0xa", "0xf"]

    store.record_sent(sent(8, "0xb"))
    with pytest.raises(Halt):  # the filler's hash is taken: neither row changes
        store.drop_for_filler("0xb", "refused", dataclasses.replace(filler, nonce=8))
    assert states(store)["0xb"] == (S.PENDING, None)


# -- refusals -------------------------------------------------------------------------------------


@pytest.mark.parametrize("first_state", [S.PENDING, S.MINED, S.REVERTED])
def test_a_nonce_in_use_is_only_reused_by_a_replacement(store: Store, first_state: TxState) -> None:
    store.record_sent(sent(7, "0xa"))
    if first_state is not S.PENDING:
        store.mark_mined("0xa", 1_001, 21_000, 10**9, success=first_state is S.MINED)
    with pytest.raises(Halt, match=f"nonce 7 of 0xb is already used by 0xa \\({first_state}\\)"):
        store.record_sent(sent(7, "0xb"))
    with pytest.raises(Halt, match="0xa is already recorded"):
        store.record_sent(sent(8, "0xa"))
    assert [tx.tx_hash for tx in store.transactions()] == ["0xa"]


def test_only_pending_transactions_are_recorded(store: Store) -> None:
    store.record_sent(sent(7, "0xa"))
    mined = dataclasses.replace(sent(8, "0xb"), state=S.MINED)
    with pytest.raises(ValueError, match="0xb is mined"):
        store.record_sent(mined)
    with pytest.raises(ValueError, match="0xb is mined"):
        store.mark_replaced("0xa", dataclasses.replace(mined, nonce=7))
    with pytest.raises(ValueError, match="replacement 0xb has nonce 8, 0xa has 7"):
        store.mark_replaced("0xa", sent(8, "0xb"))
    assert states(store) == {"0xa": (S.PENDING, None)}


def finish(store: Store, how: str) -> None:
    if how == "mined":
        store.mark_mined("0xa", 1_001, 21_000, 10**9, success=True)
    elif how == "reverted":
        store.mark_mined("0xa", 1_001, 21_000, 10**9, success=False)
    elif how == "dropped":
        store.mark_dropped("0xa", "abandoned")
    else:
        store.mark_replaced("0xa", sent(7, "0xa2"))


@pytest.mark.parametrize(
    ("first", "then", "error"),
    [
        ("mined", "mined", "from mined to mined"),
        ("mined", "reverted", "from mined to reverted"),
        ("mined", "dropped", "from mined to dropped"),
        ("mined", "replaced", "from mined to replaced"),
        ("reverted", "mined", "from reverted to mined"),
        ("dropped", "mined", "from dropped to mined"),
        ("dropped", "replaced", "from dropped to replaced"),
        ("replaced", "replaced", "from replaced to replaced"),
    ],
)
def test_illegal_transitions_halt_and_change_nothing(store: Store, first: str, then: str, error: str) -> None:
    store.record_sent(sent(7, "0xa"))
    finish(store, first)
    before = store.transactions()
    with pytest.raises(Halt, match=f"0xa \\(nonce 7\\) cannot go {error}"):
        if then == "replaced":
            store.mark_replaced("0xa", sent(7, "0xa3"))
        else:
            finish(store, then)
    assert store.transactions() == before


@pytest.mark.parametrize("mark", ["mined", "dropped", "replaced"])
def test_marking_an_unknown_transaction_halts(store: Store, mark: str) -> None:
    with pytest.raises(Halt, match="0xa is not in the store"):
        finish(store, mark)
    assert store.transactions() == []


def test_a_nonce_mined_twice_means_a_corrupt_store(store: Store, path: Path) -> None:
    store.record_sent(sent(7, "0xa"))
    store.mark_replaced("0xa", sent(7, "0xb"))
    store.mark_mined("0xb", 1_001, 21_000, 10**9, success=True)
    with closing(sqlite3.connect(path)) as conn, conn:  # as a buggy writer would
        conn.execute("UPDATE transactions SET state = 'replaced' WHERE tx_hash = '0xa'")
    with pytest.raises(Halt, match="nonce 7 mined twice: 0xa and 0xb \\(mined\\)"):
        store.mark_mined("0xa", 1_001, 21_000, 10**9, success=True)
    assert states(store)["0xa"] == (S.REPLACED, "nonce used by 0xb")  # rolled back: nothing changed


def test_the_schema_refuses_an_unknown_state(store: Store, path: Path) -> None:
    store.record_sent(sent(7, "0xa"))
    with closing(sqlite3.connect(path)) as conn, pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        conn.execute("UPDATE transactions SET state = 'confirmed'")


# -- atomicity and durability ---------------------------------------------------------------------


def test_mark_replaced_is_all_or_nothing(store: Store, path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store.record_sent(sent(7, "0xa"))
    seen_mid_transaction: list[list[tuple[Any, ...]]] = []

    def fail_after_the_update(tx: SentTx, now: float) -> tuple[Any, ...]:
        # The old row is already marked replaced inside the transaction; another process sees nothing.
        seen_mid_transaction.append(rows(path, "SELECT tx_hash, state FROM transactions"))
        raise RuntimeError("disk full")

    monkeypatch.setattr(transactions_module, "_tx_row", fail_after_the_update)
    with pytest.raises(RuntimeError, match="disk full"):
        store.mark_replaced("0xa", sent(7, "0xa2"))
    assert seen_mid_transaction == [[("0xa", "pending")]]
    monkeypatch.undo()
    assert states(store) == {"0xa": (S.PENDING, None)}
    store.mark_replaced("0xa", sent(7, "0xa2"))  # the store is usable afterwards
    assert [tx.tx_hash for tx in store.in_flight()] == ["0xa2"]


def test_reopen_keeps_every_transaction(path: Path) -> None:
    with Store.open(path) as store:
        store.record_sent(sent(7, "0xa"))
        store.mark_replaced("0xa", sent(7, "0xa2", fee_gwei=34))
        store.record_sent(sent(8, "0xb", user="0xu2"))
        store.mark_mined("0xb", 1_001, 21_000, 10**9, success=False)
        written = store.transactions()
    with Store.open(path) as store:
        assert store.transactions() == written
        assert bare(store.in_flight()) == [sent(7, "0xa2", fee_gwei=34)]


WRITER = """
import os, sys
from pathlib import Path
from keeper.state.txstate import SentTx
from keeper.state.store import Store

store = Store.open(Path(sys.argv[1]))
store.record_sent(SentTx(7, "0xa", "aave-main", "0xpool", "0xu1", "0x02f8", 1, 1, 21000, 2**200, 1000))
print("recorded", flush=True)
sys.stdin.readline()  # wait to be killed
"""


def test_a_killed_keeper_never_loses_a_recorded_transaction(path: Path) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    ) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "recorded\n"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    with Store.open(path) as store:
        [tx] = store.in_flight()
    assert (tx.nonce, tx.tx_hash, tx.raw_tx, tx.expected_profit_wei) == (7, "0xa", "0x02f8", 2**200)


# -- migration ------------------------------------------------------------------------------------


def test_a_store_at_the_previous_version_upgrades_in_place_and_keeps_positions(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as old_keeper:
        old_keeper.setattr(store_module, "MIGRATIONS", store_module.MIGRATIONS[:1])
        old_keeper.setattr(store_module, "SCHEMA_VERSION", 1)  # before the transactions table
        with Store.open(path) as old:
            old.apply_block("aave-main", BlockRef(5, "0xa5", 0), "0xa4", [PositionKey("0xpool", "0xu1")])
    assert rows(path, "PRAGMA user_version") == [(1,)]
    assert rows(path, "SELECT name FROM sqlite_master WHERE name = 'transactions'") == []

    with Store.open(path) as store:
        assert store.positions("aave-main") == [PositionKey("0xpool", "0xu1")]
        assert store.cursor("aave-main") is not None
        assert store.in_flight() == []
        store.record_sent(sent(7, "0xa"))
    assert rows(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    indexes = rows(path, "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'transactions'")
    assert {"transactions_state", "transactions_position"} <= {name for (name,) in indexes}
    with Store.open(path) as store:
        assert [tx.tx_hash for tx in store.in_flight()] == ["0xa"]
