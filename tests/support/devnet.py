"""Start and stop a detached devnet (`keeper devnet up --detach`) on a free port."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keeper.devnet.rpc import Rpc

from .keeper import run_keeper
from .ports import free_port

DEVNET_UP_TIMEOUT_S = 1_800
"""Seeding 10,000 borrowers (the sync benchmark) takes minutes; a test devnet takes seconds."""


@dataclass(frozen=True)
class Devnet:
    summary: dict[str, Any]
    """What `keeper devnet up` printed: addresses, reserves, markets, URLs."""
    config_path: Path
    """The keeper config the devnet wrote for itself."""
    port: int

    @property
    def rpc(self) -> Rpc:
        return Rpc(self.summary["rpc_url"])


@contextmanager
def running_devnet(config_out: Path, aave: int, morpho: int, *extra: str) -> Iterator[Devnet]:
    """A devnet with ``aave`` + ``morpho`` borrowers, brought down on exit whatever happened."""
    port = free_port()
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
        str(config_out),
        "--detach",
        *extra,
        timeout_s=DEVNET_UP_TIMEOUT_S,
    )
    if proc.returncode != 0:
        run_keeper("devnet", "down", "--port", str(port))  # a half-started Anvil must not outlive us
        raise RuntimeError(f"keeper devnet up failed: {proc.stderr[-2000:]}")
    try:
        yield Devnet(json.loads(proc.stdout), config_out, port)
    finally:
        run_keeper("devnet", "down", "--port", str(port))
