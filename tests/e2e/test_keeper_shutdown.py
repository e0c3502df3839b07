"""SIGTERM: no new liquidations, in-flight ones settle, exit 0, the store consistent. A second
signal exits at once."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from keeper.state.store import Store
from keeper.state.txstate import TxState
from tests.conftest import Devnet

from .keeper_process import KeeperProcess, keeper_config
from .scenario import move_price

pytestmark = pytest.mark.integration


def test_sigterm_lets_in_flight_liquidations_settle(timed_devnet: Devnet, tmp_path: Path) -> None:
    rpc = timed_devnet.rpc
    snapshot = rpc.call("evm_snapshot")
    try:
        keeper = KeeperProcess(keeper_config(timed_devnet, tmp_path, "live"))
        keeper.wait_for(lambda e: e.get("event") == "keeper_ready")
        move_price(timed_devnet, "WETH", "-25")
        keeper.wait_for(lambda e: e.get("event") == "liquidation_sent")
        keeper.proc.send_signal(signal.SIGTERM)  # while the liquidations are in flight
        assert keeper.wait() == 0
    finally:
        assert rpc.call("evm_revert", [snapshot]) is True
        rpc.call("anvil_dropAllTransactions")
    sent = {e["tx"] for e in keeper.named("liquidation_sent")}
    mined = {e["tx"] for e in keeper.named("liquidation_mined")}
    assert keeper.named("shutdown_requested") and len(sent) >= 100
    assert sent == mined  # waited for every one of them
    stopped = keeper.named("keeper_stopped")[0]
    assert stopped["block"] > min(e["block"] for e in keeper.named("liquidation_sent"))
    with Store.open(tmp_path / "store.sqlite") as store:
        assert store.in_flight() == []
        assert {tx.tx_hash for tx in store.transactions(TxState.MINED)} == sent


def test_a_second_signal_stops_at_once(timed_devnet: Devnet, tmp_path: Path) -> None:
    rpc = timed_devnet.rpc
    snapshot = rpc.call("evm_snapshot")
    try:
        keeper = KeeperProcess(keeper_config(timed_devnet, tmp_path, "live", shutdown_grace_s="600"))
        keeper.wait_for(lambda e: e.get("event") == "keeper_ready")
        rpc.call("evm_setIntervalMining", [0])  # nothing gets mined: what is sent stays in flight
        move_price(timed_devnet, "WETH", "-25")
        rpc.call("evm_setIntervalMining", [0])
        rpc.call("evm_mine")
        keeper.wait_for(lambda e: e.get("event") == "liquidation_sent")
        keeper.proc.send_signal(signal.SIGTERM)
        keeper.wait_for(lambda e: e.get("event") == "shutdown_requested")
        started = time.monotonic()
        assert keeper.stop() == 0  # the second signal
        assert time.monotonic() - started < 5
    finally:
        rpc.call("evm_setIntervalMining", [1])
        assert rpc.call("evm_revert", [snapshot]) is True
        rpc.call("anvil_dropAllTransactions")
    with Store.open(tmp_path / "store.sqlite") as store:  # what was sent is still known: a restart resumes it
        assert {tx.tx_hash for tx in store.in_flight()} == {e["tx"] for e in keeper.named("liquidation_sent")}
