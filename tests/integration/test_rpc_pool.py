"""RpcPool and adaptive get_logs against the real devnet Anvil.

Anvil cannot answer HTTP 429/500, hang, lag behind, or refuse a large getLogs, so a small local
aiohttp proxy in front of it does exactly that on demand, and counts what it received.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest

from keeper.chain.logs import get_logs
from keeper.chain.pool import RpcPool, endpoint_label, http_urls
from keeper.chain.rpc import HttpRpc, RpcError
from keeper.errors import Retryable, UsageError
from keeper.obs.metrics import Metrics
from tests.conftest import Devnet, free_port

SECRET = "SECRET-API-KEY"
TIMEOUT_S = 1.0
"""Long enough that a loaded machine's scheduling stall does not turn a good read into a timeout
(the tallies of the healthy endpoint are exact); only the hang cases wait it out."""


def fast(urls: list[str], **options: Any) -> RpcPool:
    """A pool with short timeouts and backoffs, so failure paths run in milliseconds."""
    return RpcPool(urls, timeout_s=TIMEOUT_S, backoff_s=0.01, max_backoff_s=0.02, **options)


RAW_TX = "0x02f86c827a6980843b9aca00848321560082520894" + "11" * 20 + "80c0"


class FakeNode:
    """An HTTP JSON-RPC endpoint in front of Anvil that misbehaves in the mode it is set to."""

    def __init__(self, upstream: str, session: aiohttp.ClientSession) -> None:
        self.upstream = upstream
        self.mode = "forward"  # forward | 429 | 500 | hang
        self.head_lag = 0
        self.delay_s = 0.0
        self.max_log_range: int | None = None
        self.received: Counter[str] = Counter()
        self.refused_ranges = 0
        self.served_ranges: list[tuple[int, int]] = []
        self.url = ""
        self._session = session
        self.released = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        calls = body if isinstance(body, list) else [body]
        self.received.update(call["method"] for call in calls)
        await asyncio.sleep(self.delay_s)
        if self.mode == "429":
            return web.Response(status=429, text="Too Many Requests")
        if self.mode == "500":
            return web.Response(status=500, text="Internal Server Error")
        if self.mode == "hang":
            await self.released.wait()  # longer than the pool's timeout; set at teardown
            return web.Response(status=504)
        if isinstance(body, dict) and (refusal := self._refusal(body)) is not None:
            return web.json_response(refusal)
        async with self._session.post(self.upstream, json=body) as upstream:
            reply = await upstream.json()
        if isinstance(body, dict) and body["method"] == "eth_blockNumber" and self.head_lag:
            reply["result"] = hex(max(0, int(reply["result"], 16) - self.head_lag))
        return web.json_response(reply)

    def _refusal(self, body: dict[str, Any]) -> dict[str, Any] | None:
        if body["method"] != "eth_getLogs" or self.max_log_range is None:
            return None
        query = body["params"][0]
        low, high = int(query["fromBlock"], 16), int(query["toBlock"], 16)
        if high - low + 1 <= self.max_log_range:
            self.served_ranges.append((low, high))
            return None
        self.refused_ranges += 1
        error = {"code": -32005, "message": "query returned more than 10000 results"}
        return {"jsonrpc": "2.0", "id": body["id"], "error": error}


MakeNode = Callable[[], Awaitable[FakeNode]]


@pytest.fixture
async def make_node(devnet: Devnet) -> AsyncIterator[MakeNode]:
    """Start fake nodes on free ports (any path is served, like a provider's /v2/<key>)."""
    runners: list[tuple[web.AppRunner, FakeNode]] = []
    async with aiohttp.ClientSession() as session:

        async def make() -> FakeNode:
            node = FakeNode(devnet.summary["rpc_url"], session)
            app = web.Application()
            app.router.add_post("/{tail:.*}", node.handle)
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            host, port = runner.addresses[0][:2]
            node.url = f"http://{host}:{port}/v2/{SECRET}?apikey={SECRET}"
            runners.append((runner, node))
            return node

        try:
            yield make
        finally:
            for runner, node in runners:
                node.released.set()
                await runner.cleanup()


def errors_total(registry: CollectorRegistry, endpoint: str, method: str, kind: str) -> float | None:
    labels = {"endpoint": endpoint, "method": method, "kind": kind}
    return registry.get_sample_value("keeper_rpc_errors_total", labels)


@pytest.mark.parametrize(
    ("url", "label"),
    [
        ("https://eth-mainnet.g.alchemy.com/v2/abcdef123", "https://eth-mainnet.g.alchemy.com"),
        ("https://user:pass@rpc.example.org:8443/key?token=x", "https://rpc.example.org:8443"),
        ("http://[::1]:8545/", "http://[::1]:8545"),
    ],
)
def test_endpoint_label_keeps_scheme_host_and_port_only(url: str, label: str) -> None:
    assert endpoint_label(url) == label


async def test_two_keys_on_one_host_get_distinct_labels_and_ws_urls_are_refused() -> None:
    async with RpcPool([f"https://rpc.example.org/{SECRET}", "https://rpc.example.org/other"]) as pool:
        assert [e.endpoint for e in pool.stats().endpoints] == [
            "https://rpc.example.org",
            "https://rpc.example.org#2",
        ]
    with pytest.raises(UsageError, match="http"):
        RpcPool(["https://a.example", f"wss://b.example/{SECRET}"])
    assert http_urls(["ws://127.0.0.1:8545", "http://127.0.0.1:8545"]) == ("http://127.0.0.1:8545",)


@pytest.mark.parametrize(
    ("mode", "kind"),
    [("429", "http_429"), ("500", "http_5xx"), ("hang", "timeout"), ("refused", "connection")],
)
async def test_reads_fail_over_and_errors_are_counted_by_kind(
    devnet: Devnet, make_node: MakeNode, mode: str, kind: str
) -> None:
    node = await make_node()
    node.mode = mode
    bad_url = f"http://127.0.0.1:{free_port()}/{SECRET}" if mode == "refused" else node.url
    bad, good = endpoint_label(bad_url), endpoint_label(devnet.summary["rpc_url"])
    registry = CollectorRegistry()
    async with fast([bad_url, devnet.summary["rpc_url"]], metrics=Metrics(registry)) as pool:
        assert await pool.request("eth_chainId") == hex(31337)
        assert await pool.request("eth_chainId") == hex(31337)  # straight to the healthy one now
        assert pool.ranked() == [good, bad]
        stats = {e.endpoint: e.methods["eth_chainId"] for e in pool.stats().endpoints}
    assert (stats[bad].requests, stats[bad].errors) == (1, {kind: 1})
    assert (stats[good].requests, stats[good].errors) == (2, {})
    assert node.received["eth_chainId"] == (0 if mode == "refused" else 1)
    assert errors_total(registry, bad, "eth_chainId", kind) == 1
    assert (
        registry.get_sample_value("keeper_rpc_requests_total", {"endpoint": good, "method": "eth_chainId"})
        == 2
    )
    latency = {"endpoint": bad, "method": "eth_chainId"}
    assert registry.get_sample_value("keeper_rpc_latency_seconds_count", latency) == 1
    assert SECRET not in generate_latest(registry).decode()


async def test_reads_are_retried_with_backoff_until_the_attempt_budget(make_node: MakeNode) -> None:
    node = await make_node()
    node.mode = "500"
    async with fast([node.url], max_attempts=3) as pool:
        with pytest.raises(Retryable, match="HTTP 500") as caught:
            await pool.request("eth_blockNumber")
        assert pool.stats().by_method()["eth_blockNumber"].errors == {"http_5xx": 3}
    assert node.received["eth_blockNumber"] == 3
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize("mode", ["500", "hang"])
async def test_send_raw_transaction_is_sent_once_and_never_retried(make_node: MakeNode, mode: str) -> None:
    first, second = await make_node(), await make_node()
    first.mode = mode
    async with fast([first.url, second.url], max_attempts=5) as pool:
        with pytest.raises(Retryable):
            await pool.request("eth_sendRawTransaction", [RAW_TX])
    assert first.received["eth_sendRawTransaction"] == 1
    assert second.received["eth_sendRawTransaction"] == 0


async def test_a_batch_is_retried_only_if_every_call_is_a_read(make_node: MakeNode) -> None:
    node = await make_node()
    node.mode = "500"
    async with fast([node.url], max_attempts=3) as pool:
        with pytest.raises(Retryable):
            await pool.batch([("eth_chainId", []), ("eth_sendRawTransaction", [RAW_TX])])
        with pytest.raises(Retryable):
            await pool.batch([("eth_chainId", []), ("eth_blockNumber", [])])
    assert (node.received["eth_sendRawTransaction"], node.received["eth_blockNumber"]) == (1, 3)


async def test_a_read_batch_fails_over(devnet: Devnet, make_node: MakeNode) -> None:
    node = await make_node()
    node.mode = "429"
    async with fast([node.url, devnet.summary["rpc_url"]]) as pool:
        chain_id, head = await pool.batch([("eth_chainId", []), ("eth_blockNumber", [])])
        assert pool.stats().endpoints[0].methods["batch"].errors == {"http_429": 1}
    assert chain_id == hex(31337) and int(head, 16) > 0
    assert node.received["eth_blockNumber"] == 1


async def test_rpc_error_is_raised_without_failover_or_retry(devnet: Devnet, make_node: MakeNode) -> None:
    first, second = await make_node(), await make_node()
    revert = {"to": devnet.summary["aave"]["pool"], "data": "0xdeadbeef"}
    async with fast([first.url, second.url]) as pool:
        with pytest.raises(RpcError, match="revert"):
            await pool.request("eth_call", [revert, "latest"])
        with pytest.raises(RpcError):  # a node-rejected send is an RpcError too: once, no failover
            await pool.request("eth_sendRawTransaction", ["0x00"])
        stats = pool.stats().endpoints[0].methods
    assert (first.received["eth_call"], second.received["eth_call"]) == (1, 0)
    assert first.received["eth_sendRawTransaction"] + second.received["eth_sendRawTransaction"] == 1
    assert stats["eth_call"].errors == {"rpc_error": 1}


@pytest.mark.parametrize(("lag", "stale"), [(0, False), (3, False), (4, True), (10, True)])
async def test_refresh_heads_flags_endpoints_lagging_more_than_the_bound(
    make_node: MakeNode, lag: int, stale: bool
) -> None:
    lagging, current = await make_node(), await make_node()
    lagging.head_lag = lag
    async with fast([lagging.url, current.url], max_head_lag_blocks=3) as pool:
        best = await pool.refresh_heads()
        assert best is not None and best >= 10
        assert [(e.head, e.stale) for e in pool.stats().endpoints] == [(best - lag, stale), (best, False)]


async def test_a_hung_endpoint_holds_a_head_round_back_once_not_every_block(make_node: MakeNode) -> None:
    """Its head round is bounded by HEAD_ROUND_TIMEOUT_S (not the 10 s request timeout), then the
    hung node is left out of rounds for HEAD_SILENT_S while the others keep answering."""
    hung, current = await make_node(), await make_node()
    hung.mode = "hang"
    async with RpcPool([hung.url, current.url], timeout_s=10.0) as pool:
        started_s = time.monotonic()
        best = await pool.refresh_heads()
        assert best is not None and time.monotonic() - started_s < 5.0
        asked = hung.received["eth_blockNumber"]
        for _ in range(3):
            assert await pool.refresh_heads() is not None
        assert hung.received["eth_blockNumber"] == asked == 1
        assert current.received["eth_blockNumber"] == 4
        assert pool.ranked()[0] == endpoint_label(current.url)
        assert pool.stats().endpoints[0].methods["eth_blockNumber"].errors == {"timeout": 1}
        hung.released.set()


async def test_a_stale_endpoint_gets_no_reads_until_it_catches_up(make_node: MakeNode) -> None:
    lagging, current = await make_node(), await make_node()
    lagging.head_lag = 10
    current.delay_s = 0.02  # by latency alone the lagging one would win
    async with fast([lagging.url, current.url]) as pool:
        await pool.refresh_heads()
        assert pool.ranked() == [endpoint_label(current.url), endpoint_label(lagging.url)]
        for _ in range(5):
            await pool.request("eth_chainId")
        assert (lagging.received["eth_chainId"], current.received["eth_chainId"]) == (0, 5)
        current.mode = "500"  # a stale endpoint is still better than none: last resort
        assert await pool.request("eth_chainId") == hex(31337)
        assert lagging.received["eth_chainId"] == 1
        current.mode, lagging.head_lag = "forward", 0
        await pool.refresh_heads()
        assert [e.stale for e in pool.stats().endpoints] == [False, False]


@pytest.fixture
async def aave_logs(devnet: Devnet) -> tuple[int, list[dict[str, Any]]]:
    """The head and every Aave pool log from genesis, in one eth_getLogs."""
    async with HttpRpc(devnet.summary["rpc_url"]) as rpc:
        head = int(await rpc.request("eth_blockNumber"), 16)
        query = {"address": devnet.summary["aave"]["pool"], "fromBlock": "0x0", "toBlock": hex(head)}
        logs: list[dict[str, Any]] = await rpc.request("eth_getLogs", [query])
    assert len(logs) > 100 and len({log["blockNumber"] for log in logs}) > 3
    return head, logs


async def test_get_logs_in_chunks_equals_one_get_logs(
    devnet: Devnet, aave_logs: tuple[int, list[dict[str, Any]]]
) -> None:
    head, expected = aave_logs
    progress: list[tuple[int, int]] = []
    async with RpcPool([devnet.summary["rpc_url"]]) as pool:
        logs = await get_logs(
            pool,
            [devnet.summary["aave"]["pool"]],
            [],
            0,
            head,
            initial_span=4,
            on_progress=lambda *p: progress.append(p),
        )
        topic = expected[-1]["topics"][0]
        filtered = await get_logs(pool, [devnet.summary["aave"]["pool"]], [topic], 0, head, initial_span=4)
    assert logs == expected
    assert filtered == [log for log in expected if log["topics"][0] == topic] != []
    assert progress[-1] == (head + 1, head + 1) and len(progress) > 2
    assert [done for done, _ in progress] == sorted({done for done, _ in progress})


async def test_get_logs_halves_refused_ranges_and_still_returns_the_identical_list(
    devnet: Devnet, make_node: MakeNode, aave_logs: tuple[int, list[dict[str, Any]]]
) -> None:
    head, expected = aave_logs
    node = await make_node()
    node.max_log_range = 3
    async with RpcPool([node.url]) as pool:
        logs = await get_logs(pool, [devnet.summary["aave"]["pool"]], [], 0, head, initial_span=64)
    assert logs == expected
    assert node.refused_ranges >= 5  # 64 -> 32 -> 16 -> 8 -> 4 -> 2, then every regrowth to 4
    served = node.served_ranges  # on the wire: contiguous from 0 to head, no block twice
    assert served[0][0] == 0 and served[-1][1] == head
    assert all(nxt[0] == prev[1] + 1 for prev, nxt in itertools.pairwise(served))
