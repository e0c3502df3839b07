"""The fork's Anvil: started on a free local port, stopped whatever happens to the keeper.

Anvil runs in a session of its own, so the terminal's Ctrl-C reaches the keeper only (which settles
what it sent, then stops the fork itself); on Linux the kernel also sends it SIGTERM if the keeper
dies without cleaning up (SIGKILL, a crash of the interpreter), so no fork outlives its keeper.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from keeper.devnet.anvil import stop_pid
from keeper.devnet.rpc import Rpc
from keeper.errors import DevnetError, UsageError

READY_TIMEOUT_S = 60.0
"""Anvil fetches the fork block (and its chain id) from the upstream RPC before it answers."""
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Fork:
    pid: int
    port: int
    block: int
    """The upstream head the fork started from."""
    chain_id: int

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def fork_args(anvil: str, upstream: str, port: int, block_time_s: float) -> list[str]:
    """Anvil forking ``upstream`` at its head: no dev accounts (the fork's state stays the chain's
    own: Anvil would otherwise credit its ten dev accounts 10,000 ETH), a block every
    ``block_time_s`` so that time passes and the keeper follows blocks as on the real chain."""
    return [
        anvil,
        "--fork-url",
        upstream,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--accounts",
        "0",
        "--block-time",
        f"{block_time_s:g}",
    ]


@contextlib.contextmanager
def running_fork(anvil: str, upstream: str, block_time_s: float, log_path: Path) -> Iterator[Fork]:
    """Start the fork, wait until it answers, yield it; stop it on the way out, whatever the way."""
    port = free_port()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            fork_args(anvil, upstream, port, block_time_s),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - no threads yet: the keeper starts after
        )
    try:
        yield _ready(proc, port, log_path)
    finally:
        stop_pid(proc.pid)
        proc.wait(timeout=15)


def _ready(proc: subprocess.Popen[bytes], port: int, log_path: Path) -> Fork:
    rpc = Rpc(f"http://127.0.0.1:{port}", timeout_s=5)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise UsageError(f"--fork: anvil could not fork chain.rpc_urls ({tail[0][:200]})")
        try:
            chain_id = int(rpc.call("eth_chainId"), 16)
            # the block forked from, not the head: the fork may have mined blocks of its own already
            block = int(rpc.call("anvil_nodeInfo")["forkConfig"]["forkBlockNumber"])
            return Fork(proc.pid, port, block, chain_id)
        except DevnetError:
            if time.monotonic() > deadline:
                raise UsageError(f"--fork: anvil did not answer within {READY_TIMEOUT_S:g} s") from None
            time.sleep(0.1)
