"""``eth_getLogs`` over long block ranges, in chunks that adapt to what the provider accepts.

Providers cap a getLogs answer by result count, response size, block span or time, each with its
own error message, and the right span changes with event density along the chain. So the span
halves when a chunk is refused and doubles after each success. The planning is the pure
`RangePlan` (unit-tested without I/O); `iter_logs` only fetches. Chunks are contiguous and never
overlap: every block of ``[from_block, to_block]`` is asked for exactly once by a successful call.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from keeper.errors import Retryable

from .rpc import Rpc, RpcError

INITIAL_SPAN_BLOCKS = 2_000
MAX_SPAN_BLOCKS = 50_000
MIN_SPAN_BLOCKS = 1

TOO_LARGE_MARKERS = (
    "query returned more than",  # Infura, Geth-style nodes
    "log response size exceeded",  # Alchemy
    "response size",
    "block range",  # "block range is too wide", "exceeds max block range"
    "range limit",
    "limit exceeded",
    "limited to",  # QuickNode: "eth_getLogs is limited to a 10,000 range"
    "too many",
    "too large",
    "timeout",
    "timed out",
)
"""Lower-case fragments of provider errors meaning "ask for fewer blocks"; matched as substrings."""

Log = dict[str, Any]
ProgressHook = Callable[[int, int], None]
"""Called with (blocks done, blocks total) after each chunk, so a caller can show rate and ETA."""


@dataclass(frozen=True, slots=True)
class RangePlan:
    """Where a chunked scan of ``[next_block, end_block]`` stands, and the span of its next chunk."""

    next_block: int
    end_block: int
    span: int = INITIAL_SPAN_BLOCKS
    min_span: int = MIN_SPAN_BLOCKS
    max_span: int = MAX_SPAN_BLOCKS

    @classmethod
    def over(
        cls,
        from_block: int,
        to_block: int,
        span: int = INITIAL_SPAN_BLOCKS,
        max_span: int = MAX_SPAN_BLOCKS,
        min_span: int = MIN_SPAN_BLOCKS,
    ) -> RangePlan:
        if from_block < 0 or to_block < from_block - 1:
            raise ValueError(f"bad block range [{from_block}, {to_block}]")
        if not 1 <= min_span <= max_span:
            raise ValueError(f"need 1 <= min_span ({min_span}) <= max_span ({max_span})")
        return cls(from_block, to_block, min(max(span, min_span), max_span), min_span, max_span)

    @property
    def done(self) -> bool:
        return self.next_block > self.end_block

    @property
    def chunk(self) -> tuple[int, int]:
        """Inclusive bounds of the next request."""
        if self.done:
            raise ValueError("the range is fully scanned")
        return self.next_block, min(self.next_block + self.span - 1, self.end_block)

    @property
    def can_shrink(self) -> bool:
        low, high = self.chunk
        return high - low + 1 > self.min_span

    def after_success(self) -> RangePlan:
        """The chunk is in hand: move past it and try a span twice as long."""
        _, high = self.chunk
        return replace(self, next_block=high + 1, span=min(self.span * 2, self.max_span))

    def after_failure(self) -> RangePlan:
        """The chunk was refused: retry from the same block with half of what was asked.

        Halves the chunk actually sent (which may be clipped by the end of the range), not the
        nominal span, so a refused short tail shrinks too. At `min_span` it stays put: the caller
        must give up (check `can_shrink`) rather than loop.
        """
        low, high = self.chunk
        return replace(self, span=max(self.min_span, (high - low + 1) // 2))


def is_range_too_large(exc: Exception) -> bool:
    """Whether a getLogs failure means the chunk was too big (rather than the request being wrong)."""
    if not isinstance(exc, RpcError | Retryable):
        return False
    text = (exc.message if isinstance(exc, RpcError) else str(exc)).lower()
    return any(marker in text for marker in TOO_LARGE_MARKERS)


def log_key(log: Log) -> tuple[int, int]:
    return int(log["blockNumber"], 16), int(log["logIndex"], 16)


@dataclass(frozen=True, slots=True)
class LogChunk:
    from_block: int
    to_block: int
    logs: list[Log]
    """Sorted by (blockNumber, logIndex)."""


async def iter_logs(
    rpc: Rpc,
    addresses: Sequence[str],
    topics0: Sequence[str],
    from_block: int,
    to_block: int,
    *,
    initial_span: int = INITIAL_SPAN_BLOCKS,
    max_span: int = MAX_SPAN_BLOCKS,
    on_progress: ProgressHook | None = None,
) -> AsyncIterator[LogChunk]:
    """Logs of `addresses` whose topic0 is one of `topics0` (any if empty), one chunk at a time.

    Chunks come in block order, so a backfill can persist its cursor after each one and resume.
    A refusal at the minimum span is re-raised: one block cannot be split further.
    """
    plan = RangePlan.over(from_block, to_block, initial_span, max_span)
    total = to_block - from_block + 1
    while not plan.done:
        low, high = plan.chunk
        try:
            logs = await rpc.request("eth_getLogs", [_filter(addresses, topics0, low, high)])
        except (RpcError, Retryable) as exc:
            if not (is_range_too_large(exc) and plan.can_shrink):
                raise
            plan = plan.after_failure()
            continue
        plan = plan.after_success()
        yield LogChunk(low, high, sorted(logs, key=log_key))
        if on_progress is not None:
            on_progress(high - from_block + 1, total)


async def get_logs(
    rpc: Rpc,
    addresses: Sequence[str],
    topics0: Sequence[str],
    from_block: int,
    to_block: int,
    *,
    initial_span: int = INITIAL_SPAN_BLOCKS,
    max_span: int = MAX_SPAN_BLOCKS,
    on_progress: ProgressHook | None = None,
) -> list[Log]:
    """Every matching log in ``[from_block, to_block]``, sorted by (blockNumber, logIndex)."""
    logs: list[Log] = []
    chunks = iter_logs(
        rpc,
        addresses,
        topics0,
        from_block,
        to_block,
        initial_span=initial_span,
        max_span=max_span,
        on_progress=on_progress,
    )
    async for chunk in chunks:
        logs.extend(chunk.logs)
    return logs


def _filter(addresses: Sequence[str], topics0: Sequence[str], low: int, high: int) -> dict[str, Any]:
    return {
        "address": list(addresses),
        "topics": [list(topics0)] if topics0 else [],
        "fromBlock": hex(low),
        "toBlock": hex(high),
    }
