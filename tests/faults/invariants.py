"""The checks every fault case ends with, written once.

A case breaks something on purpose (kills the keeper, spends its nonce, reorgs the chain, feeds it
bad answers), lets the keeper recover, stops it, and then hands a `Run` to `check_all`, which asserts
the five properties an operator relies on whatever went wrong:

1. `nothing_profitable_left`: every position still liquidatable at the end is one the pool protects
   (Aave's grace period) or one the keeper itself last skipped because it would not pay;
2. `no_reverted_transactions`: no transaction of the keeper's account in the case's blocks reverted;
3. `nothing_stuck`: the keeper's account has nothing in the node's pool (pending nonce == latest
   nonce) and the store nothing pending;
4. `store_equals_resync`: the store is a canonical prefix of the chain: its cursor is canonical, and
   brought to head by `keeper sync` it equals a fresh `keeper sync` into a new store;
5. `no_nonce_used_twice`: the store records at most one mined transaction per nonce, every one of
   them is on chain at its block with its nonce, and every transaction the chain has from the
   account in the case's blocks is recorded as mined (or is one the case sent by hand).

Each check returns figures for the report and raises AssertionError saying what is wrong.
Call them after the keeper has stopped (SIGTERM lets it settle what is in flight): a running keeper
would change what they read. `check_all` pauses the devnet's interval mining while it reads, so
every check sees the same head, and resumes it after.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keeper.chain.revert import describe_revert
from keeper.state.store import Store
from keeper.state.txstate import TxState
from tests.e2e.scenario import aave_borrowers, aave_refused, aave_unhealthy, morpho_unhealthy
from tests.support.config import variant
from tests.support.devnet import Devnet
from tests.support.keeper import Event

WOULD_NOT_PAY = (
    "not profitable",
    "pool quotes the seized collateral",
    "the executor cannot take this liquidation",
    "can lend",
)
"""Skip reasons (substrings) that mean "this liquidation would not pay", not "missed": the swap
does not cover the debt within the slippage bound, gas eats the profit, no pool trades the pair,
nobody can lend the debt."""


@dataclass
class Run:
    """What a fault case hands to the checks."""

    devnet: Devnet
    account: str
    """The keeper's signing address."""
    store: Path
    """The keeper's store file (the keeper is stopped)."""
    first_block: int
    """The first block that may hold a transaction of this case (the keeper's first start)."""
    events: list[Event]
    """Every JSON event of every keeper process of the case, in order."""
    by_hand: set[str] = field(default_factory=set)
    """Hashes of transactions the case itself sent from the keeper's key (check 5 allows them)."""


def check_all(run: Run, work_dir: Path) -> dict[str, Any]:
    """All five checks at one paused head; their figures merged. ``work_dir``: for the resync stores."""
    with mining_paused(run.devnet):
        head = run.devnet.rpc.block_number()
        figures: dict[str, Any] = {"head": head}
        figures |= nothing_profitable_left(run, head)
        figures |= no_reverted_transactions(run, head)
        figures |= nothing_stuck(run)
        figures |= store_equals_resync(run, work_dir)
        figures |= no_nonce_used_twice(run, head)
        return figures


_PAUSES: Counter[int] = Counter()
"""How many `mining_paused` blocks are open, by devnet port."""


@contextmanager
def mining_paused(devnet: Devnet) -> Iterator[None]:
    """Interval mining off inside; a nested use keeps it off until the outermost ends, when the
    fault cases' devnet goes back to a block every second."""
    if _PAUSES[devnet.port] == 0:
        devnet.rpc.call("evm_setIntervalMining", [0])
    _PAUSES[devnet.port] += 1
    try:
        yield
    finally:
        _PAUSES[devnet.port] -= 1
        if _PAUSES[devnet.port] == 0:
            devnet.rpc.call("evm_setIntervalMining", [1])


def _last_skip_reasons(events: list[Event]) -> dict[str, str]:
    """User -> the reason of the keeper's last decision about them ("" when it was not a skip)."""
    last: dict[str, str] = {}
    for event in events:
        name = event.get("event")
        if name == "opportunity_skipped":
            last[event["user"].lower()] = event.get("reason", "")
        elif name in ("liquidation_sent", "liquidation_mined"):
            last[event["user"].lower()] = ""
    return last


