"""Inventory mode with a wallet funded with the debt tokens but approved to nothing, `keeper run` live.

Every run starts from a snapshot of the devnet and crashes WETH by 25 %. The keeper signs with a
fresh key (the devnet's keeper account's tokens moved to it) or with the devnet's keeper account
after its allowances were set back to 0:

- funded after start-up: nothing to approve at start; the crash block's opportunities find the
  allowance short, one approval per (token, spender) goes out, they are skipped "approval
  pending", and the next block liquidates them;
- funded before start-up, "unlimited": start-up approves every debt token it holds (uint256 max)
  before any crash, so the crash block liquidates at once;
- approvals "off": nothing approved, every opportunity skipped "approval missing";
- dry-run: nothing sent; it says what it would approve.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_utils.crypto import keccak

from keeper.chain.multicall import words
from keeper.devnet.abi import encode_call
from keeper.execution.signer import Signer
from tests.conftest import Devnet

from .keeper_process import KEEPER_KEY, Event, KeeperProcess, keeper_config
from .scenario import MAX_UINT, move_price, transactions_from, wait_for_block

pytestmark = pytest.mark.integration

FRESH_KEY = "0x" + keccak(text="keeper e2e: a wallet approved to nothing").hex()
BLOCKS_AFTER_CRASH = 4


@dataclass
class Run:
    events: list[Event]
    address: str
    crash_block: int
    receipts: list[dict[str, Any]]
    """Every transaction the keeper's account got included from keeper start to the end."""
    funded: dict[str, int]
    """Token -> what the wallet held before the crash."""
    allowances: dict[tuple[str, str], int]
    """(token, spender) -> allowance at the end."""

    def named(self, name: str) -> list[Event]:
        return [e for e in self.events if e.get("event") == name]

    def skipped(self, reason: str) -> list[Event]:
        return [e for e in self.named("opportunity_skipped") if e["reason"].startswith(reason)]


def pairs(devnet: Devnet) -> list[tuple[str, str]]:
    """Every (debt token, spender) the keeper may need: each Aave reserve to the pool, each Morpho
    loan token to Morpho."""
    s = devnet.summary
    aave = [(token, s["aave"]["pool"]) for token in s["aave"]["reserves"].values()]
    loans = {m["loan_token"] for m in s["morpho"]["market_params"]}
    return aave + [(token, s["morpho"]["address"]) for token in sorted(loans)]


def send(devnet: Devnet, sender: str, calls: list[tuple[str, bytes]]) -> None:
    """Transactions from an unlocked devnet account, sent together and waited for (they are mined
    in the next block, a block a second)."""
    rpc = devnet.rpc
    hashes = [
        rpc.call("eth_sendTransaction", [{"from": sender, "to": to, "data": "0x" + data.hex()}])
        for to, data in calls
    ]
    deadline = time.monotonic() + 30
    for tx in hashes:
        while (receipt := rpc.call("eth_getTransactionReceipt", [tx])) is None:
            assert time.monotonic() < deadline, f"{tx} never mined"
            time.sleep(0.1)
        assert receipt["status"] == "0x1", receipt


def balance(devnet: Devnet, token: str, holder: str) -> int:
    return words(devnet.rpc.eth_call(token, encode_call("balanceOf(address)", holder)))[0]


def allowance(devnet: Devnet, token: str, owner: str, spender: str) -> int:
    return words(devnet.rpc.eth_call(token, encode_call("allowance(address,address)", owner, spender)))[0]


