"""The daemon's lifecycle: start-up, run (the one TaskGroup), shutdown; signals.

`keeper run` and `keeper sync --follow` are one daemon with different work per block:

- start-up: signer, chain id and contract code (`keeper.chain.preflight`, before the store is
  opened), sync to head, wallet report, nonces, rebroadcast of what a previous run left in
  flight. Its errors leave as they are raised: one line from the CLI.
- run: one `asyncio.TaskGroup` holds every long-lived task (the block follower, the WebSocket
  head listener, the stop timer), so a failure in one stops the others with its error instead of
  vanishing. A `KeeperError` escaping the group (a `Halt` on a reorg deeper than the blocks kept,
  a transaction recorded twice; in sync mode every endpoint down) is taken out of its
  `ExceptionGroup` by ``except*`` and re-raised alone once the group has stopped, so the store
  and sockets close in order and the CLI says one line and exits non-zero, never a traceback.
- shutdown: the first SIGINT/SIGTERM stops taking opportunities and waits up to
  ``execution.shutdown_grace_s`` for in-flight transactions to settle; a second stops at once.
  The daemon installs its signal handlers for the run and removes them after.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

import structlog

from keeper.app import Liveness, combined_filter, fee_policy, flash_setup, heads_for, positions_json
from keeper.chain.blocks import BlockStream, Heads, WebSocketHeads
from keeper.chain.pool import RpcPool, http_urls
from keeper.chain.preflight import check_chain_id, require_code, require_multicall3
from keeper.config import Config
from keeper.engine import Engine
from keeper.errors import KeeperError, Retryable, UsageError
from keeper.execution.executor import Executor
from keeper.execution.flash import check_flash_setup
from keeper.execution.nonces import NonceManager
from keeper.execution.signer import Signer
from keeper.execution.spend_guard import SpendGuard, limits_of, trip_json
from keeper.execution.wallet import holdings, wallet_report
from keeper.obs.metrics import Metrics
from keeper.obs.progress import Report
from keeper.obs.server import StatusServer
from keeper.protocols.price_feeds import PriceFeeds
from keeper.protocols.registry import build_adapter
from keeper.risk.prices import PriceGuard
from keeper.state.store import Store, StoreUnwritable
from keeper.state.sync import PositionSync, tracked_protocols

log = structlog.get_logger(__name__)

RPC_OUTAGE_RETRY_S = 1.0
"""While every endpoint is down, retry this often; /readyz reports the outage meanwhile."""
SIGNALS = (signal.SIGINT, signal.SIGTERM)

Work = Callable[[], Coroutine[Any, Any, None]]


class Mode(StrEnum):
    SYNC = "sync"
    """`keeper sync`: positions only; no signer, nothing valued or sent."""
    DRY_RUN = "dry-run"
    LIVE = "live"


@dataclass(frozen=True)
class SyncOptions:
    follow: bool = False
    max_log_span: int = 50_000
    poll_interval_s: float = 1.0
    stop_after_blocks: int | None = None
    """`keeper run --fork-blocks N`: after N blocks processed, stop as a signal would (settle first)."""


KEEPER_OPTIONS = SyncOptions(follow=True, poll_interval_s=0.25)
"""`keeper run` always follows, and polls fast while the WebSocket is down."""


class Daemon:
    """One keeper process: `serve` starts it, runs it until a signal or a halt, and stops it."""

    def __init__(
        self,
        config: Config,
        mode: Mode,
        report: Report,
        environ: Mapping[str, str] | None = None,
        options: SyncOptions | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.config = config
        self.mode = mode
        self.report = report
        self.environ = environ or {}
        self.options = options or (SyncOptions() if mode is Mode.SYNC else KEEPER_OPTIONS)
        self.metrics = metrics or Metrics()
        grace_s = 0.0 if mode is Mode.SYNC else config.execution.shutdown_grace_s
        self.shutdown = Shutdown(grace_s)
        self.liveness = Liveness(config.metrics.ready_max_blocks_behind, config.metrics.ready_max_head_age_s)
        self.engine: Engine | None = None
        self.guard: SpendGuard | None = None
        """Live mode's spend guard: once tripped, no new transaction until `keeper guard reset`."""

    # ------------------------------------------------------------------------------------ start-up

    async def serve(self) -> None:
        """The whole life of `keeper run` / `keeper sync`; errors leave as one plain exception."""
        credentials = None
        if self.mode is not Mode.SYNC:
            credentials = self._credentials()  # before anything is opened: a bad key is said first
            structlog.contextvars.bind_contextvars(chain_id=self.config.chain.chain_id, mode=str(self.mode))
        pool_metrics = None if self.mode is Mode.SYNC else self.metrics
        async with RpcPool(
            http_urls(self.config.chain.rpc_urls),
            max_head_lag_blocks=self.config.chain.max_head_lag_blocks,
            timeout_s=self.config.chain.request_timeout_s,
            metrics=pool_metrics,
            multicall3=self.config.chain.multicall3,
            chain_id=self.config.chain.chain_id,
        ) as rpc:
            await self.preflight(rpc, keeping=credentials is not None)
            with Store.open(self.config.store.path) as store:  # a wrong chain never gets a store
                sync = PositionSync(
                    rpc,
                    store,
                    tracked_protocols(self.config.protocols, build_adapter),
                    self.report,
                    max_log_span=self.options.max_log_span,
                    price_feeds=None if self.mode is Mode.SYNC else PriceFeeds(self.config.price_feeds),
                )
                async with self._status_server(sync):
                    await self.start(rpc, sync, credentials)
                    if self.options.follow:
                        await self.run(rpc, sync)
                        self._stopped(sync)

    def _credentials(self) -> tuple[Signer, str]:
        """The signer, and the token profits are valued in: what the keeper needs beyond `keeper sync`."""
        signer = Signer.from_config(self.config.signer, self.config.chain.chain_id, self.environ)
        native_asset = self.config.execution.native_asset
        if native_asset is None:
            raise UsageError(
                "execution.native_asset: set the wrapped native token (e.g. WETH) to value profits in"
            )
        return signer, native_asset

    @contextlib.asynccontextmanager
    async def _status_server(self, sync: PositionSync) -> AsyncIterator[None]:
        """/metrics, /healthz, /readyz, /positions for the daemon's whole life (start-up sync included)."""
        listen = self.config.metrics.listen
        if self.mode is Mode.SYNC or not listen:
            yield
            return
        server = StatusServer(listen, self.metrics, self._readiness, lambda: positions_json(sync))
        async with contextlib.AsyncExitStack() as serving:
            try:
                await serving.enter_async_context(server.serving())
            except OSError as exc:  # a port in use, an address not on this host: the config's to fix
                raise UsageError(f"metrics.listen: cannot listen on {listen} ({exc.strerror})") from None
            yield

    def _readiness(self) -> tuple[bool, dict[str, Any]]:
        """/readyz: the liveness checks, and not ready while the spend guard is tripped."""
        ready, details = self.liveness.readiness()
        if self.guard is not None and not self.guard.allows:
            trip = trip_json(self.guard.trip)
            return False, details | {"reason": self.guard.refusal(), "spend_guard": trip}
        return ready, details

    async def preflight(self, rpc: RpcPool, keeping: bool) -> None:
        """The right chain (and, for the keeper, code at every configured contract), before the
        store is opened or created."""
        await check_chain_id(rpc, self.config.chain.chain_id)
        await require_multicall3(rpc, self.config.chain.multicall3)
        if keeping:
            await require_code(rpc, self.config)

    async def start(self, rpc: RpcPool, sync: PositionSync, credentials: tuple[Signer, str] | None) -> None:
        """Sync to head; for the keeper (``credentials``): wallet, nonces, rebroadcast."""
        if credentials is None:  # keeper sync
            head = await sync.start()
            self.report(f"synced to block {head.number}")
            return
        signer, native_asset = credentials
        flash = flash_setup(self.config)
        if flash is not None:  # before the sync: a wrong executor is a config error, found at once
            await check_flash_setup(rpc, flash, signer.address)
        head = await sync.start()
        # flash: the executor contract needs none of the keeper's tokens, only gas
        wallet = await wallet_report(rpc, signer.address, [] if flash else sync.protocols)
        self.metrics.wallet.labels("native").set(int(wallet["native_wei"]))
        log.info("keeper_ready", block=head.number, mode=str(self.mode), **wallet)
        executor = await self._executor(rpc, sync.store, signer, head.number)
        if self.guard is not None:
            self.guard.start(head)  # a trip the store kept is said here, and nothing is sent
        if self.guard is None or self.guard.allows:
            await executor.approve_inventory(holdings(wallet), head.number)  # ready before the first crash
        guard = PriceGuard(self.config.execution.max_price_age_s, self.config.execution.max_price_jump_bps)
        self.engine = Engine(sync, executor, native_asset, self.metrics, guard, sync.price_feeds, flash=flash)
        if flash is not None:
            log.info("strategy_flash", executor=flash.executor, router=flash.router, morpho=flash.morpho)
        self.liveness.applied(head.number)

    async def _executor(self, rpc: RpcPool, store: Store, signer: Signer, head_number: int) -> Executor:
        live = self.mode is Mode.LIVE
        nonces = None
        if live:
            chain_nonce = int(await rpc.request("eth_getTransactionCount", [signer.address, "pending"]), 16)
            nonces = NonceManager(chain_nonce, store.in_flight())
            self.guard = SpendGuard(store, limits_of(self.config.guard), self.metrics)
        executor = Executor(
            rpc,
            signer.address,
            fee_policy(self.config.execution),
            self.config.execution.gas_limit_margin_bps,
            store,
            nonces,
            signer if live else None,
            self.metrics,
            self.config.execution.approvals,
            inventory=not self.config.execution.flash,
            guard=self.guard,
        )
        if live:
            await executor.rebroadcast()  # a restart never loses track of what it sent
            assert nonces is not None
            mined = int(await rpc.request("eth_getTransactionCount", [signer.address, "latest"]), 16)
            await executor.fill_gaps(mined, head_number)
        return executor

    # ------------------------------------------------------------------------------------------ run

    async def run(self, rpc: RpcPool, sync: PositionSync) -> None:
        """Follow the chain block by block until a signal stops it (or an error halts it)."""
        heads = heads_for(self.config, rpc, self.options.poll_interval_s)
        stream = BlockStream(rpc, heads, lambda: combined_filter(sync.protocols))
        listener = heads.run if isinstance(heads, WebSocketHeads) else None
        engine = self.engine
        if engine is None:
            await supervise(lambda: self._apply_blocks(sync, stream), self.shutdown, listener)
        else:
            await supervise(lambda: self._liquidate(sync, stream, engine, heads), self.shutdown, listener)

    async def _apply_blocks(self, sync: PositionSync, stream: BlockStream) -> None:
        async for update in sync.follow(stream):
            touched = ", ".join(f"{name} {len(keys)}" for name, keys in update.touched.items())
            self.report(f"block {update.block.number}: {len(update.block.logs)} logs, touched {touched}")

    async def _liquidate(self, sync: PositionSync, stream: BlockStream, engine: Engine, heads: Heads) -> None:
        processed = 0
        store_error: str | None = None  # said once per outage, not once per block
        while True:
            try:
                async for update in sync.follow(stream):
                    structlog.contextvars.bind_contextvars(block=update.block.number)
                    if self.guard is not None:  # tripped: track what is in flight, take nothing new
                        self.guard.at_block(update.block.number, update.block.timestamp)
                        engine.accepting = self.guard.allows and not self.shutdown.requested.is_set()
                    await engine.on_block(update, at_head=heads.best_head <= update.block.number)
                    if store_error is not None:
                        log.info("store_writable", block=update.block.number)
                        store_error = None
                    behind = self.liveness.applied(update.block.number, heads.best_head)
                    self.metrics.blocks_behind.set(behind)
                    processed += 1
                    if processed == self.options.stop_after_blocks:
                        log.info("block_limit_reached", blocks=processed)
                        self.shutdown.signal()
                    if self._settled(engine):
                        return
            except StoreUnwritable as exc:  # nothing is sent that could not be recorded: wait, retry
                if store_error is None:
                    log.error("store_unwritable", error=str(exc), retry_every_s=RPC_OUTAGE_RETRY_S)
                store_error = str(exc)
                if self.shutdown.requested.is_set():
                    return
                await asyncio.sleep(RPC_OUTAGE_RETRY_S)
            except Retryable as exc:  # every endpoint failed (after the pool's own retries): wait, resume
                log.warning("rpc_unavailable", error=str(exc)[:200], retry_in_s=RPC_OUTAGE_RETRY_S)
                if self.shutdown.requested.is_set():
                    return
                await asyncio.sleep(RPC_OUTAGE_RETRY_S)

    # ------------------------------------------------------------------------------------- shutdown

    def _settled(self, engine: Engine) -> bool:
        """After a signal: take no new opportunities; done once nothing is in flight or time is up."""
        if not self.shutdown.requested.is_set():
            return False
        engine.accepting = False  # keep settling what is in flight
        return not engine.executor.store.in_flight() or time.monotonic() > self.shutdown.deadline_s

    def _stopped(self, sync: PositionSync) -> None:
        block = sync.head.number if sync.head else None
        if self.engine is None:
            self.report(f"stopped at block {block if block is not None else '?'}")
            return
        settled = {k: str(v) for k, v in self.engine.executor.settled.items()}
        log.info("keeper_stopped", block=block, **asdict(self.engine.stats), **settled)


