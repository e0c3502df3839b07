"""Blocks handed downstream complete and in order: header plus the watched contracts' logs.

Consumers *pull* blocks by number (`BlockStream.block(n)`), so gaps cannot exist: after a
WebSocket outage or a burst of blocks the next number is simply fetched. Heads only say when
to pull. `WebSocketHeads` (newHeads over web3's persistent WebSocket provider) is the fast
signal; while it is down, `wait_for` polls ``eth_blockNumber`` instead. `PollingHeads` polls only.

Over an endpoint pool the poll asks every endpoint at once (`RpcPool.refresh_heads`): the head is
the best of theirs, and an endpoint lagging it by more than the pool's bound is demoted until it
catches up. Asking only the top-ranked endpoint would trust it blindly: a node that stopped
following the chain still answers quickly, and the keeper would wait at its head forever. Before
each fetch the stream re-checks if the last check is older than ``head_check_s``, which covers
WebSocket heads that arrive before any poll is due.

A block's header and logs come in one JSON-RPC batch (header by number, logs by number); if a
reorg lands between the two, the logs' ``blockHash`` disagrees with the header and the pair is
fetched again. A header whose branch is abandoned later shows up as a parent-hash mismatch on
the next block, which the consumer resolves (see `keeper.state.sync`).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from web3 import AsyncWeb3, WebSocketProvider

from .rpc import HeadChecked, Rpc
from .types import BlockRef, LogFilter

log = structlog.get_logger(__name__)

Log = dict[str, Any]

HEAD_CHECK_S = 1.0
"""Re-check the pool's endpoint heads before a fetch at most this often (no extra call per read)."""
HEAD_STALL_WARN_S = 60.0
"""Default of ``chain.head_stall_warn_s``."""


@dataclass(frozen=True, slots=True)
class Block:
    number: int
    hash: str
    parent_hash: str
    timestamp: int
    base_fee_wei: int
    logs: tuple[Log, ...]

    @property
    def ref(self) -> BlockRef:
        return BlockRef(self.number, self.hash, self.timestamp)


class Heads(Protocol):
    @property
    def best_head(self) -> int:
        """The highest head number seen (-1 before the first)."""
        ...

    async def wait_for(self, number: int) -> None:
        """Return once the chain head is at least ``number``."""
        ...


async def chain_head(rpc: Rpc) -> int:
    """The head: over a pool, the best of every endpoint's (demoting laggards), else the one's."""
    if isinstance(rpc, HeadChecked):
        best = await rpc.refresh_heads()
        if best is not None:
            return best
    return int(await rpc.request("eth_blockNumber"), 16)  # nobody answered: fail (or retry) as a read


class PollingHeads:
    """Polls the head; says ``chain_head_stalled`` once when it has not moved for ``stall_warn_s``
    (every endpoint frozen, or the chain halted) and ``chain_head_moving`` when it moves again."""

    def __init__(
        self, rpc: Rpc, poll_interval_s: float = 1.0, stall_warn_s: float = HEAD_STALL_WARN_S
    ) -> None:
        self.rpc = rpc
        self.poll_interval_s = poll_interval_s
        self.stall_warn_s = stall_warn_s
        self.best_head = -1
        self._moved_at_s = time.monotonic()
        self._stalled = False

    def observe(self, head: int) -> bool:
        """Record a head seen; True if it is higher than any before."""
        now_s = time.monotonic()
        if head <= self.best_head:
            if not self._stalled and now_s - self._moved_at_s > self.stall_warn_s:
                self._stalled = True
                log.warning(
                    "chain_head_stalled", head=self.best_head, since_s=round(now_s - self._moved_at_s, 1)
                )
            return False
        if self._stalled:
            log.info("chain_head_moving", head=head)
            self._stalled = False
        self.best_head, self._moved_at_s = head, now_s
        return True

    async def wait_for(self, number: int) -> None:
        while self.best_head < number:
            self.observe(await chain_head(self.rpc))
            if self.best_head < number:
                await asyncio.sleep(self.poll_interval_s)


