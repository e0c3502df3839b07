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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from keeper.chain.abi import contract
from keeper.chain.multicall import Call, aggregate3
from keeper.chain.pool import RpcPool, http_urls
from keeper.chain.preflight import check_chain_id, require_multicall3
from keeper.chain.rpc import Rpc
from keeper.config import Config
from keeper.execution.flash import FlashSetup, plan_flash
from keeper.math.uint import UINT256_MAX
from keeper.obs.progress import Report
from keeper.protocols.base import WAD, BlockRef, PositionHealth, TokenPrice, shocked_price
from keeper.protocols.price_feeds import read_feeds
from keeper.protocols.registry import build_adapter
from keeper.risk.opportunity import Opportunity, first_complete, gross_profit_wei, ranked
from keeper.risk.prices import PriceGuard, feed_prices
from keeper.risk.stress import StressResult
from keeper.state.store import Store
from keeper.state.sync import PositionSync, tracked_protocols


@dataclass(frozen=True)
class PositionsReport:
    block: BlockRef
    positions: list[tuple[str, PositionHealth]]
    """(protocol name from the config, health), sorted by health factor, lowest first."""


async def _synced(config: Config, store: Store, report: Report) -> tuple[PositionSync, dict[str, str]]:
    async with RpcPool(
        http_urls(config.chain.rpc_urls),
        max_head_lag_blocks=config.chain.max_head_lag_blocks,
        timeout_s=config.chain.request_timeout_s,
        multicall3=config.chain.multicall3,
        chain_id=config.chain.chain_id,
    ) as rpc:
        await check_chain_id(rpc, config.chain.chain_id)
        await require_multicall3(rpc, config.chain.multicall3)
        sync = PositionSync(rpc, store, tracked_protocols(config.protocols, build_adapter), report)
        await sync.start()
        return sync, await token_symbols(rpc, sync)


async def token_symbols(rpc: Rpc, sync: PositionSync) -> dict[str, str]:
    """address -> ``symbol()`` (and ``address:decimals`` -> decimals) of every reserve and market token."""
    ordered = sorted({token for t in sync.protocols for token in t.adapter.snapshot().tokens})
    erc20 = contract("common/IERC20")
    symbol_of, decimals_of = erc20.fn("symbol"), erc20.fn("decimals")
    calls = [Call(t, fn.call(), allow_failure=True) for t in ordered for fn in (symbol_of, decimals_of)]
    results = await aggregate3(rpc, calls, "latest")
    symbols = {}
    for index, token in enumerate(ordered):
        symbol, decimals = results[2 * index], results[2 * index + 1]
        try:
            name = str(symbol_of.value(symbol.data)) if symbol.success else token
        except Exception:  # a token without a string symbol(): show its address
            name = token
        places = decimals_of.value(decimals.data) if decimals.success and len(decimals.data) >= 32 else 0
        symbols[token] = name
        symbols[f"{token}:decimals"] = str(places)
    return symbols


async def synced_positions(config: Config, report: Report) -> tuple[PositionSync, dict[str, str]]:
    """Every position at head: from the store when there is one, else from a scan into a temporary one."""
    if config.store.path.exists():
        with Store.open(config.store.path) as store:
            return await _synced(config, store, report)
    with tempfile.TemporaryDirectory(prefix="keeper-positions-") as scratch:
        report(f"no store at {config.store.path}: scanning events from start_block (`keeper sync` keeps one)")
        with Store.open(Path(scratch) / "positions.sqlite") as store:
            return await _synced(config, store, report)


async def collect(config: Config, report: Report) -> PositionsReport:
    sync, _ = await synced_positions(config, report)
    return report_of(sync)


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


@dataclass(frozen=True)
class FlashWhatIf:
    """What the flash strategy would make of a stress result's liquidations, at today's pool depth."""

    name: str
    sendable: int
    expected_profit: dict[str, int]
    """Debt token -> what the beneficiary would receive at the quoted swap outputs."""
    floor_profit_wei: int
    """The sum of the contract's profit floors (the swap at its slippage bound), in native wei."""
    gas: int
    """Gas limits the keeper would send them with (per route, not simulated)."""
    refused: dict[str, int]
    """Why the others would not be sent (the reason up to its detail) -> how many."""


