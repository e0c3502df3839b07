"""The store's disk refusing writes mid-run, and a store from a newer schema version.

Disk full, as root too: the running keeper's RLIMIT_FSIZE is lowered to 0 from outside
(`resource.prlimit`, what `prlimit --fsize` does). The kernel then refuses every write to a regular
file (EFBIG; Python ignores SIGXFSZ), and SQLite's own VFS hits it on the WAL exactly as on a full
disk or an exhausted quota. chmod cannot do this under root, and a tiny tmpfs or a read-only bind
needs mount privileges that CI's container lacks; a file-size limit needs none, applies to root,
and is lifted again from outside. The keeper's stderr is a pipe, which the limit does not cover.

A crash while the store refuses writes: the keeper sends nothing (it could not record it), says so
in one event, and once the limit is lifted resumes and liquidates the crash.
"""

from __future__ import annotations

import resource
import sqlite3
import time
from pathlib import Path

from keeper.state.store import SCHEMA_VERSION, Store
from tests.e2e.scenario import liquidations, transactions_from, wait_for_block
from tests.support.config import keeper_config
from tests.support.devnet import Devnet
from tests.support.keeper import KeeperProcess, named, run_keeper

from .invariants import Run, check_all
from .local_checks import crash, settle, store_path

UNWRITABLE_BLOCKS = 3


def set_file_size_limit(pid: int, limit: int) -> None:
    _, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (limit, hard))


def test_a_store_that_refuses_writes_mid_run_stops_sends_until_it_can_write_again(
    timed_devnet: Devnet, tmp_path: Path
) -> None:
    rpc, s = timed_devnet.rpc, timed_devnet.summary
    config = keeper_config(timed_devnet, tmp_path, "live")
    snapshot = rpc.call("evm_snapshot")
    try:
        keeper = KeeperProcess(config)
        ready = keeper.wait_for(named("keeper_ready"), timeout_s=120)
        start = int(ready["block"])
        keeper.wait_for(lambda e: e.get("event") == "block_handled" and e["block"] > start)
        set_file_size_limit(keeper.proc.pid, 0)
        refused_from = rpc.block_number()
        crashed = crash(timed_devnet, "WETH", "-1")
        keeper.wait_for(named("store_unwritable"), timeout_s=30)
        wait_for_block(rpc, crashed.move.block + UNWRITABLE_BLOCKS)
        refused_to = rpc.block_number()
        set_file_size_limit(keeper.proc.pid, resource.RLIM_INFINITY)
        writable = keeper.wait_for(named("store_writable"), timeout_s=30)
        keeper.wait_for(lambda e: e.get("event") == "block_handled" and e["block"] >= refused_to + 3)
        settle(timed_devnet)
        assert keeper.stop() == 0, keeper.lines[-5:]
        sent_while_refused = transactions_from(timed_devnet, s["keeper_address"], refused_from, refused_to)
        done = {e["user"] for e in liquidations(timed_devnet, crashed.move.block, rpc.block_number())}
        run = Run(timed_devnet, s["keeper_address"], store_path(config), start + 1, keeper.events)
        check_all(run, tmp_path / "checks")
    finally:
        assert rpc.call("evm_revert", [snapshot]) is True
        rpc.call("anvil_dropAllTransactions")
    assert sent_while_refused == [], "sent what could not be recorded"
    assert len(crashed.became) >= 10
    assert {u for _, u in crashed.became} - done == set(), "the crash was not liquidated after resuming"
    assert len(keeper.named("store_unwritable")) == 1, "one event per outage, not one per block"
    assert "disk I/O error" in keeper.named("store_unwritable")[0]["error"]
    assert writable["block"] <= crashed.move.block, "it moved past blocks it could not record"
    assert not [line for line in keeper.lines if "Traceback" in line or "keeper_crashed" in line]
    print(f"store refused writes for blocks {refused_from}..{refused_to}; {len(done)} liquidated after")


def dump(store: Path) -> tuple[int, list[str]]:
    with sqlite3.connect(store) as db:
        return int(db.execute("PRAGMA user_version").fetchone()[0]), list(db.iterdump())


def test_a_store_from_a_newer_schema_is_refused_in_one_line(timed_devnet: Devnet, tmp_path: Path) -> None:
    config = keeper_config(timed_devnet, tmp_path, "dry-run")
    store = tmp_path / "store.sqlite"
    Store.open(store).close()
    with sqlite3.connect(store) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    before = dump(store)
    expected = (
        f"keeper: failed: store {store} has schema version {SCHEMA_VERSION + 1}, "
        f"this keeper knows up to {SCHEMA_VERSION}"
    )
    for command in ("run", "positions"):
        started = time.monotonic()
        proc = run_keeper(command, "--config", str(config), env={"KEEPER_PRIVATE_KEY": "0x" + "11" * 32})
        lines = [line for line in proc.stderr.splitlines() if line.startswith("keeper: ")]
        assert (proc.returncode, lines) == (1, [expected]), (command, proc.stderr[-400:])
        assert "Traceback" not in proc.stderr
        assert time.monotonic() - started < 30
    assert dump(store) == before, "the newer store was modified"
