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
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from keeper.devnet.accounts import dev_account
from keeper.devnet.rpc import Rpc
from tests.conftest import Devnet, devnet_up, run_keeper

from .keeper_process import KEEPER_KEY, KeeperProcess, keeper_config

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


class SyncProcess:
    """`keeper sync --follow` with its stderr read line by line as it comes."""

    def __init__(self, config: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "keeper", "sync", "--config", str(config), "--follow"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def wait_for(self, pattern: str, timeout_s: float = 60) -> re.Match[str]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if found := re.search(pattern, line):
                    return found
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"never saw {pattern!r}; last lines: {self.lines[-5:]}")

    def wait(self, timeout_s: float = 60) -> int:
        code = self.proc.wait(timeout=timeout_s)
        self._close()
        return code

    def kill(self) -> None:
        """Leftover after a failure: SIGKILL and reap."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        self._close()

    def _close(self) -> None:
        self._reader.join(timeout=10)
        assert self.proc.stderr is not None
        if not self.proc.stderr.closed:
            self.proc.stderr.close()


@pytest.fixture
def sync_processes() -> Iterator[list[SyncProcess]]:
    started: list[SyncProcess] = []
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
    resync = run_keeper("sync", "--config", str(tmp_path / "keeper.toml"))  # what the line says to do
    assert resync.returncode == 0, resync.stderr
    assert f"synced to block {rpc.block_number()}" in resync.stderr


def test_sync_follow_halts_on_a_reorg_deeper_than_it_holds(
    reorg_devnet: Devnet, tmp_path: Path, sync_processes: list[SyncProcess]
) -> None:
    rpc = reorg_devnet.rpc
    sync = SyncProcess(keeper_config(reorg_devnet, tmp_path, "dry-run"))
    sync_processes.append(sync)
    start = int(sync.wait_for(r"synced to block (\d+)").group(1))
    head = mine(rpc, 2)
    sync.wait_for(rf"^\[sync\] block {head}: ")
    reorg_below(rpc, start)
    assert_one_failure_line(sync.lines, sync.wait())
    assert not any("stopped at block" in line for line in sync.lines)


def test_sync_follow_stops_at_the_first_signal(
    reorg_devnet: Devnet, tmp_path: Path, sync_processes: list[SyncProcess]
) -> None:
    rpc = reorg_devnet.rpc
    sync = SyncProcess(keeper_config(reorg_devnet, tmp_path, "dry-run"))
    sync_processes.append(sync)
    sync.wait_for(r"synced to block")
    head = mine(rpc, 1)
    sync.wait_for(rf"^\[sync\] block {head}: ")
    sync.proc.send_signal(signal.SIGINT)  # no further block comes: only the daemon's timer can stop it
    started = time.monotonic()
    assert sync.wait(timeout_s=30) == 0, sync.lines[-5:]
    assert time.monotonic() - started < 5
    assert sync.lines[-1].rstrip("\n") == f"[sync] stopped at block {head}"
    assert not any(line.startswith("keeper:") or "Traceback" in line for line in sync.lines)


def test_a_status_port_in_use_is_one_line_and_exit_2(reorg_devnet: Devnet, tmp_path: Path) -> None:
    config = keeper_config(reorg_devnet, tmp_path, "live")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config.write_text(re.sub(r'(?m)^listen = ".*"$', f'listen = "127.0.0.1:{port}"', config.read_text()))
        proc = run_keeper("run", "--config", str(config), env=dict(os.environ, KEEPER_PRIVATE_KEY=KEEPER_KEY))
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    said = [line for line in proc.stderr.splitlines() if line.startswith("keeper:")]
    assert said == [proc.stderr.strip().splitlines()[-1]]
    assert said[0].startswith(f"keeper: error: metrics.listen: cannot listen on 127.0.0.1:{port} (")
