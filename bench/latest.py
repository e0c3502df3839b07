"""Gather the last results of every benchmark into bench/results/latest.json and one Markdown table.

`make bench` runs the benchmarks (each writes its own JSON), then this. Figures carry their units;
the machine and commit are those of the run. A missing result is reported as missing, not guessed.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
HEALTH_SIZES = (10_000, 100_000, 1_000_000)


def load(name: str) -> dict[str, Any] | None:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else None


def figures() -> list[tuple[str, str, str]]:
    """(benchmark, measure, value with unit)."""
    rows: list[tuple[str, str, str]] = []
    for size in HEALTH_SIZES:
        health = load(f"health_{size}.json")
        if health is None:
            rows.append(("screening", f"{size:,} positions per protocol", "not run"))
            continue
        for protocol, r in health["results"].items():
            per_block = r["screen_pass"]["median_ms"]
            rows.append(
                (
                    "screening",
                    f"{protocol}, {size:,} positions: full pass (screen + exact check of candidates)",
                    f"{per_block:.1f} ms median, p95 {r['screen_pass']['p95_ms']:.1f} ms, "
                    f"{size / per_block * 1000:,.0f} positions/s; "
                    f"exact-only pass {r['exact_pass']['median_ms']:.0f} ms",
                )
            )
    sync = load("sync.json")
    if sync is not None:
        b, w = sync["backfill_large"], sync["warm_restart"]
        rows += [
            (
                "start-up",
                f"cold backfill, {b['positions']:,} accounts",
                f"{b['seconds']:.2f} s, {b['events_per_s']:,.0f} events/s",
            ),
            (
                "start-up",
                f"warm restart, {w['positions']:,} positions: open + load",
                f"{w['open_and_load_s']:.2f} s",
            ),
            (
                "start-up",
                f"warm restart, {w['positions']:,} positions: to head, all read",
                f"{w['start_s']:.2f} s",
            ),
            (
                "start-up",
                f"RSS after the warm restart ({w['positions']:,} positions)",
                f"{w.get('rss_mb', 0):.0f} MB",
            ),
        ]
        for label in ("small", "large"):
            st = sync[f"steady_{label}"]
            rows.append(
                (
                    "rpc",
                    f"steady state, {st['positions']:,} positions",
                    f"{st['calls_per_block']:.1f} calls/block",
                )
            )
    compare = load("compare.json")
    if compare is not None:
        d, st = compare["detection"], compare["steady_rpc"]
        first = d.get("keeper_reaction_ms") or d.get("keeper_received_to_first_send_ms", {})
        strategy = compare["setup"].get("keeper_strategy", "inventory")
        mined = compare["liquidations_mined"]
        rows += [
            ("reaction", f"keeper ({strategy}), block in hand -> first tx to the RPC ({first.get('n', 0)})",
             f"p50 {first.get('median')} ms, p95 {first.get('p95')} ms, p99 {first.get('p99')} ms"),
            ("reaction", "first send, blocks after the shock block (keeper / poller)",
             f"{d['keeper_react_blocks']['median']} / {d['baseline_react_blocks']['median']} median"),
            ("vs poller", "JSON-RPC calls per block, steady (keeper / poller)",
             f"{st['keeper_jsonrpc_calls_per_block']} / {st['baseline_jsonrpc_calls_per_block']}"),
            ("vs poller", "Aave liquidations won (keeper / poller)",
             f"{mined.get('aave:keeper', 0)} / {mined.get('aave:baseline', 0)}"),
        ]  # fmt: skip
    return rows


def main() -> None:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    )
    machine = next((r["machine"] for r in (load("sync.json"), load("compare.json")) if r), {})
    rows = figures()
    latest = {
        "date": time.strftime("%Y-%m-%d"),
        "commit": commit.stdout.strip(),
        "machine": machine,
        "figures": [{"benchmark": b, "measure": m, "value": v} for b, m, v in rows],
    }
    (RESULTS / "latest.json").write_text(json.dumps(latest, indent=2) + "\n")
    where = f"{machine.get('cpu', '?')} ({machine.get('cores', '?')} cores)"
    print(f"Measured {latest['date']} on {where}, commit {latest['commit']}\n")
    print("| benchmark | measure | value |\n|---|---|---|")
    for benchmark, measure, value in rows:
        print(f"| {benchmark} | {measure} | {value} |")


if __name__ == "__main__":
    main()
