"""`keeper devnet up` without --detach: interval mining after seeding, Ctrl-C stops Anvil."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from keeper.devnet.anvil import port_in_use
from keeper.devnet.rpc import Rpc
from tests.conftest import free_port


def test_foreground_devnet_mines_on_interval_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    args = ["devnet", "up", "--port", str(port), "--aave-borrowers", "3", "--morpho-borrowers", "3",
            "--block-time", "1", "--config-out", str(tmp_path / "devnet.toml")]  # fmt: skip
    log = tmp_path / "stderr.log"
    with (
        log.open("w") as stderr,
        subprocess.Popen(
            [sys.executable, "-m", "keeper", *args], stdout=subprocess.PIPE, stderr=stderr, text=True
        ) as proc,
    ):
        try:
            assert proc.stdout is not None
            summary = json.loads(proc.stdout.readline())
            rpc = Rpc(summary["rpc_url"])
            first = rpc.block_number()
            deadline = time.monotonic() + 10
            while rpc.block_number() < first + 2 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert rpc.block_number() >= first + 2  # interval mining, not automine
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=15) == 0, log.read_text()
            assert not port_in_use(port)
        finally:
            if proc.poll() is None:
                proc.kill()
