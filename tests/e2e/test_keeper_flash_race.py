"""A race lost on purpose: a competitor liquidates, in the same block and ahead of the keeper,
positions the keeper has already sent flash liquidations for.

Mining is paused after the -25 % crash block, so the keeper's transactions wait in the mempool; the
competitor then liquidates some of those positions completely (Morpho: all the collateral or all
the debt; Aave: single-debt positions under 0.95, whose close factor is 100 %, for uint256 max), and
one block is mined with the competitor's transactions first (the devnet's Anvil mines first come,
first served, so the keeper's signed transactions are taken out of the pool and put back, unchanged,
after the competitor's: what a higher tip does on a real chain). The keeper's transactions for the
same positions find them healthy. Those must stop
at the executor's early guard (Aave: the health-factor view before any flash loan; Morpho: Morpho's
own "position is healthy" check before moving anything), be logged as lost races, not as reverts,
and cost only their gas: the keeper account's ETH falls by exactly the gas of its transactions and
every other liquidation of the block still pays its beneficiary.
"""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from typing import Any

import pytest
from eth_account import Account

from keeper.chain.abi import contract
from keeper.devnet.abi import decode_result, encode_call
from keeper.devnet.feeds import set_price
from keeper.devnet.inspect import multicall
from keeper.errors import DevnetError
from tests.conftest import Devnet

from .keeper_process import KeeperProcess, keeper_config
from .scenario import wait_for_block
from .test_keeper_flash import BENEFICIARY, FLASH_KEY, balance, deploy_executor, tokens

pytestmark = pytest.mark.integration

MAX_UINT = 2**256 - 1
VICTIMS_PER_PROTOCOL = 8
COMPETITOR_TIP_WEI = 20 * 10**9
EARLY_REVERT_GAS = 150_000
"""Bound on a lost race's gas: the Aave guard's revert measured 123k (a view and a revert), Morpho's
healthy-position check less; a race lost after a flash loan and a swap costs ~500k."""
LIQUIDATED = contract("keeper/LiquidationExecutor").event("Liquidated")


def _crash_with_mining_paused(devnet: Devnet) -> int:
    """The crash mined by hand into one block; mining stays off afterwards."""
    rpc = devnet.rpc
    rpc.call("evm_setIntervalMining", [0])
    moved: dict[str, int] = {}
    mover = threading.Thread(
        target=lambda: moved.setdefault("block", set_price(rpc, "WETH", move=Decimal("-25")).block)
    )
    mover.start()
    while len(rpc.call("txpool_content")["pending"]) == 0:  # the feed and arbitrage transactions
        time.sleep(0.02)  # not a spin: the keeper needs the core when the crash lands
    time.sleep(0.3)  # they leave in one batch: let the last of it reach the pool
    rpc.call("evm_mine")
    mover.join(timeout=30)
    return moved["block"]


