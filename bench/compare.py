"""The keeper against the baseline poller (`bench/baseline/poller.py`), on one devnet, in one run.

    .venv/bin/python -m bench.compare [--borrowers 10000] [--shocks 6] [--gap-blocks 4]

Not a test: it measures and reports. It starts a devnet (`--block-time 1`, borrowers split evenly
between Aave and Morpho), the keeper (live, Anvil key #1) and the baseline (key #2, the devnet's
funded and approved competitor) side by side, then moves prices in a staircase (`--path`, default
WETH -3 %, WBTC -3 %, repeated) one shock every `--gap-blocks` blocks. Both bid the same fees
(tip 1 gwei; Anvil orders equal tips first come, first served), so whoever broadcasts first wins.

Each system's HTTP JSON-RPC goes through its own counting proxy (JSON-RPC calls, HTTP round trips,
calls inside Multicall3 `aggregate3`); the keeper's WebSocket (newHeads only) goes direct. A sampler
polls the node directly every 20 ms and records when each block became visible: the common clock for
"block visible -> transaction broadcast" of both. Prints a Markdown table and writes
`bench/results/compare.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import requests
from aiohttp import web

from keeper.devnet.feeds import set_price
from keeper.devnet.rpc import Rpc
from keeper.errors import DevnetError, UsageError
from keeper.protocols.aave_v3.events import liquidation as aave_liquidation
from keeper.protocols.morpho_blue.events import liquidation as morpho_liquidation
from tests.support.config import variant
from tests.support.devnet import Devnet, running_devnet
from tests.support.keeper import KEEPER_KEY, Event, KeeperProcess, LoggedProcess, named, run_keeper
from tests.support.ports import free_port

RESULTS = Path(__file__).parent / "results" / "compare.json"
BASELINE_KEY = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"  # Anvil dev #2
AGGREGATE3 = "0x82ad56cb"


class CountingProxy:
    """Forwards HTTP JSON-RPC to the node and counts what passes: round trips, calls by method, and
    the calls inside each Multicall3 aggregate3 eth_call."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.round_trips = 0
        self.calls: Counter[str] = Counter()
        self.inner_calls = 0

    def snapshot(self) -> dict[str, Any]:
        return {"round_trips": self.round_trips, "inner_calls": self.inner_calls, "calls": dict(self.calls)}

    async def serve(self) -> None:
        self.session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_post("/", self.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.count(json.loads(body))
        async with self.session.post(
            self.upstream, data=body, headers={"content-type": "application/json"}
        ) as r:
            return web.Response(body=await r.read(), status=r.status, content_type="application/json")

    def count(self, payload: Any) -> None:
        self.round_trips += 1
        for call in payload if isinstance(payload, list) else [payload]:
            self.calls[call["method"]] += 1
            if call["method"] == "eth_call":
                data = call["params"][0].get("data") or call["params"][0].get("input") or ""
                if data.startswith(AGGREGATE3):
                    self.inner_calls += int(data[10 + 64 : 10 + 128], 16)  # array length after its offset


class Sampler:
    """Polls the node directly; on each new block records when it appeared and every counter."""

    def __init__(self, rpc: Rpc, keeper: CountingProxy, baseline: CountingProxy, metrics_url: str) -> None:
        self.rpc, self.keeper, self.baseline, self.metrics_url = rpc, keeper, baseline, metrics_url
        self.samples: dict[int, dict[str, Any]] = {}
        self.running = True
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        """A block the poll missed (two blocks between polls, on a loaded machine) gets the sample of
        the poll that saw its successor: its time and counters are then upper bounds."""
        last = 0
        while self.running:
            try:
                head = self.rpc.block_number()
                if head > last:
                    sample = {
                        "seen": time.time(),
                        "keeper": self.keeper.snapshot(),
                        "baseline": self.baseline.snapshot(),
                        "keeper_metrics": keeper_rpc_requests(self.metrics_url),
                    }
                    for number in range(last + 1 if last else head, head + 1):
                        self.samples[number] = sample
                    last = head
            except (DevnetError, requests.RequestException) as exc:  # a slow moment: poll again
                print(f"sampler: {exc}", file=sys.stderr)
            time.sleep(0.02)

    def wait_block(self, number: int, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while number not in self.samples:
            if time.monotonic() > deadline:
                raise RuntimeError(f"block {number} never came")
            time.sleep(0.02)

    def head(self) -> int:
        return max(self.samples)


def keeper_rpc_requests(url: str) -> int:
    """Sum of keeper_rpc_requests_total (a JSON-RPC batch counts one) from the keeper's /metrics."""
    try:
        text = requests.get(url, timeout=2).text
    except requests.RequestException:
        return -1
    return int(
        sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("keeper_rpc_requests_total{")
        )
    )


def iso_seconds(text: str) -> float:
    return datetime.datetime.fromisoformat(text).timestamp()


def run(args: argparse.Namespace) -> dict[str, Any]:
    directory = Path(tempfile.mkdtemp(prefix="bench-compare-"))
    aave, morpho = args.borrowers - args.borrowers // 2, args.borrowers // 2
    started = time.monotonic()
    with running_devnet(directory / "devnet.toml", aave, morpho, "--block-time", "1") as devnet:
        seed_s = time.monotonic() - started
        print(
            f"devnet ready on {devnet.port} in {seed_s:.1f} s ({aave} Aave + {morpho} Morpho borrowers)",
            file=sys.stderr,
        )
        return {"seed_s": seed_s, "aave": aave, "morpho": morpho} | measure(args, devnet, directory)


def measure(args: argparse.Namespace, devnet: Devnet, directory: Path) -> dict[str, Any]:
    """Both bots on ``devnet``, the steady blocks, then the shocks; stops both, whatever happens."""
    summary, metrics_port = devnet.summary, free_port()
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    proxies = CountingProxy(summary["rpc_url"]), CountingProxy(summary["rpc_url"])
    for proxy in proxies:
        asyncio.run_coroutine_threadsafe(proxy.serve(), loop).result()
    keeper_proxy, baseline_proxy = proxies
    changes = {
        "chain": {"rpc_urls": [summary["ws_url"], f"http://127.0.0.1:{keeper_proxy.port}"]},
        "execution": {"mode": "live"},
        "store": {"path": str(directory / "store.sqlite")},
        "metrics": {"listen": f"127.0.0.1:{metrics_port}"},
        # a benchmark spends what its shocks cost: the spend guard's caps (hour: 1 ETH of gas) are off
        "guard": {
            "max_gas_per_hour_wei": 0,
            "max_gas_per_day_wei": 0,
            "max_loss_per_hour_wei": 0,
            "max_loss_per_day_wei": 0,
            "max_reverts": 0,
        },
    }
    executor = None
    if args.strategy == "flash":
        executor = deploy_executor(devnet)
        changes["execution"] |= {
            "strategy": "flash",
            "executor": executor,
            "simulate_flash": args.simulate_flash,
        }
    config = variant(devnet, directory / "keeper.toml", changes)
    keeper = baseline = None
    try:
        keeper = KeeperProcess(config)
        keeper.wait_for(named("block_handled"), 300)
        poller = [
            sys.executable,
            "-m",
            "bench.baseline.poller",
            "--rpc",
            f"http://127.0.0.1:{baseline_proxy.port}",
        ]
        poller += ["--pool", summary["aave"]["pool"], "--data-provider", summary["aave"]["data_provider"]]
        baseline = LoggedProcess(poller, dict(os.environ, BASELINE_PRIVATE_KEY=BASELINE_KEY), "stdout")
        baseline.wait_for(named("block_done"), 300)
        rpc = Rpc(summary["rpc_url"])
        sampler = Sampler(rpc, keeper_proxy, baseline_proxy, f"http://127.0.0.1:{metrics_port}/metrics")
        sampler.wait_block(rpc.block_number() + 1)
        steady_from = sampler.head() + 1
        sampler.wait_block(steady_from + args.steady_blocks)
        shocks = []
        path = [step.split(":") for step in args.path.split(",")]
        for i in range(args.shocks):
            symbol, percent = path[i % len(path)]
            try:
                block, lagged = set_price(rpc, symbol, move=Decimal(percent)).block, False
            except UsageError as exc:
                # the feed moved, but an arbitrage swap reverted: transactions still pending from the
                # last shock (Anvil mines first come, first served) moved the pool past its target
                # first; the next shock's arbitrage brings it back
                block, lagged = rpc.block_number(), True
                print(f"shock {i + 1}: the pools lag this one ({exc})", file=sys.stderr)
            shocks.append({"symbol": symbol, "percent": percent, "block": block, "pool_lagged": lagged})
            print(f"shock {i + 1}: {symbol} {percent} % in block {block}", file=sys.stderr)
            sampler.wait_block(block + args.gap_blocks)
        end = shocks[-1]["block"] + args.gap_blocks + args.settle_blocks
        sampler.wait_block(end)
        sampler.running = False
        for proc, sig in ((keeper, signal.SIGTERM), (baseline, signal.SIGTERM)):
            proc.stop(sig)
        chain = chain_outcome(rpc, summary, steady_from, rpc.block_number(), executor)
    finally:
        for proc, sig in ((keeper, signal.SIGTERM), (baseline, signal.SIGTERM)):
            if proc is not None and proc.proc.poll() is None:
                proc.stop(sig)
    return {
        "summary": summary,
        "shocks": shocks,
        "steady": (steady_from, steady_from + args.steady_blocks),
        "end": end,
        "samples": sampler.samples,
        "keeper": keeper.events,
        "baseline": baseline.events,
        "chain": chain,
    }


def deploy_executor(devnet: Devnet) -> str:
    """The keeper's `LiquidationExecutor`, owned by the devnet keeper account (Anvil key #1)."""
    env = dict(os.environ, KEEPER_PRIVATE_KEY=KEEPER_KEY)
    deployed = run_keeper("executor", "deploy", "--config", str(devnet.config_path), env=env)
    if deployed.returncode != 0:
        raise SystemExit(f"keeper executor deploy failed: {deployed.stderr.strip()[-300:]}")
    return str(json.loads(deployed.stdout)["executor"])


def chain_outcome(
    rpc: Rpc, summary: dict[str, Any], first: int, last: int, executor: str | None = None
) -> dict[str, Any]:
    """Every liquidation (anyone's) and every transaction of the two liquidators in the range; in
    flash mode the protocols name the keeper's executor as the liquidator."""
    addresses = [summary["aave"]["pool"], summary["morpho"]["address"]]
    logs = rpc.call("eth_getLogs", [{"address": addresses, "fromBlock": hex(first), "toBlock": hex(last)}])
    found = []
    for log in logs:
        protocol = "aave" if log["address"].lower() == addresses[0].lower() else "morpho"
        event = aave_liquidation(log) if protocol == "aave" else morpho_liquidation(log)
        if event is not None:
            found.append({"protocol": protocol, "user": event.get("user") or event.get("borrower"),
                          "liquidator": event["liquidator"], "block": int(log["blockNumber"], 16),
                          "index": int(log["logIndex"], 16)})  # fmt: skip
    senders = {summary["keeper_address"].lower(): "keeper", summary["competitor_address"].lower(): "baseline"}
    txs: dict[str, Counter[str]] = {"keeper": Counter(), "baseline": Counter()}
    for number in range(first, last + 1):
        for receipt in rpc.call("eth_getBlockReceipts", [hex(number)]) or []:
            who = senders.get(receipt["from"].lower())
            if who is None:
                continue
            self_transfer = (receipt.get("to") or "").lower() == receipt["from"].lower()
            kind = "cancel" if self_transfer else "liquidation"
            txs[who][f"{kind}_{'ok' if int(receipt['status'], 16) == 1 else 'reverted'}"] += 1
    names = {summary["keeper_address"].lower(): "keeper", summary["competitor_address"].lower(): "baseline"}
    if executor is not None:
        names[executor.lower()] = "keeper"
    for entry in found:
        entry["liquidator"] = names.get(entry["liquidator"].lower(), entry["liquidator"])
    return {"liquidations": found, "transactions": {k: dict(v) for k, v in txs.items()}}


def window_rpc(samples: dict[int, dict[str, Any]], first: int, last: int) -> dict[str, Any]:
    """Calls made while blocks first..last-1 were the head, per block."""
    a, b = samples[first], samples[last]
    blocks = last - first

    def calls(who: str, sample: dict[str, Any]) -> int:
        return sum(sample[who]["calls"].values())

    def delta(who: str, key: str) -> float:
        return round((b[who][key] - a[who][key]) / blocks, 2)

    by_method = Counter(b["baseline"]["calls"]) - Counter(a["baseline"]["calls"])
    keeper_methods = Counter(b["keeper"]["calls"]) - Counter(a["keeper"]["calls"])
    return {
        "blocks": blocks,
        "keeper_jsonrpc_calls_per_block": round((calls("keeper", b) - calls("keeper", a)) / blocks, 2),
        "keeper_http_round_trips_per_block": delta("keeper", "round_trips"),
        "keeper_multicall_inner_calls_per_block": delta("keeper", "inner_calls"),
        "keeper_metrics_requests_per_block": round((b["keeper_metrics"] - a["keeper_metrics"]) / blocks, 2),
        "keeper_calls_per_block_by_method": {
            m: round(n / blocks, 2) for m, n in sorted(keeper_methods.items())
        },
        "baseline_jsonrpc_calls_per_block": round((calls("baseline", b) - calls("baseline", a)) / blocks, 2),
        "baseline_multicall_inner_calls_per_block": delta("baseline", "inner_calls"),
        "baseline_calls_per_block_by_method": {m: round(n / blocks, 2) for m, n in sorted(by_method.items())},
    }


def in_window(events: list[Event], name: str, first: int, last: int) -> list[Event]:
    return [e for e in events if e.get("event") == name and first <= e.get("block", -1) < last]


def analyse_shock(run: dict[str, Any], index: int, last: int) -> dict[str, Any]:
    shock = run["shocks"][index]
    block = shock["block"]
    seen = run["samples"][block]["seen"]
    keeper, baseline = run["keeper"], run["baseline"]
    handled = next((e for e in keeper if e.get("event") == "block_handled" and e["block"] == block), {})
    k_sent = in_window(keeper, "liquidation_sent", block, last)
    b_detected = in_window(baseline, "detected", block, last)
    b_sent = in_window(baseline, "sent", block, last)
    k_first = min((e["block"] for e in k_sent), default=None)
    b_first = min((e["block"] for e in b_sent), default=None)
    b_first_sent = [e for e in b_sent if e["block"] == b_first]
    k_times = [iso_seconds(e["timestamp"]) for e in k_sent if e["block"] == k_first]
    mined = [x for x in run["chain"]["liquidations"] if block < x["block"] <= last]
    first_by_user: dict[tuple[str, str], str] = {}
    for x in sorted(mined, key=lambda x: (x["block"], x["index"])):
        first_by_user.setdefault((x["protocol"], x["user"]), x["liquidator"])
    k_mined = [x["block"] - block for x in mined if x["liquidator"] == "keeper"]
    b_mined = [
        e["block"] - block for e in baseline if e.get("event") == "mined" and block < e["block"] <= last
    ]
    return {
        "symbol": shock["symbol"],
        "percent": shock["percent"],
        "block": block,
        "keeper_opportunities": handled.get("opportunities"),
        "keeper_react_blocks": None if k_first is None else k_first - block,
        "keeper_sent": len(k_sent),
        "keeper_sent_aave": sum(e["protocol"] == "aave" for e in k_sent),
        "keeper_track_ms": handled.get("track_ms"),
        "keeper_screen_plus_execute_ms": round(handled.get("screen_ms", 0) + handled.get("execute_ms", 0), 1),
        "keeper_received_to_first_send_ms": round(handled["screen_ms"] + handled["first_send_ms"], 1)
        if handled.get("first_send_ms") and k_sent
        else None,
        "keeper_reaction_ms": handled.get("reaction_ms") if k_sent else None,
        "keeper_simulate_ms": handled.get("simulate_ms"),
        "keeper_sign_and_send_ms": handled.get("sign_and_send_ms"),
        "baseline_detected_users": len({e["user"] for e in b_detected}),
        "baseline_detect_blocks": min((e["block"] for e in b_detected), default=block - 1) - block
        if b_detected
        else None,
        "baseline_react_blocks": None if b_first is None else b_first - block,
        "baseline_sent": len(b_sent),
        "baseline_seen_to_first_send_ms": min((e["ms_since_block_seen"] for e in b_first_sent), default=None),
        "baseline_seen_to_last_send_ms": max((e["ms_since_block_seen"] for e in b_first_sent), default=None),
        "keeper_visible_to_sent_logged_ms": round((min(k_times) - seen) * 1000, 1) if k_times else None,
        "baseline_visible_to_first_send_ms": round((min(e["time"] for e in b_first_sent) - seen) * 1000, 1)
        if b_first_sent
        else None,
        "baseline_visible_to_last_send_ms": round((max(e["time"] for e in b_first_sent) - seen) * 1000, 1)
        if b_first_sent
        else None,
        "keeper_included_blocks_first_last": [min(k_mined), max(k_mined)] if k_mined else None,
        "baseline_included_blocks_first_last": [min(b_mined), max(b_mined)] if b_mined else None,
        "liquidations_mined": dict(Counter(f"{x['protocol']}:{x['liquidator']}" for x in mined)),
        "first_liquidation_of_user": dict(Counter(f"{p}:{who}" for (p, _), who in first_by_user.items())),
        "rpc": window_rpc(run["samples"], block, last),
        "keeper_block_handled": {
            k: v for k, v in handled.items() if k.endswith("_ms") or k == "opportunities"
        },
    }


def summarise(values: list[float | None]) -> dict[str, float | None]:
    xs = sorted(v for v in values if v is not None)
    if not xs:
        return {"n": 0, "median": None, "p95": None, "p99": None, "max": None}

    def percentile(q: float) -> float:
        return round(xs[min(len(xs) - 1, max(0, math.ceil(q * len(xs)) - 1))], 1)

    return {
        "n": len(xs),
        "median": round(statistics.median(xs), 1),
        "p95": percentile(0.95),
        "p99": percentile(0.99),
        "max": round(xs[-1], 1),
    }


def machine() -> dict[str, Any]:
    cpu = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    )
    dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, check=False)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "commit": commit.stdout.strip(),
        "worktree_dirty": bool(dirty.stdout.strip()),
    }


