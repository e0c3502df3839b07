"""Progress lines for long work (log backfills): done/total, rate and ETA, at most once per interval."""

from __future__ import annotations

import time
from collections.abc import Callable

Report = Callable[[str], None]


class Progress:
    def __init__(self, label: str, report: Report, unit: str = "blocks", interval_s: float = 1.0) -> None:
        self.label = label
        self.report = report
        self.unit = unit
        self.interval_s = interval_s
        self.started_s = time.monotonic()
        self.last_s = 0.0
        self.extra = ""

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self.last_s < self.interval_s:
            return
        self.last_s = now
        elapsed_s = max(now - self.started_s, 1e-9)
        rate = done / elapsed_s
        eta_s = (total - done) / rate if rate else 0.0
        self.report(
            f"{self.label}: {done:,}/{total:,} {self.unit} ({rate:,.0f} {self.unit}/s, ETA {eta_s:.0f} s)"
            f"{self.extra}"
        )