def _full_liquidations(
    devnet: Devnet, sent: list[dict[str, Any]], block: int
) -> list[tuple[dict[str, Any], bytes]]:
    """For up to VICTIMS_PER_PROTOCOL positions per protocol the keeper sent for: a competitor call
    that leaves them not liquidatable, checked with eth_call at the crash block."""
    s, rpc, tag = devnet.summary, devnet.rpc, hex(block)
    pool, morpho = s["aave"]["pool"], s["morpho"]["address"]
    params = {m["id"]: m for m in s["morpho"]["market_params"]}
    chosen: list[tuple[dict[str, Any], bytes]] = []
    aave = [e for e in sent if e["protocol"] == "aave"]
    configs = multicall(
        rpc, [(pool, encode_call("getUserConfiguration(address)", e["user"])) for e in aave], tag
    )
    accounts = multicall(
        rpc, [(pool, encode_call("getUserAccountData(address)", e["user"])) for e in aave], tag
    )
    for event, config, account in zip(aave, configs, accounts, strict=True):
        borrowing = bin(int.from_bytes(config, "big") & int("01" * 128, 2)).count("1")
        health = int.from_bytes(account[160:192], "big")
        if borrowing == 1 and health < 95 * 10**16:
            call = encode_call(
                "liquidationCall(address,address,address,uint256,bool)",
                event["collateral_asset"], event["debt_asset"], event["user"], MAX_UINT, False,
            )  # fmt: skip
            chosen.append((event, call))
        if len(chosen) == VICTIMS_PER_PROTOCOL:
            break
    morpho_chosen = 0
    for event in (e for e in sent if e["protocol"] == "morpho"):
        m = params[event["market"]]
        market = (m["loan_token"], m["collateral_token"], m["oracle"], m["irm"], int(m["lltv"]))
        position = rpc.eth_call(
            morpho, encode_call("position(bytes32,address)", bytes.fromhex(m["id"][2:]), event["user"]), tag
        )
        _, borrow_shares, collateral = decode_result(["uint256", "uint128", "uint128"], position)
        signature = "liquidate((address,address,address,address,uint256),address,uint256,uint256,bytes)"
        for seized, repaid in ((collateral, 0), (0, borrow_shares)):
            call = encode_call(signature, market, event["user"], seized, repaid, b"")
            try:
                rpc.call(
                    "eth_call",
                    [{"from": s["competitor_address"], "to": morpho, "data": "0x" + call.hex()}, tag],
                )
            except DevnetError:
                continue
            chosen.append((event, call))
            morpho_chosen += 1
            break
        if morpho_chosen == VICTIMS_PER_PROTOCOL:
            break
    return chosen


