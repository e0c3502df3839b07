"""Async JSON-RPC over HTTP: the one transport every reader uses.

Readers depend on the small `Rpc` protocol, not on this class, so the endpoint pool (failover,
health scores) can stand in for a single endpoint without the callers changing.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import aiohttp

from keeper.errors import KeeperError, Retryable

BlockTag = int | str
"""A block number, or one of the tags ``latest`` / ``safe`` / ``finalized`` / a 0x-hash."""


class RpcError(KeeperError):
    """The node answered with a JSON-RPC error object: the request itself is at fault or reverted."""

    def __init__(self, method: str, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{method}: {message} (code {code})")
        self.method = method
        self.code = code
        self.message = message
        self.data = data


class Rpc(Protocol):
    async def request(self, method: str, params: Sequence[Any] = ()) -> Any: ...

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]: ...


@runtime_checkable
class HeadChecked(Protocol):
    """An `Rpc` over several endpoints that compares their heads and demotes laggards (`RpcPool`)."""

    async def refresh_heads(self, max_age_s: float = 0.0) -> int | None: ...


def block_param(block: BlockTag) -> str | dict[str, str]:
    """JSON-RPC block parameter; a 32-byte hash pins the exact block (EIP-1898), so a reorg cannot swap it."""
    if isinstance(block, int):
        return hex(block)
    if block.startswith("0x") and len(block) == 66:
        return {"blockHash": block}
    return block


class HttpRpc:
    """One HTTP endpoint. Transport failures raise `Retryable`; JSON-RPC errors raise `RpcError`."""

    def __init__(self, url: str, timeout_s: float = 30.0) -> None:
        self.url = url
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self._ids = itertools.count(1)

    async def __aenter__(self) -> HttpRpc:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(self, method: str, params: Sequence[Any] = ()) -> Any:
        reply = await self._post(
            {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)}
        )
        return _result(method, reply)

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """One HTTP request carrying many calls; results in call order, the first error raises."""
        if not calls:
            return []
        ids = [next(self._ids) for _ in calls]
        body = [
            {"jsonrpc": "2.0", "id": i, "method": m, "params": list(p)}
            for i, (m, p) in zip(ids, calls, strict=True)
        ]
        replies = await self._post(body)
        if not isinstance(replies, list):
            raise Retryable(f"{self.url} answered a batch with a single object: {str(replies)[:200]}")
        if not all(isinstance(reply, dict) for reply in replies):
            raise Retryable(f"{self.url} answered a batch with non-objects: {str(replies)[:200]}")
        by_id = {reply.get("id"): reply for reply in replies}
        missing = [m for i, (m, _) in zip(ids, calls, strict=True) if i not in by_id]
        if missing:
            raise Retryable(f"{self.url} dropped {len(missing)} calls of a batch (first: {missing[0]})")
        return [_result(m, by_id[i]) for i, (m, _) in zip(ids, calls, strict=True)]

    async def _post(self, body: Any) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.post(self.url, json=body) as response:
                if response.status != 200:
                    text = (await response.text())[:200]
                    raise Retryable(f"{self.url} HTTP {response.status}: {text}")
                return await response.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise Retryable(f"{self.url} unreachable: {type(exc).__name__}: {exc}") from exc


def _result(method: str, reply: Any) -> Any:
    """The call's result; a reply with neither ``result`` nor ``error`` is the endpoint's fault: a
    missing result read as null would be "no such block" or an empty answer, fed into the book."""
    if not isinstance(reply, dict) or ("result" not in reply and "error" not in reply):
        raise Retryable(f"{method}: malformed JSON-RPC reply: {str(reply)[:200]}")
    error = reply.get("error")
    if error is not None:
        raise RpcError(method, int(error.get("code", 0)), str(error.get("message", error)), error.get("data"))
    return reply.get("result")