def analyse(run: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    blocks = [s["block"] for s in run["shocks"]] + [run["end"]]
    shocks = [analyse_shock(run, i, blocks[i + 1]) for i in range(len(run["shocks"]))]
    all_mined = [x for x in run["chain"]["liquidations"] if x["block"] > run["shocks"][0]["block"]]
    rpc_shocks = window_rpc(run["samples"], run["shocks"][0]["block"], run["end"])
    skipped = Counter(
        e["reason"].split(":")[0] for e in run["keeper"] if e.get("event") == "opportunity_skipped"
    )
    return {
        "machine": machine(),
        "date": datetime.date.today().isoformat(),
        "setup": {
            "aave_borrowers": run["aave"],
            "morpho_borrowers": run["morpho"],
            "devnet_ready_s": round(run["seed_s"], 1),
            "block_time_s": 1,
            "shocks": len(shocks),
            "shocks_with_pools_lagging": sum(bool(s.get("pool_lagged")) for s in run["shocks"]),
            "gap_blocks": args.gap_blocks,
            "path": args.path,
            "fees": "both: tip 1 gwei, max fee 2 x ceil(1.125 x base fee) + tip",
            "baseline_poll_interval_s": 0.1,
            "keeper_strategy": args.strategy,
            "keeper_simulate_flash": args.simulate_flash,
        },
        "units": {
            "*_react_blocks": "processed block when sending - shock block (0 = on the shock block)",
            "*_included_blocks_first_last": "blocks from the shock block to inclusion, first and last tx",
            "*_ms": "milliseconds",
            "*_per_block": "JSON-RPC calls per block (a JSON-RPC batch element counts one)",
            "keeper_metrics_requests_per_block": "keeper_rpc_requests_total delta / block (a batch counts 1)",
        },
        "per_shock": shocks,
        "steady_rpc": window_rpc(run["samples"], *run["steady"]),
        "shock_rpc": rpc_shocks,
        "detection": {
            "keeper_react_blocks": summarise([s["keeper_react_blocks"] for s in shocks]),
            "baseline_react_blocks": summarise([s["baseline_react_blocks"] for s in shocks]),
            "keeper_screen_plus_execute_ms": summarise([s["keeper_screen_plus_execute_ms"] for s in shocks]),
            "keeper_received_to_first_send_ms": summarise(
                [s["keeper_received_to_first_send_ms"] for s in shocks]
            ),
            "keeper_reaction_ms": summarise([s["keeper_reaction_ms"] for s in shocks]),
            "baseline_seen_to_last_send_ms": summarise([s["baseline_seen_to_last_send_ms"] for s in shocks]),
            "keeper_visible_to_sent_logged_ms": summarise(
                [s["keeper_visible_to_sent_logged_ms"] for s in shocks]
            ),
            "baseline_visible_to_first_send_ms": summarise(
                [s["baseline_visible_to_first_send_ms"] for s in shocks]
            ),
            "baseline_visible_to_last_send_ms": summarise(
                [s["baseline_visible_to_last_send_ms"] for s in shocks]
            ),
        },
        "liquidations_mined": dict(Counter(f"{x['protocol']}:{x['liquidator']}" for x in all_mined)),
        "first_liquidation_of_user_per_shock": dict(
            sum((Counter(s["first_liquidation_of_user"]) for s in shocks), Counter())
        ),
        "transactions": run["chain"]["transactions"],
        "keeper_skipped_by_reason": dict(skipped),
        "baseline_skipped": sum(e.get("event") == "skipped" for e in run["baseline"]),
        "baseline_failed_blocks": [e for e in run["baseline"] if e.get("event") == "block_failed"],
    }


def mm(summary: dict[str, float | None]) -> str:
    return f"{summary['median']} / {summary['max']}"


def ok_reverted(tx: dict[str, int]) -> str:
    return f"{tx.get('liquidation_ok', 0)} / {tx.get('liquidation_reverted', 0)}"


def calls_cell(rpc: dict[str, Any]) -> str:
    return (
        f"{rpc['keeper_jsonrpc_calls_per_block']} ({rpc['keeper_http_round_trips_per_block']} round trips;"
        f" /metrics {rpc['keeper_metrics_requests_per_block']})"
    )


def pct(summary: dict[str, Any]) -> str:
    return f"{summary['median']} / {summary['p95']} / {summary['p99']} (n={summary['n']})"


def table(result: dict[str, Any]) -> str:
    m, setup = result["machine"], result["setup"]
    lines = [
        f"{result['date']}, {m['cpu']} ({m['cores']} cores), Python {m['python']}, commit {m['commit']}"
        f"{' (dirty)' if m['worktree_dirty'] else ''}; {setup['aave_borrowers']} Aave + "
        f"{setup['morpho_borrowers']} Morpho borrowers, {setup['shocks']} shocks ({setup['path']}); "
        f"keeper strategy {setup['keeper_strategy']}"
        f"{' (simulating each liquidation)' if setup['keeper_simulate_flash'] else ''}.",
        "",
        "| shock | block | keeper opps | baseline HF<1 | react blocks K / B | K screen+exec ms"
        " | B seen->last send ms | visible->send ms K / B first / B last | Aave first liquidator K / B"
        " | Morpho K |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, s in enumerate(result["per_shock"], 1):
        first = s["first_liquidation_of_user"]
        lines.append(
            f"| {i} {s['symbol']} {s['percent']} % | {s['block']} | {s['keeper_opportunities']} "
            f"| {s['baseline_detected_users']} | {s['keeper_react_blocks']} / {s['baseline_react_blocks']} "
            f"| {s['keeper_screen_plus_execute_ms']} | {s['baseline_seen_to_last_send_ms']} "
            f"| {s['keeper_visible_to_sent_logged_ms']} / {s['baseline_visible_to_first_send_ms']} / "
            f"{s['baseline_visible_to_last_send_ms']} | {first.get('aave:keeper', 0)} / "
            f"{first.get('aave:baseline', 0)} | {s['keeper_included_blocks_first_last']} / "
            f"{s['baseline_included_blocks_first_last']} | {first.get('morpho:keeper', 0)} |"
        )
    st, sh, d = result["steady_rpc"], result["shock_rpc"], result["detection"]
    mined, tx, first = (
        result["liquidations_mined"],
        result["transactions"],
        result["first_liquidation_of_user_per_shock"],
    )
    k_tx, b_tx = tx["keeper"], tx["baseline"]
    k_skips = result["keeper_skipped_by_reason"]
    rows = [
        (
            f"JSON-RPC calls / block, steady ({st['blocks']} blocks)",
            calls_cell(st),
            st["baseline_jsonrpc_calls_per_block"],
        ),
        (
            "calls inside Multicall3 / block, steady",
            st["keeper_multicall_inner_calls_per_block"],
            st["baseline_multicall_inner_calls_per_block"],
        ),
        (
            f"JSON-RPC calls / block, shock period ({sh['blocks']} blocks)",
            calls_cell(sh),
            sh["baseline_jsonrpc_calls_per_block"],
        ),
        (
            "first send, blocks after the shock block, median / max",
            mm(d["keeper_react_blocks"]),
            mm(d["baseline_react_blocks"]),
        ),
        (
            "own timer, block in hand -> all sent, ms median / max",
            mm(d["keeper_screen_plus_execute_ms"]) + " (screen+execute)",
            f"{mm(d['baseline_seen_to_last_send_ms'])} (seen -> last send)",
        ),
        (
            "keeper: block in hand -> first signed tx handed to the RPC, ms p50 / p95 / p99",
            pct(d["keeper_reaction_ms"]),
            "",
        ),
        (
            "common clock, block visible -> first send, ms median / max",
            mm(d["keeper_visible_to_sent_logged_ms"]),
            mm(d["baseline_visible_to_first_send_ms"]),
        ),
        ("Aave liquidations mined (events)", mined.get("aave:keeper", 0), mined.get("aave:baseline", 0)),
        (
            "Aave positions liquidated first after a shock",
            first.get("aave:keeper", 0),
            first.get("aave:baseline", 0),
        ),
        ("Morpho liquidations mined", mined.get("morpho:keeper", 0), "n/a (Aave only)"),
        ("liquidation txs mined ok / reverted", ok_reverted(k_tx), ok_reverted(b_tx)),
        ("cancels (empty self-transfers)", k_tx.get("cancel_ok", 0), b_tx.get("cancel_ok", 0)),
        (
            "skipped before sending",
            f"{sum(k_skips.values())} {k_skips}",
            f"{result['baseline_skipped']} (estimateGas reverted); "
            f"{len(result['baseline_failed_blocks'])} blocks failed",
        ),
    ]
    lines += ["", "| measure | keeper | baseline |", "|---|---|---|"]
    lines += [f"| {label} | {k} | {b} |" for label, k, b in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--borrowers", type=int, default=10_000, help="split evenly, Aave and Morpho")
    parser.add_argument("--shocks", type=int, default=6)
    parser.add_argument("--gap-blocks", type=int, default=4)
    parser.add_argument("--steady-blocks", type=int, default=10)
    parser.add_argument("--settle-blocks", type=int, default=4)
    parser.add_argument("--path", default="WETH:-3,WBTC:-3", help="ASSET:PERCENT,... repeated")
    parser.add_argument(
        "--strategy",
        choices=("flash", "inventory"),
        default="flash",
        help="the keeper's: flash (its own executor, deployed first; the default) or inventory",
    )
    parser.add_argument(
        "--simulate-flash",
        action="store_true",
        help="flash: eth_estimateGas each liquidation before sending (execution.simulate_flash)",
    )
    args = parser.parse_args()
    raw = run(args)
    events = RESULTS.parent / "compare-keeper.jsonl"
    events.parent.mkdir(exist_ok=True)
    events.write_text("".join(json.dumps(e) + "\n" for e in raw["keeper"]))
    result = analyse(raw, args)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))


if __name__ == "__main__":
    main()
