"""A frozen endpoint behind the block stream: two real Anvils, one stops mining while the other advances.

The pool ranks never-measured endpoints by their order, so the frozen one is listed first: if the
stream trusted the top-ranked endpoint's ``eth_blockNumber`` it would wait at the frozen head
forever. It must instead see the best head of both, demote the frozen one, read from the fresh one,
and give the frozen one its reads back once it has caught up.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from keeper.chain.blocks import BlockStream, PollingHeads, WebSocketHeads
from keeper.chain.pool import RpcPool, endpoint_label
from keeper.chain.rpc import HttpRpc
from keeper.chain.types import LogFilter
from keeper.devnet.rpc import Rpc as SyncRpc
from keeper.devnet.toolchain import find_anvil, toolchain
from tests.support.ports import free_port

pytestmark = pytest.mark.integration

NOTHING = LogFilter(("0x" + "00" * 20,), ("0x" + "00" * 32,))
"""No contract on these bare chains emits logs: the stream fetches headers (and an empty log list)."""
MAX_LAG = 3


@dataclass(frozen=True)
class Anvil:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


def start(binary: str, log_path: Path) -> Anvil:
    """An Anvil that mines only when told (no transactions arrive): its head is frozen until `mine`."""
    port = free_port()
    with log_path.open("wb") as log:
        args = [binary, "--host", "127.0.0.1", "--port", str(port)]
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    node = Anvil(process, port)
    deadline = time.monotonic() + 20
    while True:
        try:
            SyncRpc(node.rpc_url, timeout_s=1).call("eth_chainId")
            return node
        except Exception:
            if process.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.fixture
def anvils(tmp_path: Path) -> Iterator[tuple[Anvil, Anvil]]:
    binary = find_anvil(toolchain())
    started: list[Anvil] = []
    try:
        for index in range(2):
            started.append(start(binary, tmp_path / f"anvil-{index}.log"))
        yield started[0], started[1]
    finally:
        for node in started:
            node.process.terminate()
            node.process.wait(timeout=10)


def mine(node: Anvil, blocks: int) -> int:
    """Mine ``blocks`` blocks on ``node``; returns its new head."""
    rpc = SyncRpc(node.rpc_url)
    rpc.call("anvil_mine", [hex(blocks)])
    return rpc.block_number()


def block_hash(node: Anvil, number: int) -> str:
    header = SyncRpc(node.rpc_url).call("eth_getBlockByNumber", [hex(number), False])
    value: str = header["hash"]
    return value


def stale_by_endpoint(pool: RpcPool) -> dict[str, bool]:
    return {e.endpoint: e.stale for e in pool.stats().endpoints}


def served(pool: RpcPool, method: str) -> dict[str, int]:
    """Requests of ``method`` each endpoint answered (``batch``: a block's header and logs)."""
    by_endpoint = {e.endpoint: e.methods.get(method) for e in pool.stats().endpoints}
    return {endpoint: stats.requests if stats else 0 for endpoint, stats in by_endpoint.items()}


async def test_polling_stream_demotes_a_frozen_endpoint_and_restores_it_once_caught_up(
    anvils: tuple[Anvil, Anvil],
) -> None:
    frozen, fresh = anvils
    frozen_label, fresh_label = endpoint_label(frozen.rpc_url), endpoint_label(fresh.rpc_url)
    fresh_head = mine(fresh, 10)  # the frozen one stays at genesis
    async with RpcPool([frozen.rpc_url, fresh.rpc_url], max_head_lag_blocks=MAX_LAG) as pool:
        heads = PollingHeads(pool, poll_interval_s=0.02)
        stream = BlockStream(pool, heads, lambda: NOTHING, head_check_s=0.05)
        block = await asyncio.wait_for(stream.block(fresh_head - 2), timeout=10)
        assert block.hash == block_hash(fresh, fresh_head - 2)
        assert stale_by_endpoint(pool) == {frozen_label: True, fresh_label: False}
        assert pool.ranked() == [fresh_label, frozen_label]
        for number in range(fresh_head - 1, fresh_head + 1):
            assert (await stream.block(number)).hash == block_hash(fresh, number)
        assert served(pool, "batch") == {frozen_label: 0, fresh_label: 3}  # every read went to the fresh one

        frozen_head = mine(frozen, 20)  # it catches up and overtakes; now the other one lags by 10
        await asyncio.sleep(0.06)  # older than head_check_s: the next fetch re-checks the heads
        block = await asyncio.wait_for(stream.block(frozen_head - 1), timeout=10)
        assert block.hash == block_hash(frozen, frozen_head - 1)
        assert stale_by_endpoint(pool) == {frozen_label: False, fresh_label: True}
        assert served(pool, "batch") == {frozen_label: 1, fresh_label: 3}


async def test_websocket_heads_from_elsewhere_still_demote_a_frozen_pool_endpoint(
    anvils: tuple[Anvil, Anvil],
) -> None:
    """Heads come from the fresh node itself (newHeads, polling it while the socket is not up), never
    from the pool: only the stream's own check before a fetch can demote the frozen endpoint."""
    frozen, fresh = anvils
    frozen_label, fresh_label = endpoint_label(frozen.rpc_url), endpoint_label(fresh.rpc_url)
    async with (
        HttpRpc(fresh.rpc_url) as direct,
        RpcPool([frozen.rpc_url, fresh.rpc_url], max_head_lag_blocks=MAX_LAG) as pool,
    ):
        heads = WebSocketHeads(fresh.ws_url, direct, poll_interval_s=5.0)
        stream = BlockStream(pool, heads, lambda: NOTHING, head_check_s=0.05)
        async with asyncio.timeout(20), asyncio.TaskGroup() as group:
            listener = group.create_task(heads.run())
            fresh_head = mine(fresh, 10)
            block = await stream.block(fresh_head)
            listener.cancel()
    assert heads.best_head == fresh_head
    assert block.hash == block_hash(fresh, fresh_head)
    assert stale_by_endpoint(pool) == {frozen_label: True, fresh_label: False}


def head_checks(pool: RpcPool) -> list[int]:
    return list(served(pool, "eth_blockNumber").values())


async def test_the_stream_check_costs_one_request_per_endpoint_per_interval_and_none_alone(
    anvils: tuple[Anvil, Anvil],
) -> None:
    first, second = anvils
    async with RpcPool([first.rpc_url, second.rpc_url]) as pool:
        assert await pool.refresh_heads() == 0
        for _ in range(5):  # younger than max_age_s: answered from the last check
            assert await pool.refresh_heads(max_age_s=60) == 0
        assert head_checks(pool) == [1, 1]
        mine(second, 2)
        assert await pool.refresh_heads() == 2  # max_age_s=0, the head poll's call: always asks
        assert head_checks(pool) == [2, 2]
    async with RpcPool([first.rpc_url]) as alone:
        await alone.refresh_heads(max_age_s=0.001)
        await asyncio.sleep(0.01)
        await alone.refresh_heads(max_age_s=0.001)  # one endpoint: nothing to compare, nothing asked
        assert head_checks(alone) == [0]
        assert await alone.refresh_heads() == 0
