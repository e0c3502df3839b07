"""The spend guard's shell: counts each settled receipt, persists the trip, refuses new sends.

The decisions are `keeper.execution.guard`'s (pure); this keeps the recent settlements in memory,
writes each one (and the trip it causes) to the store before the executor marks the transaction
mined, exports the figures as gauges, and says why it stopped: ``spend_guard_tripped`` (error),
``keeper_spend_guard_tripped{cap}``, and /readyz's reason. It also serves `keeper guard status`
and `keeper guard reset`, which work on the store alone (the keeper may be running or not: a
running keeper reads the reset at its next block).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import structlog

from keeper.chain.types import BlockRef
from keeper.config import GuardConfig
from keeper.execution.guard import Limits, figures, plus, reached_by, recent, settlement
from keeper.obs.metrics import Metrics
from keeper.protocols.registry import liquidation_events
from keeper.state.guardstate import Cap, Settlement, Trip
from keeper.state.store import Store
from keeper.state.txstate import SentTx

log = structlog.get_logger(__name__)


def limits_of(config: GuardConfig) -> Limits:
    """The config's caps; 0 is no cap."""
    return Limits(
        gas_per_hour_wei=config.max_gas_per_hour_wei or None,
        gas_per_day_wei=config.max_gas_per_day_wei or None,
        loss_per_hour_wei=config.max_loss_per_hour_wei or None,
        loss_per_day_wei=config.max_loss_per_day_wei or None,
        max_reverts=config.max_reverts or None,
        revert_window_s=config.revert_window_s,
    )


class SpendGuard:
    def __init__(self, store: Store, limits: Limits, metrics: Metrics) -> None:
        self.store = store
        self.limits = limits
        self.metrics = metrics
        self.now_s = 0
        """The timestamp of the block being processed: settlements are stamped with it."""
        self.block = 0
        self.trip = store.guard_trip()
        self._forgiven = store.guard_forgiven_through()
        self._records: list[Settlement] = []
        """The settlements some window still counts (loaded by `start`)."""
        self._seen: set[str] = set()
        self._figures = dict.fromkeys(Cap, 0)
        """Each cap's figure at ``now_s``: summed once per block, then grown by each receipt."""

    @property
    def allows(self) -> bool:
        return self.trip is None

    def refusal(self) -> str:
        """Why nothing new may be sent ("" when it may)."""
        return "" if self.trip is None else self.trip.describe()

    def start(self, head: BlockRef) -> None:
        """At start-up: report a trip the store kept; check the caps (a lowered one may be reached)."""
        self._load(head.timestamp)
        self.at_block(head.number, head.timestamp)
        if self.trip is not None:
            log.error("spend_guard_tripped", restored=True, **_fields(self.trip))
        else:
            self._check()
        self._export()

    def at_block(self, number: int, timestamp: int) -> None:
        """Before each block: its time, and whether `keeper guard reset` ran meanwhile."""
        self.block, self.now_s = number, timestamp
        forgiven = self.store.guard_forgiven_through()
        reset = forgiven != self._forgiven
        if reset:
            self._forgiven = forgiven
            cleared, self.trip = self.trip, self.store.guard_trip()
            self._load(timestamp)
            log.warning("spend_guard_reset", cleared=None if cleared is None else str(cleared.cap))
        self._records = recent(self._records, timestamp, self.limits)
        self._figures = figures(self._records, timestamp, self.limits)
        if reset and self.trip is None:
            self._check()
        self._export()

    def _load(self, now_s: int) -> None:
        self._records = self.store.settlements(now_s - self.limits.longest_window_s)
        self._seen = {r.tx_hash for r in self._records}

    def observe(self, tx: SentTx, receipt: dict[str, Any]) -> None:
        """Count one receipt, before the executor marks it settled: a crash in between records it
        again at the restart, which the store ignores (one row per hash)."""
        if tx.tx_hash in self._seen:
            return
        record = settlement(
            tx.tx_hash,
            tx.nonce,
            int(receipt["blockNumber"], 16),
            self.now_s,
            success=int(receipt["status"], 16) == 1,
            gas_used=int(receipt["gasUsed"], 16),
            effective_gas_price=int(receipt["effectiveGasPrice"], 16),
            liquidations=len(liquidation_events(receipt["logs"])),
            approval=tx.is_approval,
        )
        self._records.append(record)
        self._seen.add(record.tx_hash)
        self._figures = plus(self._figures, record)
        trip = None
        if self.trip is None:
            trip = reached_by(self._figures, self.now_s, self.block, self.limits, tx.tx_hash)
            self.trip = trip  # in memory first: even if the write below fails, nothing new is sent
        self.store.record_settlement(record, trip)
        if trip is not None:
            log.error("spend_guard_tripped", restored=False, **_fields(trip))
        self._export()

    def _check(self) -> None:
        trip = reached_by(self._figures, self.now_s, self.block, self.limits)
        if trip is not None:
            self.trip = trip
            self.store.record_trip(trip)
            log.error("spend_guard_tripped", restored=False, **_fields(trip))

    def _export(self) -> None:
        values = self._figures
        tripped = None if self.trip is None else self.trip.cap
        for cap in Cap:
            self.metrics.guard_tripped.labels(str(cap)).set(int(cap is tripped))
        self.metrics.guard_gas.labels("hour").set(values[Cap.GAS_PER_HOUR])
        self.metrics.guard_gas.labels("day").set(values[Cap.GAS_PER_DAY])
        self.metrics.guard_loss.labels("hour").set(values[Cap.LOSS_PER_HOUR])
        self.metrics.guard_loss.labels("day").set(values[Cap.LOSS_PER_DAY])
        self.metrics.guard_reverts.set(values[Cap.REVERTS])


def _fields(trip: Trip) -> dict[str, Any]:
    return {
        "cap": str(trip.cap),
        "window_s": trip.window_s,
        "figure": str(trip.figure),
        "limit": str(trip.limit),
        "block": trip.block,
        "tx": trip.tx_hash or None,
        "reason": trip.describe(),
    }


def trip_json(trip: Trip | None) -> dict[str, Any] | None:
    if trip is None:
        return None
    return asdict(trip) | {"cap": str(trip.cap), "figure": str(trip.figure), "limit": str(trip.limit)}


def status_json(store: Store, limits: Limits, now_s: int) -> dict[str, Any]:
    """`keeper guard status`: the trip, and each cap's figure over its window ending ``now_s``."""
    trip = store.guard_trip()
    values = figures(store.settlements(now_s - limits.longest_window_s), now_s, limits)
    caps = {
        str(cap): {
            "window_s": limits.window_s(cap),
            "figure": str(values[cap]),
            "limit": None if limits.limit(cap) is None else str(limits.limit(cap)),
        }
        for cap in Cap
    }
    return {
        "tripped": trip is not None,
        "reason": None if trip is None else trip.describe(),
        "trip": trip_json(trip),
        "now_s": now_s,
        "caps": caps,
        "store": str(store.path),
    }


def reset_json(store: Store) -> dict[str, Any]:
    """`keeper guard reset`: clear the trip, forgive what was counted so far."""
    cleared, forgiven = store.reset_guard()
    return {"reset": True, "cleared": trip_json(cleared), "settlements_forgiven": forgiven}