def nothing_profitable_left(run: Run, head: int) -> dict[str, Any]:
    """(1) Everything liquidatable at ``head`` is protected by the pool or would not pay."""
    devnet, summary = run.devnet, run.devnet.summary
    pool = summary["aave"]["pool"]
    aave_left = aave_unhealthy(devnet.rpc, pool, aave_borrowers(devnet.rpc, pool), head)
    protected = aave_refused(devnet.rpc, pool, aave_left, head, run.account)
    morpho_left = morpho_unhealthy(devnet, head)
    reasons = _last_skip_reasons(run.events)
    missed = {
        user
        for user in (aave_left - protected) | morpho_left
        if not any(r in reasons.get(user.lower(), "") for r in WOULD_NOT_PAY)
    }
    assert not missed, (
        f"{len(missed)} liquidatable positions left that were not judged unprofitable: "
        + ", ".join(f"{u} (last: {reasons.get(u.lower(), 'never seen')!r})" for u in sorted(missed)[:5])
    )
    return {
        "left_protected": len(protected),
        "left_unprofitable": len(aave_left - protected) + len(morpho_left),
    }


def keeper_transactions(run: Run, head: int) -> list[dict[str, Any]]:
    """The keeper account's transactions mined in ``first_block..head``, each with its receipt."""
    numbers = range(run.first_block, head + 1)
    blocks = run.devnet.rpc.batch([("eth_getBlockByNumber", [hex(n), True]) for n in numbers])
    receipts = run.devnet.rpc.batch([("eth_getBlockReceipts", [hex(n)]) for n in numbers])
    found = []
    for block, block_receipts in zip(blocks, receipts, strict=True):
        by_hash = {r["transactionHash"]: r for r in block_receipts or []}
        for tx in block["transactions"]:
            if tx["from"].lower() == run.account.lower():
                found.append(tx | {"receipt": by_hash[tx["hash"]]})
    return found


def no_reverted_transactions(run: Run, head: int) -> dict[str, Any]:
    """(2) No transaction of the keeper's account reverted."""
    mined = keeper_transactions(run, head)
    reverted = [tx for tx in mined if tx["receipt"]["status"] != "0x1"]
    assert not reverted, f"{len(reverted)} keeper transactions reverted: " + "; ".join(
        _what_reverted(run, tx) for tx in reverted[:5]
    )
    return {"keeper_transactions_mined": len(mined)}


def _what_reverted(run: Run, tx: dict[str, Any]) -> str:
    """A reverted transaction with what the keeper logged about it and its position: enough to tell
    a lost race from a stale rebroadcast or a wrong amount without rerunning the case."""
    about = [e for e in run.events if tx["hash"] in (e.get("tx"), e.get("old"))]
    users = {str(e["user"]).lower() for e in about if e.get("user")}
    story = [
        {k: e[k] for k in ("event", "block", "tx", "old", "nonce", "reason", "note") if k in e}
        for e in run.events
        if str(e.get("user", "")).lower() in users
        or tx["hash"] in (e.get("tx"), e.get("old"))
        or e.get("nonce") == int(tx["nonce"], 16)
    ]
    return (
        f"{tx['hash']} (nonce {int(tx['nonce'], 16)}, block {int(tx['blockNumber'], 16)}, "
        f"gas used {int(tx['receipt']['gasUsed'], 16)}, {_revert_of(run, tx['hash'])}, "
        f"user {sorted(users)}): {story[-12:]}"
    )


def _revert_of(run: Run, tx_hash: str) -> str:
    """The revert's name, from the node's call trace (the executor's custom errors by name)."""
    try:
        trace = run.devnet.rpc.call("debug_traceTransaction", [tx_hash, {"tracer": "callTracer"}])
    except Exception as exc:  # the trace is a diagnosis: its absence must not hide the assertion
        return f"no trace ({exc})"
    output = trace.get("output") or "0x"
    return f"{describe_revert(bytes.fromhex(output[2:]))} ({trace.get('error')})"


def in_node_pool(devnet: Devnet, account: str) -> tuple[int, int, list[str]]:
    """``account``'s latest and pending nonces, and the nonces the node's pool holds for it (pending
    and queued: Anvil's pending count leaves out a transaction queued behind a gap), in one batch."""
    latest, pending, content = devnet.rpc.batch(
        [
            ("eth_getTransactionCount", [account, "latest"]),
            ("eth_getTransactionCount", [account, "pending"]),
            ("txpool_content", []),
        ]
    )
    pooled = [
        nonce
        for section in ("pending", "queued")
        for sender, txs in (content.get(section) or {}).items()
        if sender.lower() == account.lower()
        for nonce in txs
    ]
    return int(latest, 16), int(pending, 16), pooled