async def flash_what_if(
    config: Config, setup: FlashSetup, results: Sequence[StressResult], shocks: Mapping[str, Fraction]
) -> list[FlashWhatIf]:
    """The shocked liquidations through the executor: one QuoterV2 round at head for the block's
    sales (as `keeper run` does), each output scaled by the shock's collateral/debt price ratio (the
    pools cannot be moved from here), valued with the shocked oracles', then the shocked feeds', prices."""
    native = config.execution.native_asset
    if native is None:
        return []
    async with RpcPool(
        http_urls(config.chain.rpc_urls),
        max_head_lag_blocks=config.chain.max_head_lag_blocks,
        timeout_s=config.chain.request_timeout_s,
        multicall3=config.chain.multicall3,
        chain_id=config.chain.chain_id,
    ) as rpc:
        head = await rpc.request("eth_getBlockByNumber", ["latest", False])
        readings = await read_feeds(rpc, config.price_feeds, head["hash"]) if config.price_feeds else []
        guard = PriceGuard(config.execution.max_price_age_s, 0)
        feeds, _ = feed_prices(readings, {}, int(head["timestamp"], 16), guard)
        shocked_feeds = {
            t: TokenPrice(shocked_price(p.price, shocks.get(t, Fraction(0))), p.decimals)
            for t, p in feeds.items()
        }
        oracle: dict[str, TokenPrice] = {}
        for result in results:
            for token, price in result.prices.items():
                oracle.setdefault(token, price)
        books = [oracle, shocked_feeds]
        out = []
        for result in results:
            found = []
            legs_of = {}
            for quote, leg in zip(result.quotes, result.legs, strict=True):
                book = first_complete(books, (quote.collateral_asset, quote.debt_asset, native))
                gross = None if book is None else gross_profit_wei(quote, book, native)
                if gross is not None:
                    found.append(Opportunity(result.name, quote, gross))
                    legs_of[(quote.market, quote.user)] = leg
            legs = [(o, legs_of[(o.quote.market, o.quote.user)]) for o in ranked(found)]
            plans, refusals = await plan_flash(rpc, setup, legs, books, native, head["hash"], shocks)
            profits: dict[str, int] = {}
            for plan in plans:
                debt = plan.opportunity.quote.debt_asset
                profits[debt] = profits.get(debt, 0) + plan.expected_profit
            refused: dict[str, int] = {}
            for refusal in refusals:
                reason = refusal.reason.split(" (")[0]
                refused[reason] = refused.get(reason, 0) + 1
            unpriced = len(result.quotes) - len(found)
            if unpriced:
                refused["no reference price for its tokens"] = unpriced
            out.append(
                FlashWhatIf(
                    result.name,
                    len(plans),
                    profits,
                    sum(p.opportunity.gross_profit_wei for p in plans),
                    sum(p.gas for p in plans),
                    refused,
                )
            )
        return out


def stderr_progress(message: str) -> None:
    print(f"[positions] {message}", file=sys.stderr, flush=True)


def render_stress(
    block: int,
    shocks: Mapping[str, Fraction],
    results: Sequence[StressResult],
    symbols: Mapping[str, str],
    as_json: bool,
    flash: Sequence[FlashWhatIf] = (),
) -> str:
    """The what-if as a table or one JSON object; amounts in each token's own units."""
    if as_json:
        return json.dumps(
            {
                **({"flash": [_flash_json(f, symbols) for f in flash]} if flash else {}),
                "block": block,
                "shocks": {symbols.get(a, a): str(float(m * 100)) for a, m in shocks.items()},
                "protocols": [
                    {
                        "name": r.name,
                        "liquidatable_before": r.liquidatable_before,
                        "liquidatable_after": len(r.liquidatable_after),
                        "second_round": r.second_round,
                        "debt_to_cover": {symbols.get(a, a): str(v) for a, v in r.debt_to_cover.items()},
                        "collateral_released": {
                            symbols.get(a, a): str(v) for a, v in r.collateral_seized.items()
                        },
                        "positions": sorted(k.user for k in r.liquidatable_after),
                    }
                    for r in results
                ],
            }
        )
    moves = ", ".join(f"{symbols.get(a, a)} {float(m * 100):+g} %" for a, m in shocks.items())
    lines = [f"shock: {moves} (positions as of block {block})", ""]
    lines.append(f"{'protocol':<10}{'liquidatable now':>18}{'after shock':>14}{'second round':>14}")
    for r in results:
        lines.append(
            f"{r.name:<10}{r.liquidatable_before:>18}{len(r.liquidatable_after):>14}{r.second_round:>14}"
        )
    lines += ["", f"{'protocol':<10}{'asset':<8}{'debt to cover':>24}{'collateral released':>26}"]
    for r in results:
        for asset in sorted(set(r.debt_to_cover) | set(r.collateral_seized), key=lambda a: symbols.get(a, a)):
            unit = 10 ** int(symbols.get(f"{asset}:decimals", "0"))
            lines.append(
                f"{r.name:<10}{symbols.get(asset, asset)[:7]:<8}"
                f"{r.debt_to_cover.get(asset, 0) / unit:>24,.2f}"
                f"{r.collateral_seized.get(asset, 0) / unit:>26,.4f}"
            )
    lines.append("(whole tokens; second round: still liquidatable after a first liquidation, estimated)")
    if flash:
        lines += ["", "flash strategy (pools at today's depth, outputs moved by the shock):"]
        for f in flash:
            profits = ", ".join(
                f"{int(v) / 10 ** int(symbols.get(f'{a}:decimals', '0')):,.4f} {symbols.get(a, a)}"
                for a, v in sorted(f.expected_profit.items(), key=lambda kv: symbols.get(kv[0], kv[0]))
            )
            lines.append(
                f"{f.name:<10}{f.sendable} would be sent, expected {profits or 'nothing'}; "
                f"floor {f.floor_profit_wei / 10**18:,.4f} native, gas limits {f.gas:,}"
            )
            lines += [f"{'':<10}not sent: {n} {reason}" for reason, n in sorted(f.refused.items())]
    return "\n".join(lines)


def _flash_json(f: FlashWhatIf, symbols: Mapping[str, str]) -> dict[str, Any]:
    return {
        "name": f.name,
        "sendable": f.sendable,
        "expected_profit": {symbols.get(a, a): str(v) for a, v in f.expected_profit.items()},
        "floor_profit_wei": str(f.floor_profit_wei),
        "gas": f.gas,
        "refused": dict(f.refused),
    }
