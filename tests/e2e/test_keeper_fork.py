"""`keeper run --fork` against a fork of the 1-second devnet: the keeper liquidates on the fork only.

The devnet's own config (dry-run, its store path) with ``--fork``: the keeper starts an Anvil fork
of the devnet at its head and says where (``fork_started``); the test moves WETH -10 % *on the
fork*, the keeper liquidates there, and its JSON report must match the fork's receipts, while the
devnet itself sees no keeper transaction, keeps its price and its blocks, and the fork's Anvil is
gone when the keeper has exited.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from eth_utils.crypto import keccak

from keeper.devnet.abi import decode_result, encode_call
from keeper.devnet.feeds import discover_feeds
from keeper.devnet.rpc import Rpc
from tests.conftest import Devnet
from tests.support.config import variant
from tests.support.keeper import KEEPER_KEY, LoggedProcess, run_keeper

from .scenario import move_price, transactions_from, wait_for_block

pytestmark = pytest.mark.integration

TRANSFER = "0x" + keccak(text="Transfer(address,address,uint256)").hex()


class ForkedKeeper(LoggedProcess):
    """`keeper run --config config --fork ...`: JSON log events from stderr, the report on stdout."""

    def __init__(self, config: Path, report: Path, *args: str) -> None:
        self.report_path = report
        out = report.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "keeper", "run", "--config", str(config), "--fork", *args],
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ, KEEPER_PRIVATE_KEY=KEEPER_KEY),
        )
        out.close()
        self.label = "keeper run --fork"
        self.stream = self.proc.stderr
        self.events = []
        self.lines = []
        self.log_path = config.with_name("keeper.log")
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def report(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.report_path.read_text())
        return loaded


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def flows(receipt: dict[str, Any], holder: str) -> dict[str, int]:
    """The holder's token gains in a receipt, from raw Transfer topics (independent of the keeper)."""
    out: dict[str, int] = {}
    word = "0x" + "0" * 24 + holder[2:].lower()
    for log in receipt["logs"]:
        if len(log["topics"]) != 3 or log["topics"][0] != TRANSFER:
            continue
        sign = (log["topics"][2] == word) - (log["topics"][1] == word)
        if sign:
            token = log["address"].lower()
            out[token] = out.get(token, 0) + sign * int(log["data"], 16)
    return {t: v for t, v in out.items() if v}


def latest_answer(rpc: Rpc, feed: str) -> int:
    (answer,) = decode_result(["int256"], rpc.eth_call(feed, encode_call("latestAnswer()")))
    return int(answer)


def settled(fork: Devnet, process: LoggedProcess, keeper: str, after: int) -> bool:
    """Done with the price move: a block past ``after`` handled with nothing to liquidate, and every
    keeper transaction on the fork mined (a position only partly liquidated is taken again later)."""
    handled = process.named("block_handled")
    if not handled or handled[-1]["block"] < after or handled[-1]["opportunities"]:
        return False
    counts = [fork.rpc.call("eth_getTransactionCount", [keeper, tag]) for tag in ("latest", "pending")]
    return counts[0] == counts[1]


def run_on_fork(
    devnet: Devnet, config: Path, report: Path
) -> tuple[ForkedKeeper, dict[str, Any], dict[str, Any]]:
    """Fork, move WETH -25 % on the fork, wait until the keeper is done, SIGINT it. Returns the
    process, its ``fork_started`` event and the keeper's receipts on the fork (read before it stops)."""
    keeper = devnet.summary["keeper_address"]
    process = ForkedKeeper(config, report)
    try:
        started = process.wait_for(lambda e: e.get("event") == "fork_started")
        fork = Devnet(devnet.summary | {"rpc_url": started["rpc_url"]}, devnet.config_path, 0)
        process.wait_for(lambda e: e.get("event") == "keeper_ready", timeout_s=90)
        fork_block = int(started["block"])
        started["hash"] = fork.rpc.call("eth_getBlockByNumber", [hex(fork_block), False])["hash"]
        feed = discover_feeds(fork.rpc)["WETH"]
        (owner,) = decode_result(["address"], fork.rpc.eth_call(feed, encode_call("owner()")))
        fork.rpc.call("anvil_impersonateAccount", [owner])
        move = move_price(fork, "WETH", "-10")
        wait_for_block(fork.rpc, move.block + 3)
        deadline = time.monotonic() + 90
        while not settled(fork, process, keeper, move.block + 2):
            assert time.monotonic() < deadline, process.lines[-5:]
            time.sleep(0.2)
        end = fork.rpc.block_number()
        receipts = {r["transactionHash"]: r for r in transactions_from(fork, keeper, fork_block + 1, end)}
        started["move_block"] = move.block
        assert process.stop(signal.SIGINT) == 0, process.lines[-5:]
    finally:
        process.kill()
    return process, started, receipts