def fund(devnet: Devnet, to: str) -> dict[str, int]:
    """Half of the devnet keeper account's balance of every reserve token, moved to ``to``."""
    source = devnet.summary["keeper_address"]
    tokens = list(devnet.summary["aave"]["reserves"].values())
    halves = [balance(devnet, token, source) // 2 for token in tokens]
    send(
        devnet,
        source,
        [(t, encode_call("transfer(address,uint256)", to, a)) for t, a in zip(tokens, halves, strict=True)],
    )
    return {token: balance(devnet, token, to) for token in tokens}


def unapprove(devnet: Devnet) -> None:
    """The devnet keeper account approves 0 to every spender it was approved to."""
    owner = devnet.summary["keeper_address"]
    send(
        devnet,
        owner,
        [(token, encode_call("approve(address,uint256)", spender, 0)) for token, spender in pairs(devnet)],
    )
    assert all(allowance(devnet, token, owner, spender) == 0 for token, spender in pairs(devnet))


def run(
    devnet: Devnet,
    directory: Path,
    mode: str,
    approvals: str,
    before: Callable[[Devnet], tuple[str, str]],
    after_start: Callable[[Devnet, str], object] | None = None,
) -> Run:
    """``before`` prepares the chain and names (key, address); ``after_start`` runs once it is ready."""
    directory.mkdir(parents=True)
    rpc = devnet.rpc
    snapshot = rpc.call("evm_snapshot")
    try:
        key, address = before(devnet)
        start = rpc.block_number()
        keeper = KeeperProcess(keeper_config(devnet, directory, mode, approvals=approvals), key)
        ready = keeper.wait_for(lambda e: e.get("event") == "keeper_ready")
        keeper.wait_for(lambda e: e.get("event") == "block_handled")  # start-up is over
        if after_start is not None:
            after_start(devnet, address)
        funded = {t: balance(devnet, t, address) for t in devnet.summary["aave"]["reserves"].values()}
        wait_for_block(rpc, rpc.block_number() + 2)  # start-up's approvals (if any) are mined
        move = move_price(devnet, "WETH", "-25")
        wait_for_block(rpc, move.block + BLOCKS_AFTER_CRASH + 1)
        last = move.block + BLOCKS_AFTER_CRASH
        keeper.wait_for(lambda e: e.get("event") == "block_handled" and e["block"] >= last)
        assert keeper.stop() == 0, keeper.lines[-5:]
        end = rpc.block_number()
        assert int(ready["block"]) >= start
        return Run(
            keeper.events,
            address,
            move.block,
            transactions_from(devnet, address, start + 1, end),
            funded,
            {(t, s): allowance(devnet, t, address, s) for t, s in pairs(devnet)},
        )
    finally:
        assert rpc.call("evm_revert", [snapshot]) is True
        rpc.call("anvil_dropAllTransactions")


def fresh_wallet(devnet: Devnet, with_tokens: bool) -> tuple[str, str]:
    address = Signer.from_key(FRESH_KEY, devnet.summary["chain_id"]).address
    devnet.rpc.call("anvil_setBalance", [address, hex(100 * 10**18)])
    if with_tokens:
        fund(devnet, address)
    return FRESH_KEY, address


def devnet_keeper_unapproved(devnet: Devnet) -> tuple[str, str]:
    unapprove(devnet)
    return KEEPER_KEY, devnet.summary["keeper_address"]


@pytest.fixture(scope="module")
def approved_on_the_way(timed_devnet: Devnet, tmp_path_factory: pytest.TempPathFactory) -> Run:
    directory = tmp_path_factory.mktemp("approvals") / "on_the_way"
    return run(
        timed_devnet,
        directory,
        "live",
        "bounded",
        lambda d: fresh_wallet(d, with_tokens=False),
        fund,
    )


def approve_calls(outcome: Run) -> list[dict[str, Any]]:
    tokens = {t.lower() for t in outcome.funded}
    return [r for r in outcome.receipts if (r["to"] or "").lower() in tokens]


def test_the_crash_block_sends_one_approval_per_pair_and_the_next_block_liquidates(
    approved_on_the_way: Run,
) -> None:
    run = approved_on_the_way
    assert run.named("approval_dry_run") == []
    sent = run.named("approval_sent")
    assert sent, "no approval sent"
    assert all(e["block"] == run.crash_block for e in sent)  # nothing at start-up: it held nothing
    assert max(Counter((e["token"], e["spender"]) for e in sent).values()) == 1
    waited = run.skipped("approval pending")
    assert waited and all(e["block"] == run.crash_block for e in waited)
    assert {e["debt_asset"] for e in waited} <= {e["token"] for e in sent}
    assert run.skipped("approval missing") == []
    for event in sent:  # bounded: the allowance asked for is what the wallet held, no more
        assert int(event["amount"]) == run.funded[event["token"]] > 0
        assert int(event["allowance"]) == 0
    # on chain: exactly those approvals, then liquidations, none reverted
    assert len(approve_calls(run)) == len(sent)
    assert [r["transactionHash"] for r in run.receipts if r["status"] != "0x1"] == []
    assert {r["transactionHash"] for r in approve_calls(run)} == {e["tx"] for e in sent}
    mined = run.named("liquidation_mined")
    assert len(mined) >= 50
    first = min(e["block"] for e in run.named("liquidation_sent"))
    assert first == run.crash_block + 1  # the block after the approvals were sent
    assert {int(r["blockNumber"], 16) for r in approve_calls(run)} == {run.crash_block + 1}
    assert [e for e in run.events if e.get("level") == "error"] == []


@pytest.fixture(scope="module")
def approved_at_start(timed_devnet: Devnet, tmp_path_factory: pytest.TempPathFactory) -> Run:
    directory = tmp_path_factory.mktemp("approvals") / "at_start"
    return run(timed_devnet, directory, "live", "unlimited", lambda d: fresh_wallet(d, with_tokens=True))


def test_start_up_approves_every_token_held_once_and_the_crash_block_liquidates(
    approved_at_start: Run, timed_devnet: Devnet
) -> None:
    run = approved_at_start
    sent = run.named("approval_sent")
    assert sorted((e["token"], e["spender"]) for e in sent) == sorted(pairs(timed_devnet))
    assert all(int(e["amount"]) == MAX_UINT for e in sent)
    assert max(int(r["blockNumber"], 16) for r in approve_calls(run)) < run.crash_block
    # unlimited: the devnet's tokens do draw a max allowance down, by nothing that matters
    assert min(run.allowances.values()) > MAX_UINT // 2
    assert run.skipped("approval") == []
    assert min(e["block"] for e in run.named("liquidation_sent")) == run.crash_block
    assert len(run.named("liquidation_mined")) >= 50
    assert [r["transactionHash"] for r in run.receipts if r["status"] != "0x1"] == []
    assert len(approve_calls(run)) == len(sent)


def test_approvals_off_approves_nothing_and_skips_with_the_reason(
    timed_devnet: Devnet, tmp_path: Path
) -> None:
    run_off = run(timed_devnet, tmp_path / "off", "live", "off", devnet_keeper_unapproved)
    assert run_off.named("approval_sent") == [] and run_off.receipts == []
    assert len(run_off.named("approval_missing")) == len(pairs(timed_devnet))  # the start-up warnings
    assert len(run_off.skipped("approval missing")) >= 100
    assert run_off.named("liquidation_sent") == []
    assert set(run_off.allowances.values()) == {0}


def test_dry_run_sends_nothing_and_says_what_it_would_approve(timed_devnet: Devnet, tmp_path: Path) -> None:
    dry = run(
        timed_devnet, tmp_path / "dry", "dry-run", "bounded", lambda d: fresh_wallet(d, with_tokens=True)
    )
    assert dry.receipts == [] and dry.named("approval_sent") == []
    said = dry.named("approval_dry_run")
    assert sorted((e["token"], e["spender"]) for e in said) == sorted(pairs(timed_devnet))  # once each
    assert all(int(e["amount"]) == dry.funded[e["token"]] for e in said)
    assert len(dry.skipped("approval missing")) >= 100
    assert all("live mode would approve" in e["reason"] for e in dry.skipped("approval missing"))
    assert set(dry.allowances.values()) == {0}
