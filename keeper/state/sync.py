"""Keep every tracked position current: backfill, warm restart from the store, live blocks, reorgs.

The store holds *who* has a position (and a cursor per protocol); adapters hold their exact
state, re-read in one batched call per block for the positions that block's logs touched. A
restart loads the position set from the store, checks the cursor is still canonical, scans logs
only from the cursor to head and reads every position once. A reorg rolls the store back to the
common ancestor, forgets positions only the abandoned branch revealed, and re-reads the ones it
touched when the new branch is applied.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

import structlog

from keeper.chain.blocks import Block, BlockStream
from keeper.chain.logs import MAX_SPAN_BLOCKS, iter_logs
from keeper.chain.rpc import Rpc
from keeper.chain.types import BlockRef
from keeper.config import ProtocolConfig
from keeper.errors import Halt
from keeper.obs.progress import Progress, Report
from keeper.protocols.base import LendingAdapter, PositionKey
from keeper.protocols.price_feeds import PriceFeeds
from keeper.state.store import RECENT_BLOCKS_KEPT, Store
from keeper.state.txstate import SentTx

log = structlog.get_logger(__name__)


async def block_ref(rpc: Rpc, tag: int | str = "latest") -> BlockRef:
    header = await rpc.request("eth_getBlockByNumber", [hex(tag) if isinstance(tag, int) else tag, False])
    if header is None:
        raise Halt(f"block {tag} does not exist on the RPC endpoint")
    return BlockRef(int(header["number"], 16), header["hash"], int(header["timestamp"], 16))


async def canonical_hashes(rpc: Rpc, numbers: Sequence[int]) -> dict[int, str | None]:
    headers = await rpc.batch([("eth_getBlockByNumber", [hex(n), False]) for n in numbers])
    return {n: (h["hash"] if h else None) for n, h in zip(numbers, headers, strict=True)}


@dataclass(frozen=True)
class Tracked:
    config: ProtocolConfig
    adapter: LendingAdapter

    @property
    def name(self) -> str:
        return self.config.name


@dataclass(frozen=True)
class BlockUpdate:
    block: Block
    touched: dict[str, set[PositionKey]]
    """Protocol name -> positions re-read at this block."""


@dataclass
class _Applied:
    ref: BlockRef
    touched: dict[str, set[PositionKey]] = field(default_factory=dict)


class PositionSync:
    def __init__(
        self,
        rpc: Rpc,
        store: Store,
        protocols: Sequence[Tracked],
        report: Report = lambda _: None,
        max_log_span: int = MAX_SPAN_BLOCKS,
        reorg_window: int = RECENT_BLOCKS_KEPT,
        price_feeds: PriceFeeds | None = None,
    ) -> None:
        self.rpc = rpc
        self.price_feeds = price_feeds or PriceFeeds(())
        """The ``[[price_feeds]]``, re-read at every block applied, alongside the adapters' reads."""
        self.store = store
        self.protocols = list(protocols)
        self.report = report
        self.max_log_span = max_log_span
        self.reorg_window = reorg_window
        self.head: BlockRef | None = None
        self.events_backfilled = 0
        self.reorgs = 0
        self._recent: dict[int, _Applied] = {}
        self._stale: dict[str, set[PositionKey]] = {}
        self._reopened: list[SentTx] = []

    def take_reopened(self) -> list[SentTx]:
        """The keeper's transactions whose mined block a reorg (live, or while it was down) took
        away since the last call: pending again in the store, for the executor to re-send or cancel."""
        reopened, self._reopened = self._reopened, []
        return reopened

    def _reopen_transactions(self, ancestor: int, head: int) -> None:
        reopened = self.store.reopen_mined_after(ancestor, head)
        for tx in reopened:
            log.warning("transaction_reorged_out", tx=tx.tx_hash, nonce=tx.nonce, ancestor=ancestor)
        self._reopened += reopened

    # ------------------------------------------------------------------ start: backfill or warm restart

    async def start(self) -> BlockRef:
        """Bring the store and every adapter to the current head."""
        head = await block_ref(self.rpc)
        for tracked in self.protocols:
            await tracked.adapter.refresh(self.rpc, head, [])  # global state names the contracts to watch
            start = await self._resume_point(tracked)
            if start <= head.number:
                await self._backfill(tracked, start, head)
        await asyncio.gather(
            *(t.adapter.refresh(self.rpc, head, self.store.positions(t.name)) for t in self.protocols),
            self.price_feeds.refresh(self.rpc, head),
        )
        self.head = head
        self._recent = {head.number: _Applied(head)}
        return head

    async def _resume_point(self, tracked: Tracked) -> int:
        cursor = self.store.cursor(tracked.name)
        if cursor is None:
            return tracked.config.start_block
        hashes = await canonical_hashes(self.rpc, [cursor.number])
        if hashes[cursor.number] == cursor.hash:
            return cursor.number + 1
        recent = [b for b in reversed(self.store.recent_blocks()) if b.number < cursor.number]
        canonical = await canonical_hashes(self.rpc, [b.number for b in recent]) if recent else {}
        ancestor = next((b for b in recent if canonical[b.number] == b.hash), None)
        if ancestor is not None:
            number, block_hash = ancestor.number, ancestor.hash
        else:  # deeper than the blocks kept: rescan a window from a block that is canonical now
            number = max(tracked.config.start_block, cursor.number - self.reorg_window)
            block_hash = (await block_ref(self.rpc, number)).hash
        log.warning("store_cursor_not_canonical", protocol=tracked.name, cursor=cursor.number, resume=number)
        self.store.rollback_to(tracked.name, number, block_hash)
        self._reopen_transactions(number, cursor.number)
        return number + 1

    async def _backfill(self, tracked: Tracked, start: int, head: BlockRef) -> None:
        log_filter = tracked.adapter.log_filter()
        progress = Progress(f"{tracked.name} backfill", self.report)
        events = 0
        chunks = iter_logs(
            self.rpc,
            log_filter.addresses,
            log_filter.topics,
            start,
            head.number,
            max_span=self.max_log_span,
            on_progress=progress,
        )
        async for chunk in chunks:
            keys = tracked.adapter.apply_logs(chunk.logs)
            end = head if chunk.to_block == head.number else await block_ref(self.rpc, chunk.to_block)
            self.store.apply_range(tracked.name, end, keys)
            events += len(chunk.logs)
            progress.extra = f", {events:,} events"
        self.events_backfilled += events
        self.report(
            f"{tracked.name}: {self.store.count(tracked.name):,} accounts tracked at block {head.number}"
        )

    # ------------------------------------------------------------------------------- live following

    async def follow(self, stream: BlockStream) -> AsyncIterator[BlockUpdate]:
        """Every block after the head, in order; a reorg rewinds and re-applies the new branch."""
        if self.head is None:
            raise RuntimeError("start() first")
        number = self.head.number + 1
        while True:
            block = await stream.block(number)
            if block.parent_hash != self.head.hash:
                number = await self._rewind()
                continue
            yield await self.apply(block)
            number += 1

    async def apply(self, block: Block) -> BlockUpdate:
        touched = {
            t.name: t.adapter.apply_logs(block.logs) | self._stale.pop(t.name, set()) for t in self.protocols
        }
        await asyncio.gather(
            *(t.adapter.refresh(self.rpc, block.ref, touched[t.name]) for t in self.protocols),
            self.price_feeds.refresh(self.rpc, block.ref),
        )
        for tracked in self.protocols:
            self.store.apply_block(tracked.name, block.ref, block.parent_hash, touched[tracked.name])
        self.head = block.ref
        self._recent[block.number] = _Applied(block.ref, touched)
        for old in [n for n in self._recent if n <= block.number - self.reorg_window]:
            del self._recent[old]
        return BlockUpdate(block, touched)

    async def _rewind(self) -> int:
        """Roll back to the newest block we applied that is still canonical; return the next number."""
        assert self.head is not None
        numbers = sorted(self._recent, reverse=True)
        canonical = await canonical_hashes(self.rpc, numbers)
        ancestor = next(
            (self._recent[n].ref for n in numbers if canonical[n] == self._recent[n].ref.hash), None
        )
        if ancestor is None:
            raise Halt(f"reorg deeper than the {len(numbers)} blocks kept in memory; restart to resync")
        abandoned = [self._recent.pop(n) for n in numbers if n > ancestor.number]
        for tracked in self.protocols:
            self.store.rollback_to(tracked.name, ancestor.number, ancestor.hash)
            remaining = set(self.store.positions(tracked.name))
            tracked.adapter.forget([k for k in tracked.adapter.tracked() if k not in remaining])
            touched = set().union(*(applied.touched.get(tracked.name, set()) for applied in abandoned))
            self._stale.setdefault(tracked.name, set()).update(touched & remaining)
        self._reopen_transactions(ancestor.number, self.head.number)
        self.reorgs += 1
        log.warning("reorg", depth=len(abandoned), ancestor=ancestor.number, old_head=self.head.number)
        self.head = ancestor
        return ancestor.number + 1


def tracked_protocols(
    configs: Sequence[ProtocolConfig], build: Callable[[ProtocolConfig], LendingAdapter]
) -> list[Tracked]:
    return [Tracked(config, build(config)) for config in configs]
