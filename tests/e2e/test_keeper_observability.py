"""What an operator sees: /metrics moves with a liquidation, /readyz follows sync and the RPC."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import aiohttp
import pytest

from keeper.config import load_config
from tests.conftest import Devnet, free_port, run_keeper
from tests.integration.sync_support import TcpProxy
from tests.support.config import changed, write_config

from .keeper_process import KeeperProcess, keeper_config
from .scenario import move_price, wait_for_block

pytestmark = pytest.mark.integration

SAMPLE = re.compile(r"^(keeper_\w+)(\{[^}]*\})? (\S+)$", re.MULTILINE)


def samples(text: str) -> dict[str, float]:
    return {name + (labels or ""): float(value) for name, labels, value in SAMPLE.findall(text)}


def key(name: str, **labels: str) -> str:
    """A sample's key as the exposition format writes it (labels sorted by name)."""
    inner = ",".join(f'{label}="{value}"' for label, value in sorted(labels.items()))
    return f"{name}{{{inner}}}" if labels else name


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as response:
        return response.status, await response.text()


def proxied_config(devnet: Devnet, directory: Path, proxy_port: int, status_port: int) -> Path:
    """A live keeper reaching the devnet through the proxy, its head considered old after 3 s."""
    config = keeper_config(devnet, directory, "live")
    loaded = load_config(config, {})
    through_proxy = [u.replace(f":{devnet.port}", f":{proxy_port}") for u in loaded.chain.rpc_urls]
    changes = {
        "chain": {"rpc_urls": through_proxy},
        "metrics": {"listen": f"127.0.0.1:{status_port}", "ready_max_head_age_s": 3},
    }
    return write_config(changed(loaded, changes), config)


async def test_metrics_move_with_a_liquidation_and_readiness_follows_the_rpc(
    timed_devnet: Devnet, tmp_path: Path
) -> None:
    rpc = timed_devnet.rpc
    port = free_port()
    snapshot = rpc.call("evm_snapshot")
    try:
        async with TcpProxy(timed_devnet.port) as proxy, aiohttp.ClientSession() as session:
            keeper = KeeperProcess(proxied_config(timed_devnet, tmp_path, proxy.port, port))
            base = f"http://127.0.0.1:{port}"
            await asyncio.to_thread(keeper.wait_for, lambda e: e.get("event") == "keeper_ready")
            # the gauges are set by the first screened block: the baseline is taken after one
            await asyncio.to_thread(keeper.wait_for, lambda e: e.get("event") == "block_handled")
            status, body = await get(session, base + "/readyz")
            assert status == 200 and '"ready": true' in body
            assert (await get(session, base + "/healthz"))[0] == 200
            status = await asyncio.to_thread(run_keeper, "status", "--url", base)
            assert status.returncode == 0 and "ready         True" in status.stdout
            before = samples((await get(session, base + "/metrics"))[1])

            move = await asyncio.to_thread(move_price, timed_devnet, "WETH", "-25")
            await asyncio.to_thread(wait_for_block, rpc, move.block + 3)
            await asyncio.to_thread(
                keeper.wait_for, lambda e: e.get("event") == "block_handled" and e["block"] >= move.block + 2
            )
            after = samples((await get(session, base + "/metrics"))[1])
            positions = (await get(session, base + "/positions"))[1]

            await proxy.cut(down_s=0)  # drop the keeper's connections; refuse new ones from now on
            proxy.accepting = False
            deadline = time.monotonic() + 30
            while (await get(session, base + "/readyz"))[0] != 503:
                assert time.monotonic() < deadline, "never turned not-ready with its RPC cut"
                await asyncio.sleep(0.5)
            status = await asyncio.to_thread(run_keeper, "status", "--url", base)
            assert status.returncode == 1 and "no new block processed recently" in status.stdout
            proxy.accepting = True
            assert keeper.stop() == 0
    finally:
        assert rpc.call("evm_revert", [snapshot]) is True
        rpc.call("anvil_dropAllTransactions")

    def moved(key: str) -> float:
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert moved(key("keeper_opportunities_total", protocol="aave", outcome="seen")) >= 100
    assert moved(key("keeper_opportunities_total", protocol="aave", outcome="won")) >= 100
    assert moved(key("keeper_opportunities_total", protocol="morpho", outcome="won")) >= 100
    assert moved(key("keeper_opportunities_total", protocol="aave", outcome="reverted")) == 0
    assert moved("keeper_gas_spent_wei_total") > 0 and moved("keeper_profit_expected_wei_total") > 0
    for stage in ("received_to_screened", "screened_to_simulated", "simulated_to_sent", "sent_to_included"):
        assert moved(key("keeper_stage_latency_seconds_count", stage=stage)) >= 1, stage
    assert moved("keeper_head_block") >= 3
    near = key("keeper_positions_below_health", protocol="aave", threshold="1.1")
    assert after[near] != before[near]  # the crash and its liquidations moved the gauge
    # v3.6 liquidates small positions in full and burns what no collateral covers: under 1 are left
    # only the positions a liquidation grace period protects
    below = key("keeper_positions_below_health", protocol="aave", threshold="1.0")
    protected = timed_devnet.summary["aave"]["cases"]["grace_period"]
    assert before[below] == 0 and after[below] == len(protected) > 0
    assert any(k.startswith("keeper_rpc_requests_total") for k in after)
    assert '"positions"' in positions and '"health_factor_wad"' in positions
