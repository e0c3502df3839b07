"""Wiring: config -> RPC pool, store, adapters, block stream; signals; the one TaskGroup.

`run_sync` is the position-tracking half of the daemon (`keeper sync`): bring the store to
head, then with ``follow`` apply every new block until SIGINT/SIGTERM. The WebSocket head
listener and the block follower are the only long-lived tasks and both live in one TaskGroup,
so a failure in either stops both with its error instead of vanishing.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import structlog

from keeper.chain.blocks import BlockStream, Heads, PollingHeads, WebSocketHeads
from keeper.chain.pool import RpcPool, http_urls
from keeper.chain.preflight import check_chain_id, require_code
from keeper.config import Config, ExecutionConfig
from keeper.engine import Engine, EngineStats
from keeper.errors import Retryable, UsageError
from keeper.execution.executor import Executor
from keeper.execution.gas import FeePolicy
from keeper.execution.nonces import NonceManager
from keeper.execution.signer import Signer
from keeper.execution.wallet import wallet_report
from keeper.obs.metrics import Metrics
from keeper.obs.progress import Report
from keeper.obs.server import StatusServer
from keeper.positions import json_object, report_of
from keeper.protocols.base import LogFilter
from keeper.protocols.registry import build_adapter
from keeper.risk.prices import PriceGuard
from keeper.state.store import Store
from keeper.state.sync import PositionSync, Tracked, tracked_protocols

log = structlog.get_logger(__name__)

RPC_OUTAGE_RETRY_S = 1.0
"""While every endpoint is down, retry this often; /readyz reports the outage meanwhile."""


@dataclass(frozen=True)
class SyncOptions:
    follow: bool = False
    max_log_span: int = 50_000
    poll_interval_s: float = 1.0


def combined_filter(protocols: Sequence[Tracked]) -> LogFilter:
    """One eth_getLogs per block for every protocol: the union of their addresses and topics."""
    filters = [t.adapter.log_filter() for t in protocols]
    addresses = tuple(dict.fromkeys(a for f in filters for a in f.addresses))
    topics = tuple(dict.fromkeys(t for f in filters for t in f.topics))
    return LogFilter(addresses, topics)


def _heads(config: Config, rpc: RpcPool, poll_interval_s: float) -> Heads:
    ws_urls = [u for u in config.chain.rpc_urls if u.startswith(("ws://", "wss://"))]
    if ws_urls:
        return WebSocketHeads(ws_urls[0], rpc, poll_interval_s=poll_interval_s)
    return PollingHeads(rpc, poll_interval_s)


async def run_sync(config: Config, options: SyncOptions, report: Report) -> None:
    with Store.open(config.store.path) as store:
        async with RpcPool(http_urls(config.chain.rpc_urls)) as rpc:
            await check_chain_id(rpc, config.chain.chain_id)
            sync = PositionSync(
                rpc,
                store,
                tracked_protocols(config.protocols, build_adapter),
                report,
                max_log_span=options.max_log_span,
            )
            head = await sync.start()
            report(f"synced to block {head.number}")
            if options.follow:
                heads = _heads(config, rpc, options.poll_interval_s)
                stream = BlockStream(rpc, heads, lambda: combined_filter(sync.protocols))
                await _until_signalled(_apply_blocks(sync, stream, report), heads)
                report(f"stopped at block {sync.head.number if sync.head else '?'}")


async def _apply_blocks(sync: PositionSync, stream: BlockStream, report: Report) -> None:
    async for update in sync.follow(stream):
        touched = ", ".join(f"{name} {len(keys)}" for name, keys in update.touched.items())
        report(f"block {update.block.number}: {len(update.block.logs)} logs, touched {touched}")


# ---------------------------------------------------------------------------------------------- run


def fee_policy(execution: ExecutionConfig) -> FeePolicy:
    return FeePolicy(
        strategy=execution.fee_strategy,
        max_fee_per_gas_wei=execution.max_fee_per_gas_wei,
        base_fee_multiplier_bps=execution.base_fee_multiplier_bps,
        priority_fee_wei=execution.priority_fee_wei,
        priority_percentile=execution.priority_percentile,
        profit_share_bps=execution.profit_share_bps,
        max_gas_cost_share_bps=execution.max_gas_cost_share_bps,
        min_profit_wei=execution.min_profit_wei,
        replace_after_blocks=execution.replace_after_blocks,
    )


@dataclass
class Liveness:
    """What /readyz needs: the last block applied (and when), and the chain head the heads saw."""

    max_blocks_behind: int
    max_head_age_s: float
    head: int | None = None
    head_wall_s: float = 0.0
    chain_head: int = 0

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        if self.head is None:
            return False, {"reason": "syncing"}
        age_s = time.monotonic() - self.head_wall_s
        behind = max(0, self.chain_head - self.head)
        details = {"block": self.head, "blocks_behind": behind, "head_age_s": round(age_s, 1)}
        if behind > self.max_blocks_behind:
            return False, details | {"reason": "behind the chain head"}
        if age_s > self.max_head_age_s:
            return False, details | {"reason": "no new block processed recently (RPC or node down?)"}
        return True, details


async def run_keeper(
    config: Config, dry_run: bool, environ: Mapping[str, str], report: Report, metrics: Metrics | None = None
) -> EngineStats:
    """The daemon: sync positions, then per block liquidate (or, dry-run, simulate and report)."""
    signer = Signer.from_config(config.signer, config.chain.chain_id, environ)
    native_asset = config.execution.native_asset
    if native_asset is None:
        raise UsageError(
            "execution.native_asset: set the wrapped native token (e.g. WETH) to value profits in"
        )
    metrics = metrics or Metrics()
    structlog.contextvars.bind_contextvars(
        chain_id=config.chain.chain_id, mode="dry-run" if dry_run else "live"
    )
    liveness = Liveness(config.metrics.ready_max_blocks_behind, config.metrics.ready_max_head_age_s)
    with Store.open(config.store.path) as store:
        async with RpcPool(http_urls(config.chain.rpc_urls), metrics=metrics) as rpc:
            sync = PositionSync(rpc, store, tracked_protocols(config.protocols, build_adapter), report)
            server = StatusServer(
                config.metrics.listen or "127.0.0.1:0",
                metrics,
                liveness.readiness,
                lambda: _positions_json(sync),
            )
            async with server.serving() if config.metrics.listen else contextlib.nullcontext():
                return await _keep(config, dry_run, signer, native_asset, rpc, store, sync, metrics, liveness)


def _positions_json(sync: PositionSync) -> dict[str, Any]:
    if sync.head is None:
        return {"block": None, "positions": []}
    report = report_of(sync)
    return json_object(report, report.positions)


async def _keep(
    config: Config,
    dry_run: bool,
    signer: Signer,
    native_asset: str,
    rpc: RpcPool,
    store: Store,
    sync: PositionSync,
    metrics: Metrics,
    liveness: Liveness,
) -> EngineStats:
    await check_chain_id(rpc, config.chain.chain_id)
    await require_code(rpc, config)
    head = await sync.start()
    wallet = await wallet_report(rpc, signer.address, sync.protocols)
    metrics.wallet.labels("native").set(int(wallet["native_wei"]))
    log.info("keeper_ready", block=head.number, mode="dry-run" if dry_run else "live", **wallet)
    nonces = None
    if not dry_run:
        chain_nonce = int(await rpc.request("eth_getTransactionCount", [signer.address, "pending"]), 16)
        nonces = NonceManager(chain_nonce, store.in_flight())
    executor = Executor(
        rpc,
        signer.address,
        fee_policy(config.execution),
        config.execution.gas_limit_margin_bps,
        store,
        nonces,
        None if dry_run else signer,
        metrics,
    )
    if not dry_run:
        await executor.rebroadcast()  # a restart never loses track of what it sent
    guard = PriceGuard(config.execution.max_price_age_s, config.execution.max_price_jump_bps)
    engine = Engine(sync, executor, native_asset, metrics, guard)
    heads = _heads(config, rpc, 0.25)
    stream = BlockStream(rpc, heads, lambda: combined_filter(sync.protocols))
    shutdown = Shutdown(config.execution.shutdown_grace_s)
    liveness.head, liveness.head_wall_s = head.number, time.monotonic()
    await _until_signalled(_liquidate(sync, stream, engine, shutdown, heads, liveness), heads, shutdown)
    settled = {k: str(v) for k, v in executor.settled.items()}
    log.info(
        "keeper_stopped", block=sync.head.number if sync.head else None, **asdict(engine.stats), **settled
    )
    return engine.stats


async def _liquidate(
    sync: PositionSync,
    stream: BlockStream,
    engine: Engine,
    shutdown: Shutdown,
    heads: Heads,
    liveness: Liveness,
) -> None:
    while True:
        try:
            async for update in sync.follow(stream):
                structlog.contextvars.bind_contextvars(block=update.block.number)
                await engine.on_block(update, at_head=heads.best_head <= update.block.number)
                liveness.head, liveness.head_wall_s = update.block.number, time.monotonic()
                liveness.chain_head = max(heads.best_head, update.block.number)
                engine.metrics.blocks_behind.set(liveness.chain_head - update.block.number)
                if shutdown.requested.is_set():
                    engine.accepting = False  # no new opportunities; keep settling what is in flight
                    if not engine.executor.store.in_flight() or time.monotonic() > shutdown.deadline_s:
                        return
        except Retryable as exc:  # every endpoint failed (after the pool's own retries): wait, resume
            log.warning("rpc_unavailable", error=str(exc)[:200], retry_in_s=RPC_OUTAGE_RETRY_S)
            if shutdown.requested.is_set():
                return
            await asyncio.sleep(RPC_OUTAGE_RETRY_S)


class Shutdown:
    """First SIGINT/SIGTERM: stop taking opportunities, wait up to ``grace_s`` for in-flight
    transactions to settle, then stop. A second signal stops at once."""

    def __init__(self, grace_s: float) -> None:
        self.grace_s = grace_s
        self.requested = asyncio.Event()
        self.immediate = asyncio.Event()
        self.deadline_s = 0.0

    def signal(self) -> None:
        if self.requested.is_set():
            self.immediate.set()
            return
        self.deadline_s = time.monotonic() + self.grace_s
        self.requested.set()
        log.info("shutdown_requested", grace_s=self.grace_s)


async def _until_signalled(
    work: Coroutine[Any, Any, None], heads: Heads, shutdown: Shutdown | None = None
) -> None:
    """Run ``work`` (and the WebSocket listener) in one TaskGroup until it ends or a signal stops it."""
    shutdown = shutdown or Shutdown(0.0)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, shutdown.signal)
    try:
        async with asyncio.TaskGroup() as group:
            main = group.create_task(work)
            listener = group.create_task(heads.run()) if isinstance(heads, WebSocketHeads) else None
            group.create_task(_stop_when_due(shutdown, main, listener))
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


async def _stop_when_due(
    shutdown: Shutdown, main: asyncio.Task[None], listener: asyncio.Task[None] | None
) -> None:
    """Cancel at the deadline or on a second signal; let ``main`` return by itself when it can."""
    stopper = asyncio.ensure_future(shutdown.immediate.wait())  # awaited below, never left behind
    try:
        await asyncio.wait([main, stopper], return_when=asyncio.FIRST_COMPLETED)
        if not main.done() and not shutdown.requested.is_set():
            return
        if not main.done():
            await shutdown.requested.wait()
            remaining = max(0.0, shutdown.deadline_s - time.monotonic())
            await asyncio.wait([main, stopper], timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
        if not main.done():
            main.cancel()
    finally:
        stopper.cancel()
        if listener is not None:
            listener.cancel()
