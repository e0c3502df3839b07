"""Helpers for the position-sync tests: build a sync against a devnet, compare books, a TCP proxy."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from pathlib import Path

from keeper.chain.rpc import HttpRpc
from keeper.config import load_config
from keeper.protocols.base import PositionKey
from keeper.protocols.registry import build_adapter
from keeper.state.store import Store
from keeper.state.sync import PositionSync, tracked_protocols
from tests.support.devnet import Devnet

Health = tuple[str, str, int, int, int]


@dataclass(frozen=True)
class Book:
    """What a synced keeper knows at one block: who is tracked, and everyone's exact health."""

    block: int
    positions: dict[str, frozenset[PositionKey]]
    health: dict[str, tuple[Health, ...]]


def new_sync(devnet: Devnet, rpc: HttpRpc, store: Store) -> PositionSync:
    config = load_config(devnet.config_path)
    return PositionSync(rpc, store, tracked_protocols(config.protocols, build_adapter))


def book(sync: PositionSync) -> Book:
    assert sync.head is not None
    return Book(
        sync.head.number,
        {t.name: frozenset(sync.store.positions(t.name)) for t in sync.protocols},
        {
            t.name: tuple(
                sorted(
                    (h.market, h.user, h.health_factor_wad, h.collateral_base, h.debt_base)
                    for h in t.adapter.health(sync.head.timestamp)
                )
            )
            for t in sync.protocols
        },
    )


async def fresh_book(devnet: Devnet, store_path: Path) -> Book:
    """A from-scratch resync into a new store: the reference every followed book must equal."""
    async with HttpRpc(devnet.summary["rpc_url"]) as rpc:
        with Store.open(store_path) as store:
            sync = new_sync(devnet, rpc, store)
            await sync.start()
            return book(sync)


class TcpProxy:
    """Forwards a local port to Anvil; `cut` drops every connection and refuses new ones for a while.

    A fake for what Anvil cannot do by itself: lose a WebSocket in the middle of a run.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.accepting = True
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self.accepting = False
        self._server.close()
        for _ in range(3):  # connections accepted just before close start their handler a tick later
            await asyncio.sleep(0.05)
            writers = list(self._writers)
            self._drop_all()
            for task in list(self._handlers):
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)
            for writer in writers:  # let every transport finish closing before the loop goes away
                with contextlib.suppress(ConnectionError, OSError):
                    await writer.wait_closed()
        await self._server.wait_closed()

    def _drop_all(self) -> None:
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def cut(self, down_s: float) -> None:
        self.accepting = False
        self._drop_all()
        await asyncio.sleep(down_s)
        self.accepting = True

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._serve(client_reader, client_writer)
        finally:
            self._handlers.discard(task)

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self._writers.add(client_writer)
        if not self.accepting:
            client_writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await client_writer.wait_closed()
            return
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers |= {client_writer, upstream_writer}
        await asyncio.gather(
            _pipe(client_reader, upstream_writer),
            _pipe(upstream_reader, client_writer),
            return_exceptions=True,
        )
        for writer in (client_writer, upstream_writer):
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    writer.close()
