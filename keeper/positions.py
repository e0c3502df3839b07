"""`keeper positions`: discover every position from protocol events, compute its health locally at head.

I/O (`collect`) fetches: one batched global read per protocol, logs from ``start_block`` to head
in adaptive ranges, one batched read of every discovered position, all pinned to one block.
Rendering (`render_table`, `render_json`) is pure.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from keeper.chain.logs import get_logs
from keeper.chain.pool import RpcPool, http_urls
from keeper.chain.rpc import Rpc
from keeper.config import Config
from keeper.errors import UsageError
from keeper.math.uint import UINT256_MAX
from keeper.protocols.base import WAD, BlockRef, LendingAdapter, PositionHealth
from keeper.protocols.registry import build_adapters

Progress = Callable[[str], None]


@dataclass(frozen=True)
class PositionsReport:
    block: BlockRef
    positions: list[tuple[str, PositionHealth]]
    """(protocol name from the config, health), sorted by health factor, lowest first."""


async def head_block(rpc: Rpc) -> BlockRef:
    block = await rpc.request("eth_getBlockByNumber", ["latest", False])
    return BlockRef(int(block["number"], 16), block["hash"], int(block["timestamp"], 16))


async def check_chain_id(rpc: Rpc, expected: int) -> None:
    actual = int(await rpc.request("eth_chainId"), 16)
    if actual != expected:
        raise UsageError(f"chain.chain_id is {expected} but the RPC endpoint serves chain {actual}")


class LogProgress:
    """Reports blocks scanned with rate and ETA, at most every ``interval_s``, plus a final line."""

    def __init__(self, label: str, report: Progress, interval_s: float = 1.0) -> None:
        self.label = label
        self.report = report
        self.interval_s = interval_s
        self.started_s = time.monotonic()
        self.last_s = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self.last_s < self.interval_s:
            return
        self.last_s = now
        elapsed = max(now - self.started_s, 1e-9)
        rate = done / elapsed
        eta = (total - done) / rate if rate else 0.0
        self.report(f"{self.label}: {done}/{total} blocks ({rate:,.0f} blocks/s, ETA {eta:.0f} s)")


async def sync_adapter(
    rpc: Rpc, adapter: LendingAdapter, start_block: int, block: BlockRef, progress: Progress
) -> int:
    """Discover positions from ``start_block`` to ``block`` and read them all at ``block``."""
    await adapter.refresh(rpc, block, [])  # global state names the contracts to watch
    log_filter = adapter.log_filter()
    logs = await get_logs(
        rpc,
        log_filter.addresses,
        log_filter.topics,
        start_block,
        block.number,
        on_progress=LogProgress(adapter.name, progress),
    )
    keys = adapter.apply_logs(logs)
    await adapter.refresh(rpc, block, keys)
    return len(logs)


async def collect(config: Config, progress: Progress) -> PositionsReport:
    async with RpcPool(http_urls(config.chain.rpc_urls)) as rpc:
        await check_chain_id(rpc, config.chain.chain_id)
        block = await head_block(rpc)
        positions: list[tuple[str, PositionHealth]] = []
        for protocol, adapter in build_adapters(config):
            if protocol.start_block > block.number:
                raise UsageError(
                    f"protocols.{protocol.name}.start_block {protocol.start_block} is after head"
                )
            events = await sync_adapter(rpc, adapter, protocol.start_block, block, progress)
            healths = adapter.health(block.timestamp)
            progress(f"{protocol.name}: {events} events, {len(healths)} positions with debt")
            positions += [(protocol.name, h) for h in healths]
    positions.sort(key=lambda item: (item[1].health_factor_wad, item[0], item[1].market, item[1].user))
    return PositionsReport(block, positions)


def below(report: PositionsReport, health_factor: float | None) -> list[tuple[str, PositionHealth]]:
    if health_factor is None:
        return report.positions
    limit = int(health_factor * WAD)
    return [(name, h) for name, h in report.positions if h.health_factor_wad < limit]


def render_json(report: PositionsReport, rows: Sequence[tuple[str, PositionHealth]]) -> str:
    """Big integers as decimal strings: JSON numbers lose precision past 2**53."""
    out: dict[str, Any] = {
        "block": report.block.number,
        "positions": [
            {
                "protocol": h.protocol,
                "name": name,
                "market": h.market,
                "user": h.user,
                "health_factor_wad": str(h.health_factor_wad),
                "collateral_base": str(h.collateral_base),
                "debt_base": str(h.debt_base),
                "liquidatable": h.liquidatable,
            }
            for name, h in rows
        ],
    }
    return json.dumps(out, indent=None)


def _short(hex_id: str) -> str:
    return hex_id if len(hex_id) <= 14 else f"{hex_id[:8]}…{hex_id[-4:]}"


def _health(value: int) -> str:
    return "∞" if value == UINT256_MAX else f"{value / WAD:.4f}"


def render_table(report: PositionsReport, rows: Sequence[tuple[str, PositionHealth]]) -> str:
    """Aave amounts are in the oracle's base currency; Morpho amounts in the market's token units."""
    header = ("protocol", "market", "user", "health", "collateral", "debt", "drop to liq.")
    lines = [header]
    for name, h in rows:
        lines.append(
            (
                name,
                _short(h.market),
                h.user,
                _health(h.health_factor_wad),
                f"{h.collateral_base:,}",
                f"{h.debt_base:,}",
                "liquidatable" if h.liquidatable else f"{h.price_drop_to_liquidation:.1%}",
            )
        )
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    text = [
        "  ".join(
            cell.ljust(w) if i < 3 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in lines
    ]
    liquidatable = sum(h.liquidatable for _, h in rows)
    text.append(f"{len(rows)} positions at block {report.block.number}, {liquidatable} liquidatable")
    return "\n".join(text)


def stderr_progress(message: str) -> None:
    print(f"[positions] {message}", file=sys.stderr, flush=True)
