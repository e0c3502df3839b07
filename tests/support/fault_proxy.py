"""A fault-injecting JSON-RPC proxy in front of the devnet's Anvil, for what Anvil cannot produce.

HTTP and WebSocket on one port. Each HTTP request is answered according to the current `Fault`:
forwarded as is, answered for another chain, from a frozen head, with garbage or truncated JSON, not
at all (hangs), or with an HTTP 429 / 5xx. `set_fault` switches the fault from the test's thread,
for a number of requests or until switched again. WebSocket connections are relayed to Anvil's
and `cut_websockets` drops them all at once (the socket aborted, no close frame: what a dying
load balancer does).

Everything is counted: the requests answered with each fault (`bad`), and every JSON-RPC call
that reached Anvil through the proxy (`forwarded`) — which is what a test asserts on to prove a bad
endpoint fed nothing: an endpoint refused for its chain id must forward no call at all.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import Any

import aiohttp
from aiohttp import web

from .ports import free_port

OTHER_CHAIN_ID = 1
GARBAGE = b"\x00\xffnot json <html>502 bad gateway</html>"
HEADER_NOT_FOUND = {"code": -32000, "message": "header not found"}
"""What a node that lags the chain answers for a block it does not have (geth's wording)."""
PINNED_TO_A_BLOCK = frozenset({
    "eth_call", "eth_getBalance", "eth_getCode", "eth_getStorageAt", "eth_getTransactionCount",
    "eth_estimateGas",
})  # fmt: skip
"""Methods whose last parameter is a block (tag, number or EIP-1898 object)."""


class Fault(StrEnum):
    NONE = "none"
    WRONG_CHAIN = "wrong_chain"
    """``eth_chainId`` answers another chain; every other call is forwarded (and counted as a leak)."""
    FROZEN = "frozen"
    """The head stops where it was when the fault began: later blocks do not exist here."""
    GARBAGE = "garbage"
    TRUNCATED = "truncated"
    """Anvil's answer cut in the middle."""
    NO_RESULT = "no_result"
    """Well-formed JSON-RPC envelopes with neither ``result`` nor ``error`` (read as null, a null
    block or an empty call result would feed the book)."""
    HANG = "hang"
    """The request is read and not answered while the fault lasts (then: HTTP 504)."""
    HTTP_429 = "http_429"
    HTTP_503 = "http_503"


class FaultProxy:
    """Run with `serving()`; `url` / `ws_url` go into ``chain.rpc_urls``."""

    def __init__(self, upstream: str, fault: Fault = Fault.NONE) -> None:
        self.upstream = upstream
        self.upstream_ws = "ws" + upstream.removeprefix("http")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.bad: Counter[Fault] = Counter()
        """HTTP requests answered with each fault (not NONE)."""
        self.forwarded: Counter[str] = Counter()
        """JSON-RPC calls (by method) that reached Anvil and whose answer was returned."""
        self.ws_connections = 0
        self.ws_cuts = 0
        self._fault = fault
        self._fault_requests: int | None = None
        self._frozen_head: int | None = None
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._session: aiohttp.ClientSession | None = None
        self._sockets: set[asyncio.BaseTransport] = set()
        self._changed = asyncio.Event()
        """Set (and replaced) on the proxy's loop whenever the fault changes."""
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    # ------------------------------------------------------------------------------ test's thread

    @contextmanager
    def serving(self) -> Iterator[FaultProxy]:
        self._thread.start()
        runner = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        try:
            yield self
        finally:
            asyncio.run_coroutine_threadsafe(self._stop(runner), self._loop).result(timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()

    def set_fault(self, fault: Fault, requests: int | None = None) -> None:
        """From now on answer with ``fault``: for the next ``requests`` HTTP requests, or until changed."""
        with self._lock:
            self._fault, self._fault_requests = fault, requests
            if fault is not Fault.FROZEN:
                self._frozen_head = None
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._fault_changed)

    def _fault_changed(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    @property
    def fault(self) -> Fault:
        with self._lock:
            return self._fault

    def cut_websockets(self) -> int:
        """Abort every relayed WebSocket now; returns how many were cut."""

        def cut() -> int:
            sockets = list(self._sockets)
            for transport in sockets:
                transport.abort()
            return len(sockets)

        count = asyncio.run_coroutine_threadsafe(_call(cut), self._loop).result(timeout=5)
        self.ws_cuts += count
        return count

    # ----------------------------------------------------------------------------- proxy's loop

    async def _start(self) -> web.AppRunner:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        return runner

    async def _stop(self, runner: web.AppRunner) -> None:
        for transport in list(self._sockets):
            transport.abort()
        await runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def _take_fault(self) -> Fault:
        with self._lock:
            fault = self._fault
            if self._fault_requests is not None:
                self._fault_requests -= 1
                if self._fault_requests <= 0:
                    self._fault, self._fault_requests = Fault.NONE, None
            return fault

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._relay_websocket(request)
        body = await request.read()
        fault = self._take_fault()
        if fault is not Fault.NONE:
            self.bad[fault] += 1
        match fault:
            case Fault.HANG:  # until the client gives up, or the fault ends (then a gateway timeout)
                while self.fault is Fault.HANG:
                    await self._changed.wait()
                return web.Response(status=504, text="Gateway Timeout")
            case Fault.HTTP_429:
                return web.Response(status=429, text="Too Many Requests")
            case Fault.HTTP_503:
                return web.Response(status=503, text="Service Unavailable")
            case Fault.GARBAGE:
                return web.Response(status=200, body=GARBAGE, content_type="application/json")
            case Fault.NO_RESULT:
                payload = json.loads(body)
                calls = payload if isinstance(payload, list) else [payload]
                empty = [{"jsonrpc": "2.0", "id": call.get("id")} for call in calls]
                return web.json_response(empty if isinstance(payload, list) else empty[0])
            case Fault.TRUNCATED:
                answer = await self._forward_raw(body)
                return web.Response(
                    status=200, body=answer[: len(answer) // 2], content_type="application/json"
                )
            case _:
                payload = json.loads(body)
                calls = payload if isinstance(payload, list) else [payload]
                replies = [await self._answer(call, fault) for call in calls]
                out = replies if isinstance(payload, list) else replies[0]
                return web.json_response(out)

    async def _answer(self, call: dict[str, Any], fault: Fault) -> dict[str, Any]:
        method, params = call.get("method", ""), list(call.get("params", []))
        if fault is Fault.WRONG_CHAIN and method in ("eth_chainId", "net_version"):
            chain = hex(OTHER_CHAIN_ID) if method == "eth_chainId" else str(OTHER_CHAIN_ID)
            return {"jsonrpc": "2.0", "id": call.get("id"), "result": chain}
        if fault is Fault.FROZEN:
            frozen = await self._frozen(call)
            if frozen is not None:
                return frozen
            params = self._pinned(method, params)
        reply = json.loads(await self._forward_raw(json.dumps({**call, "params": params}).encode()))
        self.forwarded[method] += 1
        return dict(reply)

    async def _forward_raw(self, body: bytes) -> bytes:
        assert self._session is not None
        async with self._session.post(
            self.upstream, data=body, headers={"Content-Type": "application/json"}
        ) as response:
            return await response.read()

    async def _frozen(self, call: dict[str, Any]) -> dict[str, Any] | None:
        """A frozen node's own answer to ``call``, or None to forward it (pinned to the frozen head)."""
        if self._frozen_head is None:
            head = json.loads(await self._forward_raw(_request("eth_blockNumber")))["result"]
            with self._lock:
                self._frozen_head = self._frozen_head or int(head, 16)
        head = self._frozen_head
        method, params, ident = call.get("method"), call.get("params", []), call.get("id")
        if method == "eth_blockNumber":
            return {"jsonrpc": "2.0", "id": ident, "result": hex(head)}
        if method == "eth_getBlockByNumber" and await self._beyond(params[0], head):
            return {"jsonrpc": "2.0", "id": ident, "result": None}
        if method == "eth_getLogs" and await self._beyond(params[0].get("toBlock", "latest"), head):
            return {"jsonrpc": "2.0", "id": ident, "error": HEADER_NOT_FOUND}
        if method in PINNED_TO_A_BLOCK and params and await self._beyond(params[-1], head):
            return {"jsonrpc": "2.0", "id": ident, "error": HEADER_NOT_FOUND}
        return None

    async def _beyond(self, block: Any, head: int) -> bool:
        """Whether a block parameter (number, tag or EIP-1898 hash) names a block after ``head``."""
        if isinstance(block, dict):
            header = json.loads(
                await self._forward_raw(_request("eth_getBlockByHash", [block["blockHash"], False]))
            )
            return header.get("result") is None or int(header["result"]["number"], 16) > head
        return isinstance(block, str) and block.startswith("0x") and int(block, 16) > head

    def _pinned(self, method: str, params: list[Any]) -> list[Any]:
        """``latest`` / ``pending`` read at the frozen head instead."""
        assert self._frozen_head is not None
        if method in PINNED_TO_A_BLOCK and params and params[-1] in ("latest", "pending"):
            return [*params[:-1], hex(self._frozen_head)]
        if method == "eth_getBlockByNumber" and params and params[0] in ("latest", "pending"):
            return [hex(self._frozen_head), *params[1:]]
        return params

    async def _relay_websocket(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        downstream = web.WebSocketResponse(autoping=True)
        await downstream.prepare(request)
        transport = request.transport
        assert transport is not None
        self._sockets.add(transport)
        self.ws_connections += 1
        try:
            async with self._session.ws_connect(self.upstream_ws) as upstream:

                async def up() -> None:  # web3 sends its requests as binary frames
                    async for message in downstream:
                        if message.type == aiohttp.WSMsgType.TEXT:
                            await upstream.send_str(message.data)
                        elif message.type == aiohttp.WSMsgType.BINARY:
                            await upstream.send_bytes(message.data)

                async def down() -> None:
                    async for message in upstream:
                        if message.type == aiohttp.WSMsgType.TEXT:
                            await downstream.send_str(message.data)
                        elif message.type == aiohttp.WSMsgType.BINARY:
                            await downstream.send_bytes(message.data)

                tasks = [asyncio.ensure_future(up()), asyncio.ensure_future(down())]
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in tasks:
                    task.cancel()
        except (aiohttp.ClientError, ConnectionError):
            pass
        finally:
            self._sockets.discard(transport)
        return downstream


async def _call(fn: Any) -> Any:
    return fn()


def _request(method: str, params: list[Any] | None = None) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": 0, "method": method, "params": params or []}).encode()
