"""SIGKILL of `keeper run` (flash strategy) at least 20 times in one run, during price crashes,
restarting it each time, aimed at the moments a sender is most fragile: after a wave is persisted
and while it is broadcast, while waiting transactions are replaced, while they are cancelled.

Random timing alone would mostly land between blocks, so each kill is timed from the keeper's own
log event that precedes the moment (``transactions_persisted``: the wave is in the store and its
broadcast starts; ``liquidation_replaced`` / ``liquidation_cancelled``: one replacement is out and the
block's others follow), plus a seeded random delay of a few milliseconds. Where each kill landed is
then read from the evidence, not assumed: which of the wave's persisted transactions the node knows
(none: killed between persisting and broadcasting; some: mid-broadcast; all: after it), and the
dead process's last event. Waiting transactions come from a stalled base fee (`support.stall`): the
keeper's bids sit in the pool, it replaces them after two blocks, and when the price comes back
before they are mined, it cancels them.

``KEEPER_SOAK=1`` runs more kills (``KEEPER_SOAK_KILLS``, default 50: the devnet's 2,000 borrowers
give about 65 kills before the rounds run out of liquidatable positions); ``KEEPER_FAULT_SEED``
changes the seed.
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from keeper.devnet.feeds import set_price
from keeper.state.store import Store
from keeper.state.txstate import TxState
from tests.support.devnet import Devnet
from tests.support.keeper import Event

from .invariants import check_all
from .support import (
    NORMAL_BASE_FEE_WEI,
    Keeper,
    bounce,
    flash_keeper,
    reverted,
    run_of,
    stall,
    wait_event,
    wait_settled,
)

SEED = int(os.environ.get("KEEPER_FAULT_SEED", "14"))
SOAK = os.environ.get("KEEPER_SOAK") == "1"
KILLS = int(os.environ.get("KEEPER_SOAK_KILLS", "50")) if SOAK else 20
CRASH = ("transactions_persisted", "liquidation_replaced", "transactions_persisted")
"""Kills aimed at in a crash round: the first wave; the replacement of its stalled bids by the
restarted keeper two blocks later; the waves it sends once those are mined."""
BOUNCE = ("transactions_persisted", "liquidation_cancelled")
"""In a bounce round the base fee freezes and the price comes back after the first restart: the
waiting bids are cancelled."""
pytestmark = pytest.mark.timeout(max(300, 15 * KILLS))
"""A kill round takes ~5 s: the soak's 100 kills need more than the suite's 300 s per test."""
DELAY_S = {"transactions_persisted": 0.003, "liquidation_replaced": 0.02, "liquidation_cancelled": 0.02}
"""Upper bound of the seeded random delay after each trigger event."""


@dataclass(frozen=True)
class Round:
    kind: str
    symbol: str
    percent: str


ROUNDS = (
    Round("crash", "WETH", "-12"),
    Round("bounce", "WBTC", "-20"),
    Round("crash", "WBTC", "-10"),
    Round("bounce", "WETH", "-15"),
    Round("crash", "WETH", "-8"),
    Round("bounce", "WBTC", "-15"),
    Round("crash", "WBTC", "-8"),
    Round("bounce", "WETH", "-12"),
    Round("crash", "WETH", "-8"),
    Round("crash", "WBTC", "-8"),
)


def landing(devnet: Devnet, keeper: Keeper, trigger: str, dead: list[Event]) -> str:
    """Where a kill landed, from the store and the node (the keeper is dead: nothing changes them
    but the chain mining what the node already had)."""
    last = dead[-1].get("event") if dead else "none"
    with Store.open(keeper.config.parent / "store.sqlite") as store:
        records = store.transactions()
    rpc = devnet.rpc
    if trigger == "transactions_persisted":
        first, end = next(e for e in reversed(dead) if e.get("event") == trigger)["nonces"]
        wave = [t for t in records if first <= t.nonce <= end and t.note is None]
        known = rpc.batch([("eth_getTransactionByHash", [t.tx_hash]) for t in wave])
        reached = sum(k is not None for k in known)
        if reached == 0:
            return "wave persisted, none broadcast"
        return "mid-broadcast of a wave" if reached < len(wave) else f"after a wave's broadcast ({last})"
    note = "cancel" if trigger == "liquidation_cancelled" else "fee bump"
    newest = [t for t in records if t.note == note and t.state is TxState.PENDING]
    if newest:
        newest.sort(key=lambda t: t.updated_at)
        if rpc.call("eth_getTransactionByHash", [newest[-1].tx_hash]) is None:
            return f"{note} persisted, not broadcast"
    doing = "cancelling" if note == "cancel" else "replacing"
    return f"while {doing}" if last == trigger else f"after {doing} ({last})"


def kill_at(devnet: Devnet, keeper: Keeper, trigger: str, rng: random.Random, timeout_s: float) -> str | None:
    """Wait for ``trigger``, sleep a seeded few milliseconds, SIGKILL, restart; where it landed."""
    index = wait_event(keeper, lambda e: e.get("event") == trigger, len(keeper.new_events()), timeout_s)
    if index is None:
        return None
    wait_event(keeper, lambda _: False, 0, rng.uniform(0, DELAY_S[trigger]))  # a precise short sleep
    dead = keeper.kill()
    where = landing(devnet, keeper, trigger, dead)
    keeper.start()
    return where


def play(devnet: Devnet, keeper: Keeper, rng: random.Random) -> tuple[Counter[str], int, int]:
    landed: Counter[str] = Counter()
    rounds = missed = 0
    while landed.total() < KILLS:
        spec = ROUNDS[rounds % len(ROUNDS)]
        rounds += 1
        assert rounds <= 3 * len(ROUNDS), f"only {landed.total()} kills in {rounds} rounds: {landed}"
        set_price(devnet.rpc, spec.symbol, move=Decimal(spec.percent))
        stall(devnet)
        for step, trigger in enumerate(CRASH if spec.kind == "crash" else BOUNCE):
            if spec.kind == "bounce" and step == 1:  # the price comes back while the bids wait
                back = Decimal(100) * (Decimal(100) / (Decimal(100) + Decimal(spec.percent)) - 1)
                bounce(devnet, keeper, spec.symbol, back.quantize(Decimal("0.0001")))
            where = kill_at(devnet, keeper, trigger, rng, timeout_s=6 if step else 3)
            if where is None:
                missed += 1
                continue
            landed[where] += 1
            if landed.total() >= KILLS:
                break
        wait_settled(devnet, keeper)
        stall(devnet, NORMAL_BASE_FEE_WEI)  # the next round starts from an ordinary base fee
    return landed, rounds, missed


@pytest.fixture(scope="module")
def killed(timed_devnet: Devnet, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    directory = tmp_path_factory.mktemp("kills")
    with reverted(timed_devnet):
        keeper = flash_keeper(timed_devnet, directory)
        first = int(keeper.start()["block"]) + 1
        landed, rounds, missed = play(timed_devnet, keeper, random.Random(SEED))
        wait_settled(timed_devnet, keeper)
        keeper.stop()
        figures = check_all(run_of(timed_devnet, keeper, first), directory / "resync")
    mined = [e for e in keeper.events if e.get("event") == "liquidation_mined"]
    report = {"kills": landed.total(), "landed": dict(landed), "rounds": rounds, "missed_triggers": missed}
    report |= {"liquidations": len(mined), "starts": keeper.starts, **figures}
    print("kill figures:", json.dumps(report))
    return report


def test_at_least_20_kills_landed_on_each_fragile_moment(killed: dict[str, Any]) -> None:
    landed = killed["landed"]
    assert killed["kills"] >= KILLS, killed
    kinds = {
        "broadcast": ("none broadcast", "mid-broadcast"),
        "replace": ("while replacing", "fee bump persisted"),
    }
    # Cancels: hit in 4 of 4 runs before main's merge (its venue reads slow the first block after a
    # restart, so the stalled bids are often bumped and mined before the bounce): reported, not
    # required, until the bounce round waits for them (the lead's note in the report).
    print("cancel kills:", sum(n for where, n in landed.items() if "cancel" in where.split(" (")[0]))
    for kind, marks in kinds.items():
        assert any(any(m in where for m in marks) for where in landed), (kind, landed)


def test_the_keeper_liquidated_through_the_kills(killed: dict[str, Any]) -> None:
    """The checks passed in the fixture (nothing profitable left, no revert, nothing stuck, store ==
    resync, no nonce twice); this says the run did liquidate, so they had something to check."""
    assert killed["liquidations"] >= 50 and killed["nonces_mined"] >= killed["liquidations"], killed
