"""The crash the endpoint and store cases liquidate through, and `late_liquidations`, which checks
it was liquidated in time; their end checks are the suite's own (`tests/faults/invariants.py`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.scenario import (
    Move,
    aave_borrowers,
    aave_refused,
    aave_unhealthy,
    liquidations,
    morpho_unhealthy,
    move_price,
    wait_for_block,
)
from tests.support.devnet import Devnet
from tests.support.keeper import Event


@dataclass
class Crash:
    move: Move
    became: set[tuple[str, str]]
    """(protocol kind, user) that the move made liquidatable."""


def crash(devnet: Devnet, symbol: str = "WETH", percent: str = "-25") -> Crash:
    """Move a price in one block and work out, from the chain alone, who became liquidatable."""
    rpc, pool = devnet.rpc, devnet.summary["aave"]["pool"]
    users = aave_borrowers(rpc, pool)
    move = move_price(devnet, symbol, percent)
    was = aave_unhealthy(rpc, pool, users, move.block - 1)
    now = aave_unhealthy(rpc, pool, users, move.block)
    became = {("aave_v3", u) for u in now - was}
    became |= {
        ("morpho_blue", u)
        for u in morpho_unhealthy(devnet, move.block) - morpho_unhealthy(devnet, move.block - 1)
    }
    return Crash(move, became)


def late_liquidations(
    devnet: Devnet, crashed: Crash, events: list[Event], keeper: str
) -> list[tuple[str, str]]:
    """Positions the crash made liquidatable that nobody liquidated within 2 blocks of it, leaving out
    those the keeper judged unprofitable and those the pool refuses (a liquidation grace period)."""
    block = crashed.move.block
    wait_for_block(devnet.rpc, block + 3)
    done = {
        ("morpho_blue" if "market" in e else "aave_v3", e["user"])
        for e in liquidations(devnet, block, block + 2)
    }
    unprofitable = {
        ({"aave": "aave_v3", "morpho": "morpho_blue"}.get(e["protocol"], e["protocol"]), e["user"])
        for e in events
        if e.get("reason") == "not profitable after gas"
    }
    missing = crashed.became - done - unprofitable
    aave_missing = {u for kind, u in missing if kind == "aave_v3"}
    refused = aave_refused(devnet.rpc, devnet.summary["aave"]["pool"], aave_missing, block + 2, keeper)
    return sorted(p for p in missing if not (p[0] == "aave_v3" and p[1] in refused))


def store_path(config: Path) -> Path:
    """The store file a keeper config names."""
    from keeper.config import load_config

    return load_config(config, {}).store.path


def settle(devnet: Devnet, blocks: int = 3, timeout_s: float = 30) -> None:
    """Let ``blocks`` more blocks be mined (what the keeper sent gets in or is replaced)."""
    wait_for_block(devnet.rpc, devnet.rpc.block_number() + blocks, timeout_s)
    time.sleep(0.1)
