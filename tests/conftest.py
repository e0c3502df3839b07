"""Shared fixtures: one real devnet per session, snapshot/revert around each test that mutates it."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from keeper.devnet.rpc import Rpc

AAVE_BORROWERS = 80
MORPHO_BORROWERS = 80
LARGE_BORROWERS = 1000
"""The differential proofs run on 1,000 borrowers per protocol, on a devnet of their own."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def run_keeper(
    *args: str, env: dict[str, str] | None = None, timeout_s: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "keeper", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=env,
        check=False,
    )


@dataclass(frozen=True)
class Devnet:
    summary: dict[str, Any]
    config_path: Path
    port: int

    @property
    def rpc(self) -> Rpc:
        return Rpc(self.summary["rpc_url"])


def devnet_up(
    tmp_path_factory: pytest.TempPathFactory, aave: int, morpho: int, *extra: str
) -> Iterator[Devnet]:
    port = free_port()
    config_path = tmp_path_factory.mktemp("devnet") / "devnet.toml"
    proc = run_keeper(
        "devnet",
        "up",
        "--port",
        str(port),
        "--aave-borrowers",
        str(aave),
        "--morpho-borrowers",
        str(morpho),
        "--config-out",
        str(config_path),
        "--detach",
        *extra,
    )
    assert proc.returncode == 0, proc.stderr
    try:
        yield Devnet(json.loads(proc.stdout), config_path, port)
    finally:
        run_keeper("devnet", "down", "--port", str(port))


@pytest.fixture(scope="session")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    yield from devnet_up(tmp_path_factory, AAVE_BORROWERS, MORPHO_BORROWERS)


@pytest.fixture(scope="session")
def large_devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    yield from devnet_up(tmp_path_factory, LARGE_BORROWERS, LARGE_BORROWERS)


@pytest.fixture
def large_chain(large_devnet: Devnet) -> Iterator[Devnet]:
    """The large devnet, reverted to its seeded state after the test."""
    yield from _reverted_after(large_devnet)


@pytest.fixture
def chain(devnet: Devnet) -> Iterator[Devnet]:
    """The session devnet, reverted to its seeded state after the test."""
    yield from _reverted_after(devnet)


def _reverted_after(devnet: Devnet) -> Iterator[Devnet]:
    rpc = devnet.rpc
    snapshot = rpc.call("evm_snapshot")
    try:
        yield devnet
    finally:
        assert rpc.call("evm_revert", [snapshot]) is True
        rpc.call("anvil_dropAllTransactions")  # Anvil re-queues the reverted blocks' transactions