class WebSocketHeads:
    """newHeads notifications as a wake-up; reconnects with jittered backoff, polls while down.

    `run` is a long-lived coroutine: the supervisor schedules it in its TaskGroup.
    """

    def __init__(
        self,
        ws_url: str,
        rpc: Rpc,
        poll_interval_s: float = 1.0,
        reconnect_initial_s: float = 0.5,
        reconnect_max_s: float = 15.0,
        stall_warn_s: float = HEAD_STALL_WARN_S,
    ) -> None:
        self.ws_url = ws_url
        self.polling = PollingHeads(rpc, poll_interval_s, stall_warn_s)
        self.poll_interval_s = poll_interval_s
        self.reconnect_initial_s = reconnect_initial_s
        self.reconnect_max_s = reconnect_max_s
        self.connected = False
        self.connections = 0
        self.disconnects = 0
        self._changed = asyncio.Event()

    @property
    def best_head(self) -> int:
        return self.polling.best_head

    def _observe(self, number: int) -> None:
        if self.polling.observe(number):
            self._changed.set()

    async def run(self) -> None:
        backoff_s = self.reconnect_initial_s
        while True:
            connections_before = self.connections
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any socket failure: reconnect; polling covers the gap
                log.warning("websocket_lost", url=_redacted(self.ws_url), error=type(exc).__name__)
            finally:
                if self.connected:
                    self.disconnects += 1
                self.connected = False
                self._changed.set()  # waiters switch to polling at once
            if self.connections > connections_before:
                backoff_s = self.reconnect_initial_s  # it had worked: start the backoff over
            await asyncio.sleep(backoff_s * (0.5 + random.random() / 2))
            backoff_s = min(backoff_s * 2, self.reconnect_max_s)

    async def _listen(self) -> None:
        provider = WebSocketProvider(self.ws_url, max_connection_retries=1)  # our loop owns retrying
        async with AsyncWeb3(provider) as w3:
            await w3.eth.subscribe("newHeads")
            self.connected = True
            self.connections += 1
            log.info("websocket_connected", url=_redacted(self.ws_url))
            async for message in w3.socket.process_subscriptions():
                number = message["result"]["number"]
                self._observe(int(number, 16) if isinstance(number, str) else int(number))

    async def wait_for(self, number: int) -> None:
        while self.best_head < number:
            if not self.connected:
                await self._poll_once(number)
                continue
            self._changed.clear()
            try:  # a lost notification costs at most one poll interval
                await asyncio.wait_for(self._changed.wait(), timeout=self.poll_interval_s)
            except TimeoutError:
                self._observe(await chain_head(self.polling.rpc))

    async def _poll_once(self, number: int) -> None:
        self._observe(await chain_head(self.polling.rpc))
        if self.best_head < number:
            await asyncio.sleep(self.poll_interval_s)


def _redacted(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/')[0].split('?')[0]}"


class BlockStream:
    """Complete blocks by number; the log filter is asked for each block (adapters learn contracts)."""

    def __init__(
        self,
        rpc: Rpc,
        heads: Heads,
        log_filter: Callable[[], LogFilter],
        head_check_s: float = HEAD_CHECK_S,
    ) -> None:
        self.rpc = rpc
        self.heads = heads
        self.log_filter = log_filter
        self.head_check_s = head_check_s
        self.fetched = 0

    async def block(self, number: int) -> Block:
        await self.heads.wait_for(number)
        while True:
            if isinstance(self.rpc, HeadChecked):  # a lagging endpoint answers "no such block": demote it
                await self.rpc.refresh_heads(max_age_s=self.head_check_s)
            block = await fetch_block(self.rpc, number, self.log_filter())
            if block is not None:
                self.fetched += 1
                return block
            await asyncio.sleep(0.05)  # header and logs straddled a reorg, or a lagging endpoint


async def fetch_block(rpc: Rpc, number: int, log_filter: LogFilter) -> Block | None:
    """Header and logs of block ``number`` from one batch, or None when they do not belong together."""
    tag = hex(number)
    header, logs = await rpc.batch(
        [
            ("eth_getBlockByNumber", [tag, False]),
            (
                "eth_getLogs",
                [
                    {
                        "address": list(log_filter.addresses),
                        "topics": [list(log_filter.topics)],
                        "fromBlock": tag,
                        "toBlock": tag,
                    }
                ],
            ),
        ]
    )
    if header is None:
        return None
    if any(entry["blockHash"] != header["hash"] for entry in logs):
        return None
    return Block(
        number=int(header["number"], 16),
        hash=header["hash"],
        parent_hash=header["parentHash"],
        timestamp=int(header["timestamp"], 16),
        base_fee_wei=int(header.get("baseFeePerGas") or "0x0", 16),
        logs=tuple(sorted(logs, key=lambda entry: int(entry["logIndex"], 16))),
    )
