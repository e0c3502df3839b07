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
from collections.abc import Sequence
from dataclasses import dataclass

from keeper.chain.blocks import BlockStream, Heads, PollingHeads, WebSocketHeads
from keeper.chain.pool import RpcPool, http_urls
from keeper.config import Config
from keeper.obs.progress import Report
from keeper.positions import check_chain_id
from keeper.protocols.base import LogFilter
from keeper.protocols.registry import build_adapter
from keeper.state.store import Store
from keeper.state.sync import PositionSync, Tracked, tracked_protocols


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
                await _follow_until_signalled(sync, stream, heads, report)


async def _follow_until_signalled(
    sync: PositionSync, stream: BlockStream, heads: Heads, report: Report
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(_apply_blocks(sync, stream, report))]
            if isinstance(heads, WebSocketHeads):
                tasks.append(group.create_task(heads.run()))
            group.create_task(_cancel_when_set(stop, tasks))
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    report(f"stopped at block {sync.head.number if sync.head else '?'}")


async def _apply_blocks(sync: PositionSync, stream: BlockStream, report: Report) -> None:
    async for update in sync.follow(stream):
        touched = ", ".join(f"{name} {len(keys)}" for name, keys in update.touched.items())
        report(f"block {update.block.number}: {len(update.block.logs)} logs, touched {touched}")


async def _cancel_when_set(stop: asyncio.Event, tasks: list[asyncio.Task[None]]) -> None:
    await stop.wait()
    for task in tasks:
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.gather(*tasks, return_exceptions=True)
