"""How the daemon ends: a halt is one line and exit 1, a bad config one line and exit 2, a signal
a clean exit 0.

The halt is a real one: once `keeper run` / `keeper sync --follow` is following, Anvil reorgs the
chain from below the block the daemon started at, so none of the blocks it holds in memory is
canonical any more and the sync halts ("reorg deeper than the N blocks kept in memory"). The
devnet is this module's own: a reorg is not something to do to the session's chain.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from keeper.devnet.accounts import dev_account
from keeper.devnet.rpc import Rpc
from tests.conftest import devnet_up
from tests.support.config import keeper_config, variant
from tests.support.devnet import Devnet
from tests.support.keeper import KEEPER_KEY, KeeperProcess, LoggedProcess, run_keeper

pytestmark = pytest.mark.integration

HALT_LINE = re.compile(
    r"^keeper: failed: reorg deeper than the \d+ blocks kept in memory; restart to resync$"
)


@pytest.fixture(scope="module")
def reorg_devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    yield from devnet_up(tmp_path_factory, 3, 3)


def mine(rpc: Rpc, blocks: int) -> int:
    for _ in range(blocks):
        rpc.call("evm_mine")
    return rpc.block_number()


def reorg_below(rpc: Rpc, start_block: int) -> None:
    """Replace every block from ``start_block - 1`` up, then outgrow the old head by one block.

    The replaced blocks' first carries a transaction, so every hash from there on changes; the
    extra block is what the follower is waiting for, and its parent is a block it never applied.
    """
    depth = rpc.block_number() - start_block + 2
    sender = dev_account(9).address
    rpc.call("anvil_reorg", [depth, [[{"from": sender, "to": sender, "value": "0x1"}, 0]]])
    mine(rpc, 1)


def assert_one_failure_line(stderr_lines: list[str], code: int) -> None:
    text = "".join(stderr_lines)
    assert code == 1, text[-2000:]
    assert "Traceback" not in text and "ExceptionGroup" not in text, text[-2000:]
    said = [line.rstrip("\n") for line in stderr_lines if line.startswith("keeper:")]
    assert len(said) == 1 and HALT_LINE.match(said[0]), said
    assert stderr_lines[-1].rstrip("\n") == said[0]  # and it is the last word


def follow_sync(config: Path) -> LoggedProcess:
    """`keeper sync --follow`; its progress lines (and any failure line) are on stderr."""
    args = [sys.executable, "-m", "keeper", "sync", "--config", str(config), "--follow"]
    return LoggedProcess(args, dict(os.environ))


def wait_for_line(process: LoggedProcess, pattern: str, timeout_s: float = 60) -> re.Match[str]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for line in list(process.lines):
            if found := re.search(pattern, line):
                return found
        if process.proc.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError(f"never saw {pattern!r}; last lines: {process.lines[-5:]}")


@pytest.fixture
def sync_processes() -> Iterator[list[LoggedProcess]]:
    started: list[LoggedProcess] = []
    yield started
    for process in started:
        process.kill()


def test_keeper_run_halts_on_a_reorg_deeper_than_it_holds(reorg_devnet: Devnet, tmp_path: Path) -> None:
    rpc = reorg_devnet.rpc
    keeper = KeeperProcess(keeper_config(reorg_devnet, tmp_path, "live"))
    start = keeper.wait_for(lambda e: e.get("event") == "keeper_ready")["block"]
    head = mine(rpc, 2)
    keeper.wait_for(lambda e: e.get("event") == "block_handled" and e["block"] == head)
    reorg_below(rpc, start)
    assert_one_failure_line(keeper.lines, keeper.wait())
    halted = keeper.named("keeper_halted")
    assert len(halted) == 1 and halted[0]["kind"] == "Halt" and halted[0]["level"] == "error"
    assert not keeper.named("keeper_stopped")  # a halt is not a clean stop
    assert len(keeper.named("signer_loaded")) == 1
    resync = run_keeper("sync", "--config", str(tmp_path / "keeper.toml"))  # what the line says to do
    assert resync.returncode == 0, resync.stderr
    assert f"synced to block {rpc.block_number()}" in resync.stderr


def test_sync_follow_halts_on_a_reorg_deeper_than_it_holds(
    reorg_devnet: Devnet, tmp_path: Path, sync_processes: list[LoggedProcess]
) -> None:
    rpc = reorg_devnet.rpc
    sync = follow_sync(keeper_config(reorg_devnet, tmp_path, "dry-run"))
    sync_processes.append(sync)
    start = int(wait_for_line(sync, r"synced to block (\d+)").group(1))
    head = mine(rpc, 2)
    wait_for_line(sync, rf"^\[sync\] block {head}: ")
    reorg_below(rpc, start)
    assert_one_failure_line(sync.lines, sync.wait())
    assert not any("stopped at block" in line for line in sync.lines)


def test_sync_follow_stops_at_the_first_signal(
    reorg_devnet: Devnet, tmp_path: Path, sync_processes: list[LoggedProcess]
) -> None:
    rpc = reorg_devnet.rpc
    sync = follow_sync(keeper_config(reorg_devnet, tmp_path, "dry-run"))
    sync_processes.append(sync)
    wait_for_line(sync, r"synced to block")
    head = mine(rpc, 1)
    wait_for_line(sync, rf"^\[sync\] block {head}: ")
    sync.proc.send_signal(signal.SIGINT)  # no further block comes: only the daemon's timer can stop it
    started = time.monotonic()
    assert sync.wait(timeout_s=30) == 0, sync.lines[-5:]
    assert time.monotonic() - started < 5
    assert sync.lines[-1].rstrip("\n") == f"[sync] stopped at block {head}"
    assert not any(line.startswith("keeper:") or "Traceback" in line for line in sync.lines)


def test_a_status_port_in_use_is_one_line_and_exit_2(reorg_devnet: Devnet, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        changes = {
            "execution": {"mode": "live"},
            "store": {"path": str(tmp_path / "store.sqlite")},
            "metrics": {"listen": f"127.0.0.1:{port}"},
        }
        config = variant(reorg_devnet, tmp_path / "keeper.toml", changes)
        proc = run_keeper("run", "--config", str(config), env=dict(os.environ, KEEPER_PRIVATE_KEY=KEEPER_KEY))
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    said = [line for line in proc.stderr.splitlines() if line.startswith("keeper:")]
    assert said == [proc.stderr.strip().splitlines()[-1]]
    assert said[0].startswith(f"keeper: error: metrics.listen: cannot listen on 127.0.0.1:{port} (")
