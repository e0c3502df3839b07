"""The WebSocket dropping every few blocks: no block skipped, liquidations still on time.

The keeper's newHeads come through a `FaultProxy` that aborts the socket every `CUT_EVERY_S`
seconds for `DROPS_S` seconds (``KEEPER_FAULTS_WS_S`` lengthens it: 60 is the minute of the soak);
reads go straight to Anvil. A crash lands in the middle of it. Every block number is applied and
screened (or passed over for a newer head, its changes screened with the next), every socket cut
is followed by a reconnect, the crash is liquidated within 2 blocks, and the end checks hold.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from tests.support.config import keeper_config
from tests.support.devnet import Devnet
from tests.support.fault_proxy import FaultProxy
from tests.support.keeper import KeeperProcess, named

from .local_checks import crash, end_checks, late_liquidations, settle
from .test_endpoints import CRASH_PERCENT, assert_no_block_missed, with_urls

DROPS_S = float(os.environ.get("KEEPER_FAULTS_WS_S", "16"))
CUT_EVERY_S = 3.0


def cut_repeatedly(proxy: FaultProxy, stop: threading.Event) -> None:
    while not stop.wait(CUT_EVERY_S):
        proxy.cut_websockets()


def test_a_websocket_dropped_every_few_blocks_skips_no_block_and_delays_no_liquidation(
    timed_devnet: Devnet, tmp_path: Path
) -> None:
    rpc, s = timed_devnet.rpc, timed_devnet.summary
    snapshot = rpc.call("evm_snapshot")
    with FaultProxy(s["rpc_url"]).serving() as proxy:
        config = with_urls(keeper_config(timed_devnet, tmp_path, "live"), [proxy.ws_url, s["rpc_url"]])
        stop = threading.Event()
        cutter = threading.Thread(target=cut_repeatedly, args=(proxy, stop), daemon=True)
        try:
            keeper = KeeperProcess(config)
            ready = keeper.wait_for(named("keeper_ready"), timeout_s=120)
            start = int(ready["block"])
            keeper.wait_for(named("websocket_connected"))
            began = time.monotonic()
            cutter.start()
            time.sleep(DROPS_S / 2)
            crashed = crash(timed_devnet, "WETH", CRASH_PERCENT)
            late = late_liquidations(timed_devnet, crashed, keeper.events, s["keeper_address"])
            time.sleep(max(0.0, began + DROPS_S - time.monotonic()))
            stop.set()
            cutter.join(timeout=10)
            last = rpc.block_number()
            keeper.wait_for(lambda e: e.get("event") == "block_handled" and e["block"] >= last)
            settle(timed_devnet)
            assert keeper.stop() == 0, keeper.lines[-5:]
            end_checks(timed_devnet, keeper, config, start + 1, tmp_path)
        finally:
            stop.set()
            assert rpc.call("evm_revert", [snapshot]) is True
            rpc.call("anvil_dropAllTransactions")
    cuts = proxy.ws_cuts
    assert cuts >= DROPS_S // CUT_EVERY_S - 1, cuts
    assert len(keeper.named("websocket_lost")) >= cuts
    assert len(keeper.named("websocket_connected")) >= cuts  # each cut followed by a reconnect
    assert len(crashed.became) >= 10 and late == [], (len(crashed.became), late)
    assert_no_block_missed(keeper.events)
    assert [e for e in keeper.events if e.get("level") == "error"] == []
