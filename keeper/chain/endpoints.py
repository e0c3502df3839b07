"""What the pool knows of each endpoint: error score, latency, head, and the per-method tallies it
reports. Pure: times are passed in, so the ranking maths needs no clock."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

ERROR_HALF_LIFE_S = 30.0
"""A failure's penalty halves every 30 s: the endpoint regains traffic as it decays below others' latency."""
ERROR_PENALTY_S = 1.0
"""One recent error weighs like one second of latency: it outranks any healthy endpoint's latency."""
LATENCY_EWMA_ALPHA = 0.2


def endpoint_label(url: str) -> str:
    """``scheme://host[:port]``: what may appear in metrics and logs (no path, query or user info)."""
    parts = urlsplit(url)
    host = parts.hostname or "unknown"
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port is not None else ""
    return f"{parts.scheme}://{host}{port}"


def stale_flags(heads: Sequence[int | None], max_lag_blocks: int) -> list[bool]:
    """Which endpoints lag the best known head by more than `max_lag_blocks`.

    An endpoint that did not answer is not judged stale: its error already ranks it down.
    """
    known = [head for head in heads if head is not None]
    if not known:
        return [False] * len(heads)
    best = max(known)
    return [head is not None and best - head > max_lag_blocks for head in heads]


@dataclass(slots=True)
class Health:
    """Ranking state of one endpoint. Times are passed in, so the maths needs no clock."""

    error_score: float = 0.0
    error_at_s: float = 0.0
    latency_ewma_s: float | None = None
    head: int | None = None
    stale: bool = False

    def errors(self, now_s: float) -> float:
        """Recent failures, each decaying with `ERROR_HALF_LIFE_S`."""
        return self.error_score * math.pow(0.5, max(0.0, now_s - self.error_at_s) / ERROR_HALF_LIFE_S)

    def record(self, now_s: float, latency_s: float, failed: bool) -> None:
        if failed:
            self.error_score = self.errors(now_s) + 1.0
            self.error_at_s = now_s
        elif self.latency_ewma_s is None:
            self.latency_ewma_s = latency_s
        else:
            self.latency_ewma_s += LATENCY_EWMA_ALPHA * (latency_s - self.latency_ewma_s)

    def score(self, now_s: float) -> float:
        """Lower is better. An endpoint never measured scores 0 so that it gets measured."""
        return (self.latency_ewma_s or 0.0) + ERROR_PENALTY_S * self.errors(now_s)


@dataclass(frozen=True, slots=True)
class CallStats:
    requests: int
    errors: dict[str, int]
    """Failed requests by kind: http_429, http_5xx, timeout, connection, rpc_error, ..."""
    latency_total_s: float
    latency_max_s: float

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def latency_mean_s(self) -> float:
        return self.latency_total_s / self.requests if self.requests else 0.0


@dataclass(frozen=True, slots=True)
class EndpointStats:
    endpoint: str
    head: int | None
    stale: bool
    score: float
    """Ranking score at snapshot time (lower is better; stale endpoints rank last whatever it is)."""
    methods: dict[str, CallStats]

    @property
    def total(self) -> CallStats:
        return merged(self.methods.values())


@dataclass(frozen=True, slots=True)
class PoolStats:
    endpoints: tuple[EndpointStats, ...]
    """In configured order."""

    def by_method(self) -> dict[str, CallStats]:
        """Every endpoint's accounting summed per method."""
        methods = {method for endpoint in self.endpoints for method in endpoint.methods}
        return {
            method: merged(e.methods[method] for e in self.endpoints if method in e.methods)
            for method in sorted(methods)
        }


@dataclass(slots=True)
class Tally:
    requests: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    latency_total_s: float = 0.0
    latency_max_s: float = 0.0

    def add(self, latency_s: float, error_kind: str | None) -> None:
        self.requests += 1
        self.latency_total_s += latency_s
        self.latency_max_s = max(self.latency_max_s, latency_s)
        if error_kind is not None:
            self.errors[error_kind] += 1

    def frozen(self) -> CallStats:
        return CallStats(self.requests, dict(self.errors), self.latency_total_s, self.latency_max_s)


def merged(parts: Iterable[CallStats]) -> CallStats:
    tally = Tally()
    for stats in parts:
        tally.requests += stats.requests
        tally.errors.update(stats.errors)
        tally.latency_total_s += stats.latency_total_s
        tally.latency_max_s = max(tally.latency_max_s, stats.latency_max_s)
    return tally.frozen()
