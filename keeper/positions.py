"""`keeper positions`: every tracked position's health, computed locally at head.

The position set comes from the store when it exists (`keeper sync` keeps one; only logs after its
cursor are scanned), else from a one-off scan of protocol events from ``start_block`` into a
temporary store. Every position is then read at the head block in batched calls and evaluated
with the protocols' exact maths. Rendering (`render_table`, `render_json`) is pure.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keeper.chain.pool import RpcPool, http_urls
from keeper.chain.rpc import Rpc
from keeper.config import Config
from keeper.errors import UsageError
from keeper.math.uint import UINT256_MAX
from keeper.obs.progress import Report
from keeper.protocols.base import WAD, BlockRef, PositionHealth
from keeper.protocols.registry import build_adapter
from keeper.state.store import Store
from keeper.state.sync import PositionSync, tracked_protocols


@dataclass(frozen=True)
class PositionsReport:
    block: BlockRef
    positions: list[tuple[str, PositionHealth]]
    """(protocol name from the config, health), sorted by health factor, lowest first."""


async def check_chain_id(rpc: Rpc, expected: int) -> None:
    actual = int(await rpc.request("eth_chainId"), 16)
    if actual != expected:
        raise UsageError(f"chain.chain_id is {expected} but the RPC endpoint serves chain {actual}")


async def synced(config: Config, store: Store, report: Report) -> PositionsReport:
    async with RpcPool(http_urls(config.chain.rpc_urls)) as rpc:
        await check_chain_id(rpc, config.chain.chain_id)
        sync = PositionSync(rpc, store, tracked_protocols(config.protocols, build_adapter), report)
        await sync.start()
    return report_of(sync)


async def collect(config: Config, report: Report) -> PositionsReport:
    if config.store.path.exists():
        with Store.open(config.store.path) as store:
            return await synced(config, store, report)
    with tempfile.TemporaryDirectory(prefix="keeper-positions-") as scratch:
        report(f"no store at {config.store.path}: scanning events from start_block (`keeper sync` keeps one)")
        with Store.open(Path(scratch) / "positions.sqlite") as store:
            return await synced(config, store, report)


def below(report: PositionsReport, health_factor: float | None) -> list[tuple[str, PositionHealth]]:
    if health_factor is None:
        return report.positions
    limit = int(health_factor * WAD)
    return [(name, h) for name, h in report.positions if h.health_factor_wad < limit]


def json_object(report: PositionsReport, rows: Sequence[tuple[str, PositionHealth]]) -> dict[str, Any]:
    """Big integers as decimal strings: JSON numbers lose precision past 2**53."""
    return {
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


def render_json(report: PositionsReport, rows: Sequence[tuple[str, PositionHealth]]) -> str:
    return json.dumps(json_object(report, rows))


def report_of(sync: PositionSync) -> PositionsReport:
    """Every position with debt, as the adapters compute it at the sync's head."""
    assert sync.head is not None
    positions = [(t.name, h) for t in sync.protocols for h in t.adapter.health(sync.head.timestamp)]
    positions.sort(key=lambda item: (item[1].health_factor_wad, item[0], item[1].market, item[1].user))
    return PositionsReport(sync.head, positions)


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
