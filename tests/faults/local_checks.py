"""The crash every endpoint case liquidates through, and the end checks it calls.

Stand-in for helper C's shared ``tests/faults/invariants.py`` (written in parallel): `end_checks`
is the one call each case makes at its end, so swapping it for the shared checks is one import.
It checks zero reverted keeper transactions, none left in the mempool, no nonce used twice and the
store equal to a fresh resync; `late_liquidations` checks the liquidations of a crash.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.e2e.scenario import (
    Move,
    aave_borrowers,
    aave_refused,
    aave_unhealthy,
    liquidations,
    morpho_unhealthy,
    move_price,
    transactions_from,
    wait_for_block,
)
from tests.support.config import variant
from tests.support.devnet import Devnet
from tests.support.keeper import Event, LoggedProcess, run_keeper


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


def end_checks(
    devnet: Devnet,
    keeper: LoggedProcess,
    config: Path,
    first_block: int,
    tmp: Path,
    live: bool = True,
    fresh: Path | None = None,
) -> dict[str, Any]:
    """After ``keeper`` stopped: its store's positions equal to a fresh resync's and, if it ran
    ``live``, its transactions since ``first_block``: none reverted, none in the mempool, no nonce
    twice, the same nonces mined in its store as on chain. ``fresh``: a `fresh_resync` made after
    the keeper stopped, to share between keepers (else one is made)."""
    assert keeper.proc.poll() is not None, "stop the keeper first"
    store = _store_path(config)
    fresh = fresh or fresh_resync(devnet, tmp)
    assert _book(store) == _book(fresh, _cursor_block(store)), "the store differs from a fresh resync"
    if not live:
        return {}
    rpc, address = devnet.rpc, devnet.summary["keeper_address"]
    receipts = transactions_from(devnet, address, first_block, rpc.block_number())
    reverted = [r["transactionHash"] for r in receipts if r["status"] != "0x1"]
    assert reverted == [], "a keeper transaction reverted"
    pending = rpc.call("txpool_content")
    stuck = {**pending.get("pending", {}), **pending.get("queued", {})}
    assert not {a for a in stuck if a.lower() == address.lower()}, "keeper transactions left in the mempool"
    nonces = [
        int(rpc.call("eth_getTransactionByHash", [r["transactionHash"]])["nonce"], 16) for r in receipts
    ]
    assert len(nonces) == len(set(nonces)), "a nonce used twice"
    with sqlite3.connect(store) as db:
        mined = [n for (n,) in db.execute("SELECT nonce FROM transactions WHERE state = 'mined'")]
    assert len(mined) == len(set(mined)), "the store has a nonce mined twice"
    assert sorted(mined) == sorted(nonces), "the store's mined nonces differ from the chain's"
    return {"keeper_transactions": len(receipts)}


def _store_path(config: Path) -> Path:
    from keeper.config import load_config

    return load_config(config, {}).store.path


def _cursor_block(store: Path) -> int:
    with sqlite3.connect(store) as db:
        (block,) = db.execute("SELECT MIN(block_number) FROM cursor").fetchone()
    return int(block)


def fresh_resync(devnet: Devnet, tmp: Path) -> Path:
    """A store synced from scratch to the head by `keeper sync`, over a direct endpoint."""
    tmp = tmp / "fresh"
    tmp.mkdir(exist_ok=True)
    store = tmp / "fresh.sqlite"
    config = variant(
        devnet,
        tmp / "fresh.toml",
        {"store": {"path": str(store)}, "chain": {"rpc_urls": [devnet.summary["rpc_url"]]}},
    )
    proc = run_keeper("sync", "--config", str(config))
    assert proc.returncode == 0, proc.stderr[-500:]
    return store


def _book(store: Path, at_block: int | None = None) -> set[tuple[str, str, str]]:
    """The positions of ``store``, or those it had found by ``at_block``."""
    with sqlite3.connect(store) as db:
        rows = db.execute(
            "SELECT protocol, market, user FROM positions WHERE first_block <= ?",
            (2**62 if at_block is None else at_block,),
        )
        return set(rows)


def settle(devnet: Devnet, blocks: int = 3, timeout_s: float = 30) -> None:
    """Let ``blocks`` more blocks be mined (what the keeper sent gets in or is replaced)."""
    wait_for_block(devnet.rpc, devnet.rpc.block_number() + blocks, timeout_s)
    time.sleep(0.1)
