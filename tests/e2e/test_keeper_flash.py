"""`keeper run` with the flash strategy: an account holding only ETH for gas liquidates through its
own executor contract, on both protocols, after a -25 % WETH crash on the 1-second devnet.

The executor is deployed by `keeper executor deploy` with a beneficiary of its own, so every token
the beneficiary gains is the executor's profit: it must equal the sum of the `Liquidated` events'
profits exactly, and each liquidation's realized profit must sit at or above the floor the keeper
logged (``min_profit``: the swap at the quoted output less the 1 % slippage bound).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from keeper.chain.abi import contract
from keeper.chain.multicall import words
from keeper.devnet.abi import encode_call
from keeper.devnet.feeds import set_price
from keeper.execution.flash import BURN_GAS, ROUTE_GAS
from tests.conftest import Devnet, run_keeper

from .keeper_process import KEEPER_KEY, KeeperProcess, keeper_config
from .scenario import aave_borrowers, aave_refused, aave_unhealthy, transactions_from, wait_for_block

pytestmark = pytest.mark.integration

FLASH_KEY = "0x" + keccak(text="keeper flash e2e").hex()
BENEFICIARY = to_checksum_address(keccak(text="keeper flash beneficiary")[12:])
LIQUIDATED = contract("keeper/LiquidationExecutor").event("Liquidated")


def deploy_executor(devnet: Devnet) -> str:
    env = {**os.environ, "KEEPER_PRIVATE_KEY": FLASH_KEY}
    proc = run_keeper(
        "executor", "deploy", "--config", str(devnet.config_path), "--beneficiary", BENEFICIARY, env=env
    )
    assert proc.returncode == 0, proc.stderr
    deployed: dict[str, Any] = json.loads(proc.stdout)
    return str(deployed["executor"])


def balance(devnet: Devnet, token: str, holder: str) -> int:
    return words(devnet.rpc.eth_call(token, encode_call("balanceOf(address)", holder)))[0]


def tokens(devnet: Devnet) -> dict[str, str]:
    reserves: dict[str, str] = devnet.summary["aave"]["reserves"]
    return dict(reserves)


@pytest.fixture(scope="module")
def run(timed_devnet: Devnet, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    devnet, rpc = timed_devnet, timed_devnet.rpc
    snapshot = rpc.call("evm_snapshot")
    try:
        owner = Account.from_key(FLASH_KEY).address
        rpc.call("anvil_setBalance", [owner, hex(10 * 10**18)])
        executor = deploy_executor(devnet)
        held = {s: balance(devnet, t, owner) for s, t in tokens(devnet).items()}
        directory = tmp_path_factory.mktemp("flash")
        config = keeper_config(devnet, directory, "live", strategy="flash", executor=executor)
        keeper = KeeperProcess(config, FLASH_KEY)
        ready = keeper.wait_for(lambda e: e.get("event") == "keeper_ready")
        before = {s: balance(devnet, t, BENEFICIARY) for s, t in tokens(devnet).items()}
        users = aave_borrowers(rpc, devnet.summary["aave"]["pool"])
        crash = set_price(rpc, "WETH", move=Decimal("-25")).block
        wait_for_block(rpc, crash + 4)
        keeper.wait_for(lambda e: e.get("event") == "block_handled" and e["block"] >= crash + 3)
        assert keeper.stop() == 0, keeper.lines[-5:]
        end = rpc.block_number()
        left = aave_unhealthy(rpc, devnet.summary["aave"]["pool"], users, end)
        return {
            "executor": executor,
            "owner": owner,
            "held": held,
            "start": int(ready["block"]),
            "crash": crash,
            "end": end,
            "events": keeper.events,
            "receipts": transactions_from(devnet, owner, int(ready["block"]) + 1, end),
            "gained": {s: balance(devnet, t, BENEFICIARY) - before[s] for s, t in tokens(devnet).items()},
            "aave_left": left,
            "aave_protected": aave_refused(rpc, devnet.summary["aave"]["pool"], left, end, owner),
        }
    finally:
        assert rpc.call("evm_revert", [snapshot]) is True
        rpc.call("anvil_dropAllTransactions")


def test_the_keeper_account_holds_only_eth(run: dict[str, Any]) -> None:
    assert all(amount == 0 for amount in run["held"].values()), run["held"]


def test_both_protocols_liquidated_through_the_executor_without_a_revert(run: dict[str, Any]) -> None:
    receipts = run["receipts"]
    assert receipts, "the keeper sent nothing"
    assert [r["transactionHash"] for r in receipts if r["status"] != "0x1"] == []
    assert {r["to"].lower() for r in receipts} == {run["executor"].lower()}
    mined = [e for e in run["events"] if e.get("event") == "liquidation_mined"]
    by_protocol = defaultdict(int)
    for event in mined:
        by_protocol[event["protocol"]] += 1
    assert by_protocol["aave"] >= 50 and by_protocol["morpho"] >= 50, dict(by_protocol)
    assert [e for e in run["events"] if e.get("level") == "error"] == []


def test_every_position_is_first_liquidated_within_two_blocks_of_the_crash(run: dict[str, Any]) -> None:
    """A position a first liquidation leaves under 1 (a partial one) may be liquidated again later,
    and one that did not pay for its gas at the crash (skipped so) when it does."""
    first: dict[str, int] = {}
    for event in run["events"]:
        if event.get("event") == "liquidation_mined":
            first[event["user"]] = min(first.get(event["user"], event["block"]), event["block"])
    unprofitable = {
        e["user"] for e in run["events"] if e.get("reason", "").startswith("not profitable after gas")
    }
    late = {
        user: block
        for user, block in first.items()
        if not run["crash"] < block <= run["crash"] + 2 and user not in unprofitable
    }
    assert len(first) >= 300 and not late, late


def test_what_is_left_under_one_is_protected_or_would_not_pay(
    run: dict[str, Any], timed_devnet: Devnet
) -> None:
    """Aave positions still liquidatable at the end: the grace-period cases (the pool refuses them),
    or ones the keeper skipped because the swap would not pay for them within the slippage bound or
    no configured pool trades their collateral for their debt (the LT-0 cases' EMC)."""
    reasons = ("not profitable", "pool quotes the seized collateral")
    skipped = {
        e["user"]
        for e in run["events"]
        if e.get("event") == "opportunity_skipped" and any(r in e.get("reason", "") for r in reasons)
    }
    grace = set(timed_devnet.summary["aave"]["cases"]["grace_period"])
    assert run["aave_protected"] == grace
    assert run["aave_left"] - grace <= skipped, run["aave_left"] - grace - skipped


def test_the_beneficiary_gains_exactly_the_executor_profits_above_the_logged_floors(
    run: dict[str, Any], timed_devnet: Devnet
) -> None:
    symbol = {token.lower(): s for s, token in tokens(timed_devnet).items()}
    realized: dict[str, int] = defaultdict(int)
    by_tx: dict[str, int] = {}
    for receipt in run["receipts"]:
        (event,) = [log for log in receipt["logs"] if LIQUIDATED.matches(log)]
        fields = LIQUIDATED.decode(event)
        by_tx[receipt["transactionHash"]] = fields["profit"]
        debt = next(e["debt_asset"] for e in run["events"] if e.get("tx") == receipt["transactionHash"])
        realized[symbol[debt.lower()]] += fields["profit"]
    gained = {s: amount for s, amount in run["gained"].items() if amount}
    assert gained == dict(realized)
    sent = {e["tx"]: e for e in run["events"] if e.get("event") == "liquidation_sent"}
    for tx, profit in by_tx.items():
        floor, expected = int(sent[tx]["min_profit"]), int(sent[tx]["expected_profit"])
        assert floor <= profit, (tx, profit, floor)
        assert profit <= expected * 101 // 100 + 1, (tx, profit, expected)  # no more than 1 % over


def test_nothing_is_left_in_the_executor(run: dict[str, Any]) -> None:
    # the run's state is reverted; what matters is what each liquidation left, read from its logs:
    # every token the executor received it passed on (Transfer logs into and out of it balance)
    executor = run["executor"].lower()
    transfer = "0x" + keccak(text="Transfer(address,address,uint256)").hex()
    net: dict[str, int] = defaultdict(int)
    for receipt in run["receipts"]:
        for log in receipt["logs"]:
            if log["topics"][0] != transfer or len(log["topics"]) != 3:
                continue
            amount = int(log["data"], 16)
            if "0x" + log["topics"][2][-40:] == executor:
                net[log["address"].lower()] += amount
            if "0x" + log["topics"][1][-40:] == executor:
                net[log["address"].lower()] -= amount
    assert {token: amount for token, amount in net.items() if amount} == {}


@pytest.mark.parametrize("case", ["no code", "another owner"])
def test_keeper_run_refuses_an_executor_it_cannot_use(
    timed_devnet: Devnet, tmp_path: Path, case: str
) -> None:
    """An executor without code would make every liquidation "succeed" doing nothing, one owned by
    someone else would revert each: `keeper run` stops at start-up with one line."""
    rpc = timed_devnet.rpc
    snapshot = rpc.call("evm_snapshot")
    try:
        owner = Account.from_key(FLASH_KEY).address
        rpc.call("anvil_setBalance", [owner, hex(10**18)])
        executor = deploy_executor(timed_devnet) if case == "another owner" else BENEFICIARY
        config = keeper_config(timed_devnet, tmp_path, "dry-run", strategy="flash", executor=executor)
        env = {**os.environ, "KEEPER_PRIVATE_KEY": KEEPER_KEY}  # the devnet keeper, not the owner
        proc = run_keeper("run", "--config", str(config), env=env, timeout_s=60)
    finally:
        assert rpc.call("evm_revert", [snapshot]) is True
    assert proc.returncode == 2, proc.stderr[-500:]
    last = proc.stderr.strip().splitlines()[-1]
    expected = "no contract at" if case == "no code" else f"is owned by {owner}"
    assert last.startswith("keeper: error: execution.executor:") and expected in last, last


def test_a_flash_dry_run_simulates_each_executor_call_and_reports_its_profit(
    timed_devnet: Devnet, tmp_path: Path
) -> None:
    """Dry-run has no race to win: each executor call is simulated (eth_estimateGas from the owner,
    so a call the executor would refuse shows as a simulation revert), and reported with the flash
    plan's route, swap and profits; nothing is sent."""
    rpc = timed_devnet.rpc
    snapshot = rpc.call("evm_snapshot")
    try:
        owner = Account.from_key(FLASH_KEY).address
        rpc.call("anvil_setBalance", [owner, hex(10**18)])
        executor = deploy_executor(timed_devnet)
        nonce = rpc.call("eth_getTransactionCount", [owner, "latest"])
        config = keeper_config(timed_devnet, tmp_path, "dry-run", strategy="flash", executor=executor)
        keeper = KeeperProcess(config, FLASH_KEY)
        keeper.wait_for(lambda e: e.get("event") == "keeper_ready")
        crash = set_price(rpc, "WETH", move=Decimal("-25")).block
        handled = keeper.wait_for(lambda e: e.get("event") == "block_handled" and e["block"] >= crash)
        assert keeper.stop() == 0, keeper.lines[-5:]
        assert rpc.call("eth_getTransactionCount", [owner, "latest"]) == nonce
    finally:
        assert rpc.call("evm_revert", [snapshot]) is True
    reported = [
        e for e in keeper.events if e.get("event") == "liquidation_dry_run" and e["block"] == handled["block"]
    ]
    assert {e["protocol"] for e in reported} == {"aave", "morpho"} and len(reported) >= 300
    routes = {"morpho_callback", "aave_morpho_flash", "aave_aave_flash"}
    fixed = {(gas + burns * BURN_GAS) * 12 // 10 for gas in ROUTE_GAS.values() for burns in range(8)}
    for event in reported:
        assert event["route"] in routes and event["tx"] is None
        assert 0 < int(event["min_profit"]) <= int(event["expected_profit"]) <= int(event["swap_out"])
        # a simulated limit (the estimate plus the 20 % margin), not a route's fixed one
        assert event["gas_limit"] not in fixed, event["gas_limit"]
    assert handled["simulate_ms"] > 0