def test_fork_liquidates_on_the_fork_and_reports_its_receipts(timed_devnet: Devnet, tmp_path: Path) -> None:
    devnet, keeper = timed_devnet, timed_devnet.summary["keeper_address"]
    config = variant(devnet, tmp_path / "keeper.toml", {})  # dry-run, as the devnet writes it
    weth_feed = discover_feeds(devnet.rpc)["WETH"]
    nonce_before = devnet.rpc.call("eth_getTransactionCount", [keeper, "latest"])
    answer_before = latest_answer(devnet.rpc, weth_feed)
    process, started, on_fork = run_on_fork(devnet, config, tmp_path / "report.json")
    report = process.report()

    # one row per liquidation the keeper got mined on the fork, each as its receipt says
    protocols = {devnet.summary["aave"]["pool"].lower(), devnet.summary["morpho"]["address"].lower()}
    liquidated = {h for h, r in on_fork.items() if r["to"].lower() in protocols}
    rows = report["liquidations"]
    assert len(liquidated) > 10 and {r["tx"] for r in rows} == liquidated
    bumped = {e["tx"] for e in process.events if e.get("event") == "liquidation_replaced"}
    for row in rows:
        check_row(row, on_fork[row["tx"]], keeper, row["tx"] in bumped)
    totals = report["totals"]
    assert totals["liquidations"] == totals["realized_rows"] == len(rows)
    assert totals["mined"] + totals["reverted"] == len(rows) and totals["unsettled"] == 0
    assert int(totals["realized_net_profit_wei"]) == sum(int(r["realized_net_profit_wei"]) for r in rows)
    assert totals["gas_used"] == sum(r["gas_used"] for r in rows)
    assert report["fork_block"] == started["block"] and report["last_block"] >= started["move_block"] + 2
    assert [e["liquidations"] for e in process.named("fork_report")] == [len(rows)]

    # the fork is gone, and the devnet never saw any of it
    assert not alive(int(started["pid"]))
    assert not (tmp_path / "store.sqlite").exists()  # the configured store was never opened
    assert devnet.rpc.call("eth_getTransactionCount", [keeper, "latest"]) == nonce_before
    assert transactions_from(devnet, keeper, started["block"] + 1, devnet.rpc.block_number()) == []
    assert latest_answer(devnet.rpc, weth_feed) == answer_before
    assert devnet.rpc.call("eth_getBlockByNumber", [hex(started["block"]), False])["hash"] == started["hash"]


def check_row(row: dict[str, Any], receipt: dict[str, Any], keeper: str, bumped: bool = False) -> None:
    assert row["state"] == ("mined" if receipt["status"] == "0x1" else "reverted")
    assert row["mined_block"] == int(receipt["blockNumber"], 16)
    assert row["gas_used"] == int(receipt["gasUsed"], 16)
    assert row["effective_gas_price"] == int(receipt["effectiveGasPrice"], 16)
    assert int(row["gas_paid_wei"]) == row["gas_used"] * row["effective_gas_price"]
    assert {t: int(v) for t, v in row["token_flows"].items()} == flows(receipt, keeper)
    assert row["gas_used"] <= row["gas_limit"] and row["predicted_gas"] < row["gas_limit"]
    realized, predicted = int(row["realized_net_profit_wei"]), int(row["predicted_net_profit_wei"])
    assert int(row["realized_gross_profit_wei"]) - int(row["gas_paid_wei"]) == realized
    assert int(row["profit_error_wei"]) == realized - predicted
    if row["state"] == "mined" and not bumped:  # predicted: the whole gas limit at the block's worst price
        assert realized >= predicted > 0, row
    elif row["state"] == "mined":  # a fee bump (a slow block on a loaded machine) pays more than bid
        assert realized + int(row["gas_paid_wei"]) >= predicted > 0, row


def test_fork_stops_after_its_block_limit(timed_devnet: Devnet, tmp_path: Path) -> None:
    config = variant(timed_devnet, tmp_path / "keeper.toml", {})
    process = ForkedKeeper(config, tmp_path / "report.json", "--fork-blocks", "3")
    try:
        started = process.wait_for(lambda e: e.get("event") == "fork_started")
        assert process.wait(timeout_s=90) == 0, process.lines[-5:]
    finally:
        process.kill()
    report = process.report()
    assert report["blocks_processed"] >= 3 and report["liquidations"] == []
    assert [e["blocks"] for e in process.named("block_limit_reached")] == [3]
    assert not alive(int(started["pid"]))


def test_fork_refuses_a_chain_id_other_than_the_configured_one(timed_devnet: Devnet, tmp_path: Path) -> None:
    config = variant(timed_devnet, tmp_path / "keeper.toml", {"chain": {"chain_id": 1}})
    done = run_keeper(
        "run", "--config", str(config), "--fork", env=dict(os.environ, KEEPER_PRIVATE_KEY=KEEPER_KEY)
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines()[-1] == (
        "keeper: error: --fork: chain.rpc_urls serves chain id 31337, the config says chain.chain_id = 1"
    )


def test_a_killed_keeper_leaves_no_fork_behind(timed_devnet: Devnet, tmp_path: Path) -> None:
    """SIGKILL gives the keeper no chance to clean up: the kernel stops its Anvil (PDEATHSIG)."""
    process = ForkedKeeper(variant(timed_devnet, tmp_path / "keeper.toml", {}), tmp_path / "report.json")
    try:
        started = process.wait_for(lambda e: e.get("event") == "fork_started")
        assert alive(int(started["pid"]))
        process.proc.kill()
        process.wait()
        deadline = time.monotonic() + 10
        while alive(int(started["pid"])):
            assert time.monotonic() < deadline, "the fork's anvil outlived its keeper"
            time.sleep(0.05)
    finally:
        process.kill()
