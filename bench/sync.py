"""Benchmark the position sync on real devnets: backfill rate, warm restart, RPC calls per block.

Not a test: it measures and reports. Run from the repo root:

    .venv/bin/python -m bench.sync [--borrowers 10000] [--small 1000] [--restart-positions 100000]

It starts its own devnets (`keeper devnet up --detach` on free ports) and stops them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from keeper.app import combined_filter
from keeper.chain.blocks import BlockStream, PollingHeads
from keeper.chain.rpc import HttpRpc
from keeper.config import load_config
from keeper.protocols.base import PositionKey
from keeper.protocols.price_feeds import PriceFeeds
from keeper.protocols.registry import build_adapter
from keeper.state.store import Store
from keeper.state.sync import PositionSync, block_ref, tracked_protocols
from tests.support.devnet import running_devnet

RESULTS = Path(__file__).parent / "results" / "sync.json"


class CountingRpc:
    """An `Rpc` that counts HTTP round trips and JSON-RPC calls (and calls inside Multicall3)."""

    def __init__(self, inner: HttpRpc) -> None:
        self.inner = inner
        self.round_trips = 0
        self.calls: Counter[str] = Counter()

    async def request(self, method: str, params: Sequence[Any] = ()) -> Any:
        self.round_trips += 1
        self.calls[method] += 1
        return await self.inner.request(method, params)

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        self.round_trips += 1
        self.calls.update(method for method, _ in calls)
        return await self.inner.batch(calls)

    def reset(self) -> None:
        self.round_trips = 0
        self.calls.clear()


def new_sync(config_path: Path, rpc: CountingRpc, store: Store) -> PositionSync:
    """As `keeper run` builds it: the ``[[price_feeds]]`` are read with every block too."""
    config = load_config(config_path)
    feeds = PriceFeeds(config.price_feeds)
    return PositionSync(rpc, store, tracked_protocols(config.protocols, build_adapter), price_feeds=feeds)


async def backfill(config_path: Path, url: str, workdir: Path) -> dict[str, Any]:
    async with HttpRpc(url) as http:
        rpc = CountingRpc(http)
        with Store.open(workdir / "backfill.sqlite") as store:
            sync = new_sync(config_path, rpc, store)
            started = time.perf_counter()
            head = await sync.start()
            elapsed_s = time.perf_counter() - started
            tracked = sum(store.count(t.name) for t in sync.protocols)
    return {
        "events": sync.events_backfilled,
        "positions": tracked,
        "blocks": head.number + 1,
        "seconds": elapsed_s,
        "events_per_s": sync.events_backfilled / elapsed_s,
        "round_trips": rpc.round_trips,
    }


async def steady_state(config_path: Path, url: str, workdir: Path, blocks: int = 20) -> dict[str, Any]:
    """Follow ``blocks`` new blocks (each with one borrower's repay, so logs and a touched user) and count."""
    async with HttpRpc(url) as http:
        rpc = CountingRpc(http)
        with Store.open(workdir / "steady.sqlite") as store:
            sync = new_sync(config_path, rpc, store)
            await sync.start()
            tracked = sum(store.count(t.name) for t in sync.protocols)
            stream = BlockStream(rpc, PollingHeads(rpc, 0.01), lambda: combined_filter(sync.protocols))
            await http.request("anvil_mine", [hex(blocks)])
            rpc.reset()
            count = 0
            started = time.perf_counter()
            async for _ in sync.follow(stream):
                count += 1
                if count == blocks:
                    break
            elapsed_s = time.perf_counter() - started
    per_block = {m: n / blocks for m, n in sorted(rpc.calls.items())}
    return {
        "positions": tracked,
        "blocks": blocks,
        "round_trips_per_block": rpc.round_trips / blocks,
        "calls_per_block": sum(rpc.calls.values()) / blocks,
        "calls_per_block_by_method": per_block,
        "ms_per_block": elapsed_s * 1000 / blocks,
    }


def synthetic_users(count: int) -> list[str]:
    return [to_checksum_address(keccak(i.to_bytes(8, "big"))[12:]) for i in range(count)]


async def warm_restart(config_path: Path, url: str, workdir: Path, positions: int) -> dict[str, Any]:
    """A store holding ``positions`` Aave accounts (synthetic, mostly without state), cursor at head."""
    path = workdir / "restart.sqlite"
    config = load_config(config_path)
    async with HttpRpc(url) as http:
        head = await block_ref(http, "latest")
        with Store.open(path) as store:
            pool = (await http.request("eth_call", [{"to": config.protocols[0].pool_addresses_provider,  # type: ignore[union-attr]
                     "data": "0x026b1d5f"}, "latest"]))  # fmt: skip  # getPool()
            pool_address = to_checksum_address("0x" + pool[-40:])
            keys = [PositionKey(pool_address, u) for u in synthetic_users(positions)]
            for protocol in config.protocols:
                store.apply_range(protocol.name, head, keys if protocol.kind == "aave_v3" else [])
        load_started = time.perf_counter()
        with Store.open(path) as store:
            loaded = len(store.positions(config.protocols[0].name))
            load_s = time.perf_counter() - load_started
            rpc = CountingRpc(http)
            sync = new_sync(config_path, rpc, store)
            started = time.perf_counter()
            await sync.start()
            start_s = time.perf_counter() - started
    return {
        "positions": loaded,
        "rss_mb": _rss_mb(),
        "open_and_load_s": load_s,
        "start_s": start_s,
        "start_round_trips": rpc.round_trips,
        "start_eth_calls": rpc.calls["eth_call"],
    }


def _rss_mb() -> float:
    """Resident memory now (VmRSS), in MB: the warm-restarted keeper state is what is held."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    models = [line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")]
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    )
    return {
        "cpu": models[0] if models else platform.processor(),
        "cores": sum(line.startswith("processor") for line in cpuinfo),
        "python": platform.python_version(),
        "commit": commit.stdout.strip(),
    }


async def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--borrowers", type=int, default=10_000, help="large devnet, split over both protocols"
    )
    parser.add_argument("--small", type=int, default=1_000, help="small devnet, split over both protocols")
    parser.add_argument("--restart-positions", type=int, default=100_000)
    args = parser.parse_args(argv)
    results: dict[str, Any] = {"machine": machine(), "date": time.strftime("%Y-%m-%d")}
    with tempfile.TemporaryDirectory(prefix="keeper-bench-") as scratch:
        workdir = Path(scratch)
        for label, total in (("small", args.small), ("large", args.borrowers)):
            (workdir / label).mkdir()
            started = time.perf_counter()
            with running_devnet(workdir / f"{label}.toml", total // 2, total // 2) as devnet:
                print(
                    f"  devnet {total} borrowers ready in {time.perf_counter() - started:.1f} s",
                    file=sys.stderr,
                )
                config_path, url = devnet.config_path, devnet.summary["rpc_url"]
                results[f"backfill_{label}"] = await backfill(config_path, url, workdir / label)
                results[f"steady_{label}"] = await steady_state(config_path, url, workdir / label)
                if label == "large":
                    results["warm_restart"] = await warm_restart(
                        config_path, url, workdir, args.restart_positions
                    )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    print(table(results))


def table(r: dict[str, Any]) -> str:
    lines = ["| measure | value |", "|---|---|"]
    for label in ("small", "large"):
        b, s = r[f"backfill_{label}"], r[f"steady_{label}"]
        lines += [
            f"| backfill, {b['positions']:,} accounts, {b['events']:,} events | {b['seconds']:.2f} s, "
            f"{b['events_per_s']:,.0f} events/s, {b['round_trips']} round trips |",
            f"| steady state, {s['positions']:,} positions | {s['calls_per_block']:.1f} RPC calls and "
            f"{s['round_trips_per_block']:.1f} round trips per block, {s['ms_per_block']:.1f} ms per block |",
        ]
    w = r["warm_restart"]
    lines.append(
        f"| warm restart, {w['positions']:,} positions in the store | "
        f"open + load {w['open_and_load_s']:.2f} s; "
        f"start (cursor check + state read of every position) {w['start_s']:.2f} s, "
        f"{w['start_round_trips']} round trips; RSS after it {w['rss_mb']:.0f} MB |"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    asyncio.run(main())