def nothing_stuck(run: Run) -> dict[str, Any]:
    """(3) Nothing of the keeper's in the node's pool, nothing pending in its store."""
    latest, pending, pooled = in_node_pool(run.devnet, run.account)
    assert latest == pending and not pooled, (
        f"in the node's pool: nonces {pooled} (latest {latest}, pending {pending})"
    )
    with Store.open(run.store) as store:
        in_flight = store.in_flight()
    assert not in_flight, (
        f"the store still has {len(in_flight)} pending: {[(t.nonce, t.tx_hash) for t in in_flight[:5]]}"
    )
    return {"account_nonce": latest}


def _sync(config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "keeper", "sync", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _snapshot(store: Path) -> tuple[dict[str, frozenset[Any]], dict[str, tuple[int, str] | None]]:
    with Store.open(store) as opened:
        names = [row[0] for row in opened._conn.execute("SELECT DISTINCT protocol FROM cursor")]
        positions = {name: frozenset(opened.positions(name)) for name in names}
        cursors = {name: (c.number, c.hash) if (c := opened.cursor(name)) else None for name in names}
    return positions, cursors


def store_equals_resync(run: Run, work_dir: Path) -> dict[str, Any]:
    """(4) The keeper's cursor is canonical, and its store brought to head by `keeper sync` equals a
    fresh `keeper sync` into a new store (positions and cursor of every protocol)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    _, own_cursors = _snapshot(run.store)
    for name, cursor in own_cursors.items():
        assert cursor is not None, f"{name}: the keeper's store has no cursor"
        header = run.devnet.rpc.call("eth_getBlockByNumber", [hex(cursor[0]), False])
        assert header and header["hash"] == cursor[1], f"{name}: the store's cursor {cursor} is not canonical"
    warm, fresh = work_dir / "warm.sqlite", work_dir / "fresh.sqlite"
    for path in (warm, fresh):
        for leftover in path.parent.glob(path.name + "*"):
            leftover.unlink()
    with sqlite3.connect(run.store) as source, sqlite3.connect(warm) as copy:
        source.backup(copy)  # a consistent copy, WAL included; the keeper's own file is left alone
    with mining_paused(run.devnet):  # both syncs reach the same head (blocks come every second)
        syncs = [
            _sync(variant(run.devnet, path.with_suffix(".toml"), {"store": {"path": str(path)}}))
            for path in (warm, fresh)
        ]
        for proc in syncs:
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err[-1000:]
    warm_state, fresh_state = _snapshot(warm), _snapshot(fresh)
    assert warm_state[1] == fresh_state[1], f"cursors differ: resumed {warm_state[1]}, fresh {fresh_state[1]}"
    for name, positions in fresh_state[0].items():
        resumed = warm_state[0].get(name, frozenset())
        assert resumed == positions, (
            f"{name}: resumed store has {len(resumed - positions)} extra and "
            f"{len(positions - resumed)} missing positions"
        )
    shutil.rmtree(work_dir, ignore_errors=True)
    return {"positions": sum(len(p) for p in fresh_state[0].values())}


def no_nonce_used_twice(run: Run, head: int) -> dict[str, Any]:
    """(5) One mined record per nonce, each on chain as recorded, and the chain's keeper
    transactions all recorded as mined (bar the ones sent by hand)."""
    with Store.open(run.store) as store:
        records = store.transactions()
    settled = [t for t in records if t.state in (TxState.MINED, TxState.REVERTED)]
    twice = [n for n, count in Counter(t.nonce for t in settled).items() if count > 1]
    assert not twice, f"the store records nonces {twice[:5]} as mined more than once"
    chain = {tx["hash"]: tx for tx in keeper_transactions(run, head)}
    chain_nonces = Counter(int(tx["nonce"], 16) for tx in chain.values())
    assert all(count == 1 for count in chain_nonces.values()), "the chain has a nonce twice (impossible)"
    for tx in settled:
        mined = chain.get(tx.tx_hash)
        assert mined is not None, (
            f"store: nonce {tx.nonce} mined as {tx.tx_hash}, which the chain does not have"
        )
        assert int(mined["blockNumber"], 16) == tx.mined_block, (
            f"{tx.tx_hash}: store block {tx.mined_block}, chain {mined['blockNumber']}"
        )
        assert int(mined["nonce"], 16) == tx.nonce, (
            f"{tx.tx_hash}: store nonce {tx.nonce}, chain {mined['nonce']}"
        )
    recorded = {t.tx_hash for t in settled}
    unrecorded = set(chain) - recorded - run.by_hand
    assert not unrecorded, (
        f"{len(unrecorded)} keeper transactions on chain the store does not record as mined: "
        f"{sorted(unrecorded)[:3]}"
    )
    return {"nonces_mined": len(settled), "store_records": len(records)}
