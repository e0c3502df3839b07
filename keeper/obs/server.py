"""The status HTTP server: /metrics, /healthz, /readyz, /positions (aiohttp, on the keeper's loop).

/healthz answers as long as the event loop turns (the server runs on the keeper's own loop, so a
blocked loop is a probe that times out); /readyz says whether the keeper is synced close to the
chain head and still receiving blocks. Both are
what a container orchestrator polls; /positions is what `keeper positions --json` prints.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from keeper.obs.metrics import Metrics

Readiness = Callable[[], tuple[bool, dict[str, Any]]]


class StatusServer:
    def __init__(
        self, listen: str, metrics: Metrics, readiness: Readiness, positions: Callable[[], dict[str, Any]]
    ) -> None:
        host, _, port = listen.rpartition(":")
        self.host, self.port = host, int(port)
        self.metrics = metrics
        self.readiness = readiness
        self.positions = positions

    def application(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/positions", self._positions)
        return app

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[None]:
        """Listen for the duration of the block (start-up sync included)."""
        runner = web.AppRunner(self.application(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, self.host, self.port).start()
        try:
            yield
        finally:
            await runner.cleanup()

    async def _metrics(self, _: web.Request) -> web.Response:
        ready, _details = self.readiness()
        self.metrics.ready.set(1 if ready else 0)
        body = generate_latest(self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.json_response({"healthy": True})

    async def _readyz(self, _: web.Request) -> web.Response:
        ready, details = self.readiness()
        self.metrics.ready.set(1 if ready else 0)
        return web.json_response({"ready": ready, **details}, status=200 if ready else 503)

    async def _positions(self, _: web.Request) -> web.Response:
        return web.Response(text=json.dumps(self.positions()), content_type="application/json")