@pytest.fixture(scope="module")
def race(timed_devnet: Devnet, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    devnet, rpc, s = timed_devnet, timed_devnet.rpc, timed_devnet.summary
    snapshot = rpc.call("evm_snapshot")
    try:
        owner = Account.from_key(FLASH_KEY).address
        rpc.call("anvil_setBalance", [owner, hex(10 * 10**18)])
        executor = deploy_executor(devnet)
        config = keeper_config(
            devnet, tmp_path_factory.mktemp("race"), "live", strategy="flash", executor=executor
        )
        keeper = KeeperProcess(config, FLASH_KEY)
        keeper.wait_for(lambda e: e.get("event") == "keeper_ready")
        eth_before = int(rpc.call("eth_getBalance", [owner, "latest"]), 16)
        gained_before = {t: balance(devnet, t, BENEFICIARY) for t in tokens(devnet).values()}
        try:
            crash = _crash_with_mining_paused(devnet)
            keeper.wait_for(lambda e: e.get("event") == "block_handled" and e["block"] == crash)
            sent = [e for e in keeper.named("liquidation_sent") if e["block"] == crash]
            victims = _full_liquidations(devnet, sent, crash)
            targets = {e["protocol"]: e for e, _ in victims}
            # Anvil mines first come, first served: the keeper's transactions leave the pool and come
            # back, same signed bytes and nonces, after the competitor's
            pool = {a.lower(): txs for a, txs in rpc.call("txpool_content")["pending"].items()}
            pending = pool[owner.lower()]
            raws = [
                rpc.call("eth_getRawTransactionByHash", [pending[n]["hash"]])
                for n in sorted(pending, key=int)
            ]
            rpc.call("anvil_dropAllTransactions")
            for event, call in victims:
                target = s["aave"]["pool"] if event["protocol"] == "aave" else s["morpho"]["address"]
                body = {"from": s["competitor_address"], "to": target, "data": "0x" + call.hex()}
                fees = {
                    "maxPriorityFeePerGas": hex(COMPETITOR_TIP_WEI),
                    "maxFeePerGas": hex(10 * COMPETITOR_TIP_WEI),
                }
                rpc.call("eth_sendTransaction", [body | fees | {"gas": hex(3_000_000)}])
            for raw in raws:
                rpc.call("eth_sendRawTransaction", [raw])
            rpc.call("evm_mine")
        finally:
            rpc.call("evm_setIntervalMining", [1])
        wait_for_block(rpc, crash + 4)
        keeper.wait_for(lambda e: e.get("event") == "block_handled" and e["block"] >= crash + 3)
        assert keeper.stop() == 0, keeper.lines[-5:]
        end = rpc.block_number()
        receipts = []
        for number in range(crash, end + 1):
            receipts += rpc.call("eth_getBlockReceipts", [hex(number)]) or []
        return {
            "crash": crash,
            "owner": owner,
            "sent": sent,
            "victims": [e for e, _ in victims],
            "protocols": set(targets),
            "events": keeper.events,
            "receipts": receipts,
            "eth_spent": eth_before - int(rpc.call("eth_getBalance", [owner, "latest"]), 16),
            "gained": {
                t.lower(): balance(devnet, t, BENEFICIARY) - gained_before[t] for t in tokens(devnet).values()
            },
        }
    finally:
        assert rpc.call("evm_revert", [snapshot]) is True
        rpc.call("anvil_dropAllTransactions")


def _by(receipts: list[dict[str, Any]], sender: str) -> list[dict[str, Any]]:
    return [r for r in receipts if r["from"].lower() == sender.lower()]


def test_the_competitor_took_its_victims_first_in_the_block_after_the_crash(
    race: dict[str, Any], timed_devnet: Devnet
) -> None:
    assert race["protocols"] == {"aave", "morpho"}
    assert len(race["victims"]) == 2 * VICTIMS_PER_PROTOCOL
    theirs = _by(race["receipts"], timed_devnet.summary["competitor_address"])
    assert len(theirs) == len(race["victims"]) and all(r["status"] == "0x1" for r in theirs)
    assert {int(r["blockNumber"], 16) for r in theirs} == {race["crash"] + 1}
    ours = [r for r in _by(race["receipts"], race["owner"]) if int(r["blockNumber"], 16) == race["crash"] + 1]
    assert ours and max(int(r["transactionIndex"], 16) for r in theirs) < min(
        int(r["transactionIndex"], 16) for r in ours
    )


def test_each_lost_race_stopped_at_the_early_guard_and_was_logged_as_lost(race: dict[str, Any]) -> None:
    receipts = {r["transactionHash"]: r for r in _by(race["receipts"], race["owner"])}
    tx_of = {(e["market"], e["user"]): e["tx"] for e in race["sent"]}
    lost = [receipts[tx_of[(v["market"], v["user"])]] for v in race["victims"]]
    assert all(r["status"] == "0x0" for r in lost)
    gas = sorted(int(r["gasUsed"], 16) for r in lost)
    assert gas[-1] <= EARLY_REVERT_GAS, gas
    logged = {e["tx"] for e in race["events"] if e.get("event") == "liquidation_lost_race"}
    assert logged == {r["transactionHash"] for r in lost}
    for protocol in ("aave", "morpho"):
        used = [
            int(r["gasUsed"], 16)
            for v, r in zip(race["victims"], lost, strict=True)
            if v["protocol"] == protocol
        ]
        print(f"gas per lost race, {protocol}: {min(used)}-{max(used)}, mean {sum(used) // len(used)}")


def test_no_other_keeper_transaction_reverted_and_no_error_was_logged(race: dict[str, Any]) -> None:
    victims = {(v["market"], v["user"]) for v in race["victims"]}
    lost = {e["tx"] for e in race["sent"] if (e["market"], e["user"]) in victims}
    ours = _by(race["receipts"], race["owner"])
    assert len(ours) > 100
    assert [
        r["transactionHash"] for r in ours if r["status"] != "0x1" and r["transactionHash"] not in lost
    ] == []
    assert [e for e in race["events"] if e.get("level") == "error"] == []


def test_the_keeper_lost_only_gas_and_its_beneficiary_got_every_profit(race: dict[str, Any]) -> None:
    ours = _by(race["receipts"], race["owner"])
    gas_paid = sum(int(r["gasUsed"], 16) * int(r["effectiveGasPrice"], 16) for r in ours)
    assert race["eth_spent"] == gas_paid
    profits: dict[str, int] = {}
    for log in (log for r in ours for log in r["logs"] if LIQUIDATED.matches(log)):
        fields = LIQUIDATED.decode(log)
        profits[fields["debt"].lower()] = profits.get(fields["debt"].lower(), 0) + fields["profit"]
    assert sum(profits.values()) > 0
    assert {t: g for t, g in race["gained"].items() if g} == {t: p for t, p in profits.items() if p}
