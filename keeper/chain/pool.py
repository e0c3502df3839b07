"""A pool of HTTP JSON-RPC endpoints behind the one `Rpc` protocol: health scores, failover, retries.

A keeper that stalls on one slow or rate-limited provider misses liquidations, so every request
goes to the healthiest endpoint and fails over at once on a transport error. This is also the one
place that retries (STYLE rule 6), and only for reads that are safe to repeat: a send is delivered
once and its failure is the sender's to handle by nonce. A JSON-RPC error object (a revert, a bad
parameter) is the request's fault, not the endpoint's: it is raised as is, never retried elsewhere;
except one saying the endpoint lacks the block asked for (``header not found``...: it lags the
chain), which counts against the endpoint (kind ``block_unknown``) and fails over; if every
endpoint says so, the first such error is raised.

Endpoints are named by ``scheme://host[:port]`` in metrics, logs and errors: provider URLs carry
API keys in their path or query.

Given the chain id, the pool asks each endpoint for its own before it serves anything else, again
after the endpoint was unreachable (a reconnect may land on another backend): one that answers for
another chain is excluded for good (``rpc_endpoint_wrong_chain``, error kind ``wrong_chain``), so a
misconfigured URL next to good ones never feeds a block, a log or a price into the book. If every
endpoint serves another chain, requests fail with the one-line `UsageError` of a wrong chain id.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import structlog
from prometheus_client import CollectorRegistry
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from keeper.errors import Retryable, UsageError
from keeper.obs.metrics import Metrics

from .endpoints import (
    EndpointStats,
    Health,
    PoolStats,
    Tally,
    endpoint_label,
    stale_flags,
)
from .multicall import MULTICALL3
from .rpc import HttpRpc, RpcError

log = structlog.get_logger(__name__)

READ_METHODS = frozenset({
    "eth_blockNumber", "eth_call", "eth_chainId", "eth_estimateGas", "eth_feeHistory", "eth_gasPrice",
    "eth_getBalance", "eth_getBlockByHash", "eth_getBlockByNumber", "eth_getBlockReceipts", "eth_getCode",
    "eth_getLogs", "eth_getProof", "eth_getStorageAt", "eth_getTransactionByHash",
    "eth_getTransactionCount", "eth_getTransactionReceipt", "eth_maxPriorityFeePerGas", "eth_syncing",
    "net_version", "web3_clientVersion",
})  # fmt: skip
"""Idempotent reads: repeating one cannot change chain state. Anything else is sent exactly once."""

HEAD_ROUND_TIMEOUT_S = 1.0
"""A head round waits this long at most: an endpoint that has not answered by then (a hung node)
is left out of the rounds for `HEAD_SILENT_S`, its error ranking it down meanwhile, so one bad
node cannot hold every block back."""
HEAD_SILENT_S = 30.0
CHAIN_ID_TIMEOUT_S = 2.0
"""An endpoint is asked its chain id for this long at most: one that cannot answer that in time
(a hung node) is not waited on for the full request timeout before the next one is asked."""

_HTTP_STATUS = re.compile(r" HTTP (\d{3})\b")
_BLOCK_UNKNOWN = re.compile(
    r"header not found|unknown block|block not found|missing trie node|block .*(not found|does not exist)",
    re.IGNORECASE,
)
"""How nodes say they do not have a block (yet): geth, erigon, reth, nethermind, Anvil."""

Call = Callable[[HttpRpc], Awaitable[Any]]


def http_urls(urls: Sequence[str]) -> tuple[str, ...]:
    """The http(s) subset of ``chain.rpc_urls`` (WebSocket URLs feed the block stream, not the pool)."""
    selected = tuple(url for url in urls if url.startswith(("http://", "https://")))
    if not selected:
        raise UsageError("chain.rpc_urls: at least one http(s):// endpoint is needed for reads")
    return selected


def block_unknown(exc: RpcError) -> bool:
    """Whether a JSON-RPC error says the endpoint does not have the block asked for."""
    return _BLOCK_UNKNOWN.search(exc.message) is not None


def transport_error_kind(exc: Retryable) -> str:
    """Metric label for a transport failure raised by `HttpRpc` (from its cause or HTTP status)."""
    cause = exc.__cause__
    if isinstance(cause, TimeoutError):
        return "timeout"
    if isinstance(cause, aiohttp.ClientConnectorError):
        return "connection"
    if isinstance(cause, aiohttp.ClientError):
        return "transport"
    match = _HTTP_STATUS.search(str(exc))
    if match is not None:
        status = int(match.group(1))
        return "http_429" if status == 429 else f"http_{status // 100}xx"
    return "bad_response"


@dataclass(eq=False, slots=True)
class _Endpoint:
    index: int
    label: str
    url: str
    rpc: HttpRpc
    health: Health = field(default_factory=Health)
    tallies: dict[str, Tally] = field(default_factory=dict)
    silent_until_s: float = 0.0
    """Not asked in head rounds before this (it hung in one)."""
    chain_id: int | None = None
    """The chain it answered for, once asked; None: not asked since start or since it was unreachable."""

    def redact(self, message: str) -> str:
        return message.replace(self.url, self.label)


class RpcPool:
    """Several HTTP endpoints as one `Rpc`; see the module docstring for the failure policy.

    Without `metrics`, accounting goes to a private registry (still readable through `stats()`), so
    several pools can coexist; the daemon passes its one `Metrics` to have them exported.
    """

    def __init__(
        self,
        urls: Sequence[str],
        *,
        timeout_s: float = 10.0,
        max_head_lag_blocks: int = 3,
        max_attempts: int = 3,
        max_retry_s: float = 15.0,
        backoff_s: float = 0.2,
        max_backoff_s: float = 2.0,
        metrics: Metrics | None = None,
        multicall3: str = MULTICALL3,
        chain_id: int | None = None,
    ) -> None:
        """`max_attempts` rounds over every endpoint, no new round after `max_retry_s` (reads only).

        ``multicall3`` is where batched reads through this pool go (`keeper.chain.multicall`);
        ``chain_id``: serve nothing from an endpoint before it said it serves this chain."""
        if not urls:
            raise UsageError("RpcPool needs at least one endpoint")
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise UsageError(f"RpcPool takes http(s) endpoints only, not {endpoint_label(url)}")
        self.max_head_lag_blocks = max_head_lag_blocks
        self.multicall3 = multicall3
        self.chain_id = chain_id
        self._max_attempts = max_attempts
        self._max_retry_s = max_retry_s
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._metrics = metrics if metrics is not None else Metrics(CollectorRegistry())
        self._endpoints = [
            _Endpoint(index, label, url, HttpRpc(url, timeout_s))
            for index, (url, label) in enumerate(zip(urls, _unique_labels(urls), strict=True))
        ]
        self._heads_checked_s = -math.inf
        self._best_head: int | None = None

    async def __aenter__(self) -> RpcPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        for endpoint in self._endpoints:
            await endpoint.rpc.close()

    async def request(self, method: str, params: Sequence[Any] = ()) -> Any:
        return await self._dispatch(method, method in READ_METHODS, lambda rpc: rpc.request(method, params))

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """One HTTP request, accounted as method ``batch``; retried only if every call in it is a read."""
        if not calls:
            return []
        reads_only = all(method in READ_METHODS for method, _ in calls)
        result: list[Any] = await self._dispatch("batch", reads_only, lambda rpc: rpc.batch(calls))
        return result

    async def refresh_heads(self, max_age_s: float = 0.0) -> int | None:
        """Ask every endpoint for its head at once; demote those lagging the best by too much.

        The block stream's head poll calls this (`keeper.chain.blocks.chain_head`), and the stream
        before each fetch with ``max_age_s``: a check younger than that is not repeated (the best head
        it saw is returned; so is it with one endpoint, nothing to compare). Returns the best head, or
        None if nobody answered.
        """
        now_s = time.monotonic()
        if now_s - self._heads_checked_s < max_age_s or (max_age_s > 0 and len(self._endpoints) == 1):
            return self._best_head
        self._heads_checked_s = now_s
        asked = [e for e in self._serving() if now_s >= e.silent_until_s]
        answers = await asyncio.gather(*(self._bounded_head(endpoint) for endpoint in asked))
        by_index = {endpoint.index: head for endpoint, head in zip(asked, answers, strict=True)}
        heads = [by_index.get(endpoint.index) for endpoint in self._endpoints]
        best = max((head for head in heads if head is not None), default=None)
        for endpoint, head, stale in zip(
            self._endpoints, heads, stale_flags(heads, self.max_head_lag_blocks), strict=True
        ):
            if stale != endpoint.health.stale:
                event = "rpc_endpoint_stale" if stale else "rpc_endpoint_caught_up"
                log.warning(event, endpoint=endpoint.label, head=head, best_head=best)
            endpoint.health.head = head
            endpoint.health.stale = stale
        self._best_head = best
        return best

    def ranked(self) -> list[str]:
        """Endpoint labels, best first: the order a read tries them in."""
        return [endpoint.label for endpoint in self._ranked()]

    def stats(self) -> PoolStats:
        now_s = time.monotonic()
        return PoolStats(
            tuple(
                EndpointStats(
                    endpoint=endpoint.label,
                    head=endpoint.health.head,
                    stale=endpoint.health.stale,
                    score=endpoint.health.score(now_s),
                    methods={method: tally.frozen() for method, tally in endpoint.tallies.items()},
                )
                for endpoint in self._endpoints
            )
        )

    def _serving(self) -> list[_Endpoint]:
        """The endpoints not excluded for serving another chain."""
        if self.chain_id is None:
            return self._endpoints
        return [e for e in self._endpoints if e.chain_id in (None, self.chain_id)]

    def _wrong_chain(self) -> UsageError:
        answered = sorted({e.chain_id for e in self._endpoints if e.chain_id is not None})
        return UsageError(
            f"chain.chain_id is {self.chain_id} but the RPC endpoint serves chain "
            + ", ".join(str(c) for c in answered)
        )

    def _ranked(self) -> list[_Endpoint]:
        now_s = time.monotonic()
        serving = self._serving()
        if not serving:
            raise self._wrong_chain()
        return sorted(serving, key=lambda e: (e.health.stale, e.health.score(now_s), e.index))

    async def _dispatch(self, method: str, idempotent: bool, call: Call) -> Any:
        while not idempotent:
            try:
                return await self._once(self._ranked()[0], method, call)
            except _WrongChain:
                continue  # it was asked its chain id, nothing else: the send goes to the next one
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._max_attempts) | stop_after_delay(self._max_retry_s),
            wait=wait_random_exponential(multiplier=self._backoff_s, max=self._max_backoff_s),
            retry=retry_if_exception_type(Retryable),
            before_sleep=_log_retry,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._failover(method, call)
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def _failover(self, method: str, call: Call) -> Any:
        """One round: the endpoints in rank order until one answers; the last failure if none does."""
        last: Retryable | None = None
        unknown_block: RpcError | None = None
        for endpoint in self._ranked():
            try:
                return await self._once(endpoint, method, call)
            except Retryable as exc:
                last = exc
            except RpcError as exc:
                if not block_unknown(exc):
                    raise
                unknown_block = unknown_block or exc  # it lags: the next endpoint may have the block
        if not self._serving():  # the last one left turned out to serve another chain
            raise self._wrong_chain()
        if unknown_block is not None:
            raise unknown_block
        assert last is not None
        raise last

    async def _once(self, endpoint: _Endpoint, method: str, call: Call) -> Any:
        """One request to one endpoint, accounted; transport errors re-raised without the URL."""
        if self.chain_id is not None and endpoint.chain_id is None:
            await self._verify_chain(endpoint)
        return await self._accounted(endpoint, method, call)

    async def _verify_chain(self, endpoint: _Endpoint) -> None:
        """Ask ``endpoint`` its chain id; exclude it (and fail this attempt over) if it is another."""
        started_s = time.monotonic()
        try:
            answer = await asyncio.wait_for(
                self._accounted(endpoint, "eth_chainId", lambda rpc: rpc.request("eth_chainId")),
                CHAIN_ID_TIMEOUT_S,
            )
        except TimeoutError:
            self._record(endpoint, "eth_chainId", started_s, "timeout")
            log.warning("rpc_endpoint_failed", endpoint=endpoint.label, method="eth_chainId", kind="timeout")
            raise Retryable(
                f"eth_chainId: {endpoint.label} did not answer in {CHAIN_ID_TIMEOUT_S} s"
            ) from None
        try:
            chain_id = int(answer, 16)
        except (TypeError, ValueError):
            self._record(endpoint, "eth_chainId", time.monotonic(), "bad_response")
            raise Retryable(f"eth_chainId: {endpoint.label} answered {str(answer)[:60]!r}") from None
        endpoint.chain_id = chain_id
        if chain_id != self.chain_id:
            self._record(endpoint, "eth_chainId", time.monotonic(), "wrong_chain")
            log.error(
                "rpc_endpoint_wrong_chain", endpoint=endpoint.label, chain_id=chain_id, expected=self.chain_id
            )
            raise _WrongChain(f"{endpoint.label} serves chain {chain_id}, not {self.chain_id}: excluded")

    async def _accounted(self, endpoint: _Endpoint, method: str, call: Call) -> Any:
        started_s = time.monotonic()
        try:
            result = await call(endpoint.rpc)
        except RpcError as exc:
            lagging = block_unknown(exc)
            self._record(endpoint, method, started_s, "block_unknown" if lagging else "rpc_error")
            if lagging:
                log.warning("rpc_endpoint_lacks_block", endpoint=endpoint.label, method=method)
            raise
        except Retryable as exc:
            kind = transport_error_kind(exc)
            self._record(endpoint, method, started_s, kind)
            if kind in ("connection", "transport"):
                endpoint.chain_id = None  # whatever answers after a reconnect is asked again
            message = endpoint.redact(str(exc))
            log.warning(
                "rpc_endpoint_failed", endpoint=endpoint.label, method=method, kind=kind, error=message
            )
            raise Retryable(f"{method}: {message}") from None
        except ValueError as exc:  # a 200 whose body is not JSON: the endpoint is broken, not the call
            self._record(endpoint, method, started_s, "bad_response")
            message = f"{endpoint.label} answered malformed JSON: {str(exc)[:100]}"
            log.warning(
                "rpc_endpoint_failed",
                endpoint=endpoint.label,
                method=method,
                kind="bad_response",
                error=message,
            )
            raise Retryable(f"{method}: {message}") from None
        self._record(endpoint, method, started_s, None)
        return result

    async def _bounded_head(self, endpoint: _Endpoint) -> int | None:
        started_s = time.monotonic()
        try:
            return await asyncio.wait_for(self._head(endpoint), HEAD_ROUND_TIMEOUT_S)
        except TimeoutError:
            endpoint.silent_until_s = time.monotonic() + HEAD_SILENT_S
            self._record(endpoint, "eth_blockNumber", started_s, "timeout")
            log.warning("rpc_endpoint_silent", endpoint=endpoint.label, retry_in_s=HEAD_SILENT_S)
            return None

    async def _head(self, endpoint: _Endpoint) -> int | None:
        try:
            head = await self._once(endpoint, "eth_blockNumber", lambda rpc: rpc.request("eth_blockNumber"))
            return int(head, 16)
        except (Retryable, RpcError, ValueError, TypeError):  # no answer, or not a hex quantity
            return None

    def _record(self, endpoint: _Endpoint, method: str, started_s: float, error_kind: str | None) -> None:
        now_s = time.monotonic()
        latency_s = now_s - started_s
        failed = error_kind is not None and error_kind != "rpc_error"  # block_unknown: it lags
        endpoint.health.record(now_s, latency_s, failed)
        endpoint.tallies.setdefault(method, Tally()).add(latency_s, error_kind)
        self._metrics.observe_rpc(endpoint.label, method, latency_s, error_kind)


class _WrongChain(Retryable):
    """An endpoint turned out to serve another chain: fail over (it is excluded from now on)."""


def _unique_labels(urls: Sequence[str]) -> list[str]:
    """Labels, suffixed ``#2``, ``#3``... when two keys of one provider share a host."""
    seen: Counter[str] = Counter()
    labels = []
    for url in urls:
        label = endpoint_label(url)
        seen[label] += 1
        labels.append(label if seen[label] == 1 else f"{label}#{seen[label]}")
    return labels


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome is not None else None
    wait_s = state.next_action.sleep if state.next_action is not None else 0.0
    log.info("rpc_retry", attempt=state.attempt_number, wait_s=round(wait_s, 3), error=str(error))
