"""Position state: the durable SQLite store (and, next to it, the in-memory book)."""

from keeper.state.store import Cursor, RecentBlock, Store

__all__ = ["Cursor", "RecentBlock", "Store"]
