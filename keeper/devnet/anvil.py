"""Start, find and stop the devnet's Anvil process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from keeper.errors import DevnetError, UsageError

from .rpc import Rpc
from .toolchain import Toolchain

CHAIN_ID = 31337
READY_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class AnvilProcess:
    pid: int
    port: int
    log_path: Path

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


HISTORY_STATES = 500
"""States Anvil keeps, in memory; older ones are dropped instead of written to its temporary
directory, which a long devnet (the bench, a soak) otherwise fills with gigabytes that a killed
Anvil never removes. A read at a block older than that fails."""


def pid_file(chain: Toolchain, port: int) -> Path:
    return chain.cache_dir / f"anvil-{port}.json"


def start_anvil(anvil: str, chain: Toolchain, port: int, host: str = "127.0.0.1") -> AnvilProcess:
    """Start Anvil in its own session (survives the CLI with --detach) and wait until it answers."""
    if not 1 <= port <= 65535:
        raise UsageError(f"--port {port} is not a TCP port")
    if port_in_use(port):
        raise UsageError(
            f"port {port} is in use (is a devnet already up? try `keeper devnet down --port {port}`)"
        )
    chain.cache_dir.mkdir(parents=True, exist_ok=True)
    log_path = chain.cache_dir / f"anvil-{port}.log"
    args = [
        anvil,
        "--host",
        host,
        "--port",
        str(port),
        "--chain-id",
        str(CHAIN_ID),
        "--auto-impersonate",
        "--order",
        "fifo",
        "--disable-block-gas-limit",
        "--prune-history",
        str(HISTORY_STATES),
    ]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    process = AnvilProcess(proc.pid, port, log_path)
    deadline = time.monotonic() + READY_TIMEOUT_S
    rpc = Rpc(process.rpc_url, timeout_s=2)
    while True:
        if proc.poll() is not None:
            raise DevnetError(f"anvil exited with {proc.returncode}: see {log_path}")
        try:
            rpc.call("eth_chainId")
            break
        except DevnetError:
            if time.monotonic() > deadline:
                stop_pid(proc.pid)
                raise DevnetError(f"anvil did not answer on port {port} within {READY_TIMEOUT_S} s") from None
            time.sleep(0.05)
    pid_file(chain, port).write_text(json.dumps({"pid": proc.pid, "port": port, "log": str(log_path)}))
    return process


def stop_pid(pid: int, timeout_s: float = 10.0) -> bool:
    """SIGTERM, then SIGKILL after ``timeout_s``; False if there was no such process."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    return True


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        waited = 0
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return not _is_zombie(pid)
    return waited == 0


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return False


def stop_anvil(chain: Toolchain, port: int) -> bool:
    """Stop the detached devnet on ``port``; False if none was recorded."""
    path = pid_file(chain, port)
    if not path.is_file():
        return False
    record = json.loads(path.read_text())
    stop_pid(int(record["pid"]))
    path.unlink(missing_ok=True)
    return True