async def supervise(work: Work, shutdown: Shutdown, listener: Work | None = None) -> None:
    """The one TaskGroup: ``work``, the head ``listener``, the stop timer, with the signals captured.

    Returns when ``work`` does or the timer stops it; a `KeeperError` from inside leaves alone,
    out of its `ExceptionGroup` (anything else is a bug and keeps its group and traceback)."""
    with captured_signals(shutdown):
        try:
            async with asyncio.TaskGroup() as group:
                main = group.create_task(work())
                listening = group.create_task(listener()) if listener is not None else None
                group.create_task(_stop_when_due(shutdown, main, listening))
        except* KeeperError as failed:
            error = _first(failed)
            log.error("keeper_halted", error=str(error), kind=type(error).__name__)
            raise error from None


@contextlib.contextmanager
def captured_signals(shutdown: Shutdown) -> Iterator[None]:
    """SIGINT/SIGTERM go to ``shutdown`` while the daemon runs; their handlers are removed after."""
    loop = asyncio.get_running_loop()
    for signum in SIGNALS:
        loop.add_signal_handler(signum, shutdown.signal)
    try:
        yield
    finally:
        for signum in SIGNALS:
            loop.remove_signal_handler(signum)


def _first(group: BaseExceptionGroup[KeeperError]) -> KeeperError:
    """The first error of a (possibly nested) group: the one that stopped the daemon."""
    error: KeeperError | BaseExceptionGroup[KeeperError] = group.exceptions[0]
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


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


async def _stop_when_due(
    shutdown: Shutdown, main: asyncio.Task[None], listener: asyncio.Task[None] | None
) -> None:
    """Let ``main`` return by itself; after a signal, cancel it at the deadline or on a second one.

    ``main`` checks for a signal between blocks; this timer is what still stops it when no block
    comes (a stalled chain, an RPC outage) and what makes a zero grace mean "now"."""
    requested = asyncio.ensure_future(shutdown.requested.wait())  # both awaited below, never left behind
    immediate = asyncio.ensure_future(shutdown.immediate.wait())
    try:
        await asyncio.wait([main, requested], return_when=asyncio.FIRST_COMPLETED)
        if not main.done():
            remaining_s = max(0.0, shutdown.deadline_s - time.monotonic())
            await asyncio.wait([main, immediate], timeout=remaining_s, return_when=asyncio.FIRST_COMPLETED)
        if not main.done():
            main.cancel()
    finally:
        requested.cancel()
        immediate.cancel()
        if listener is not None:
            listener.cancel()
