"""The chain's own vocabulary: a block reference and a log filter.

They live at the bottom of the stack, with the code that speaks JSON-RPC, because every layer above
(adapters, state, engine) passes them around; `keeper.protocols.base` re-exports them for adapters.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BlockRef:
    number: int
    hash: str
    timestamp: int


@dataclass(frozen=True, slots=True)
class LogFilter:
    addresses: tuple[str, ...]
    topics: tuple[str, ...]
    """Any of these topic0 values."""
