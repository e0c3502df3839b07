"""Inventory mode's approvals, against the fake node of `test_executor_decisions` and a real store.

What is asserted is what left: the approve calls the node received (token, spender, amount,
nonce), what the store recorded as in flight, and the skip reason of the opportunities waiting.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
import rlp  # type: ignore[import-untyped]
import structlog
from eth_abi.abi import decode
from eth_utils.crypto import keccak

from keeper.chain.rpc import RpcError
from keeper.execution.approvals import APPROVE, MAX_ALLOWANCE, ApprovalMode, Holding, approval_amount
from keeper.execution.executor import Executor
from keeper.execution.gas import FeePolicy, Fees, overhead_fees
from keeper.execution.nonces import NonceManager
from keeper.protocols.base import PositionKey
from keeper.state.store import Store
from keeper.state.txstate import TxState

from .test_executor_decisions import (
    BASE_FEE,
    CHAIN_NONCE,
    DAI,
    ETHER,
    POOL,
    SIGNER,
    USDC,
    USERS,
    FakeNode,
    attempt,
    calldata,
    item,
    outcomes,
    store,
)

__all__ = ["store"]  # the fixture, imported for the tests below

GWEI = 10**9
HELD = 10**6 * ETHER
MORPHO = "0x" + "b0" * 20


@dataclass
class ApprovingNode(FakeNode):
    """The fake node, plus approve simulations (``usdt`` tokens refuse to change a non-zero
    allowance), receipts for what it was sent, and a head block."""

    usdt: set[str] = field(default_factory=set)
    mined: dict[str, dict[str, Any]] = field(default_factory=dict)

    async def request(self, method: str, params: Sequence[Any] = ()) -> Any:
        if method == "eth_estimateGas" and params[0]["data"][2:10] == APPROVE.selector.hex():
            token = params[0]["to"].lower()
            spender, amount = decode(["address", "uint256"], bytes.fromhex(params[0]["data"][10:]))
            if token in self.usdt and amount and self.allowances.get((token, spender.lower()), 0):
                raise RpcError(method, 3, "execution reverted")
            return hex(46_000)
        if method == "eth_getBlockByNumber":
            return {"number": "0x64", "baseFeePerGas": hex(BASE_FEE)}
        return await super().request(method, params)

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        if calls and calls[0][0] == "eth_getTransactionReceipt":
            return [self.mined.get(params[0]) for _, params in calls]
        return await super().batch(calls)

    def approvals(self) -> list[tuple[int, str, str, int]]:
        """(nonce, token, spender, amount) of every approve received, in order."""
        out = []
        for raw in self.raw_sent:
            fields = rlp.decode(bytes.fromhex(raw[2:])[1:])
            data = bytes(fields[7])
            if data[:4] == APPROVE.selector:
                spender, amount = decode(["address", "uint256"], data[4:])
                out.append(
                    (int.from_bytes(fields[1], "big"), bytes(fields[5]).hex(), spender.lower(), amount)
                )
        return out

    def mine_all(self, block: int) -> None:
        """Every transaction received is mined in ``block``; approvals take effect."""
        for raw in self.raw_sent:
            fields = rlp.decode(bytes.fromhex(raw[2:])[1:])
            data = bytes(fields[7])
            if data[:4] == APPROVE.selector:
                spender, amount = decode(["address", "uint256"], data[4:])
                self.allowances[("0x" + bytes(fields[5]).hex(), spender.lower())] = amount
        for raw in self.raw_sent:
            tx_hash = "0x" + keccak(bytes.fromhex(raw[2:])).hex()
            self.mined.setdefault(
                tx_hash,
                {"blockNumber": hex(block), "status": "0x1", "gasUsed": hex(46_000),
                 "effectiveGasPrice": hex(2 * GWEI), "logs": []},
            )  # fmt: skip


def unapproved(**allowances: int) -> ApprovingNode:
    return ApprovingNode(
        balances={USDC: HELD, DAI: HELD},
        allowances={(USDC, POOL): allowances.get("usdc", 0), (DAI, POOL): allowances.get("dai", 0)},
    )


def executor(
    node: FakeNode, store: Store, approvals: ApprovalMode = "bounded", live: bool = True
) -> Executor:
    policy = FeePolicy(strategy="fixed", max_fee_per_gas_wei=100 * GWEI, replace_after_blocks=2)
    nonces = NonceManager(CHAIN_NONCE, store.in_flight()) if live else None
    return Executor(
        node, SIGNER.address, policy, 2_000, store, nonces, SIGNER if live else None, approvals=approvals
    )


def token(address: str) -> str:
    return address[2:]


@pytest.mark.parametrize(
    ("mode", "allowance", "balance", "needed", "expected"),
    [
        ("off", 0, HELD, ETHER, None),
        ("bounded", ETHER, HELD, ETHER, None),  # enough already
        ("unlimited", 2 * ETHER, HELD, ETHER, None),
        ("bounded", 0, HELD, ETHER, HELD),  # the balance, not just this liquidation
        ("bounded", ETHER - 1, HELD, ETHER, HELD),
        ("bounded", 0, ETHER // 2, ETHER, ETHER),  # never below what is needed
        ("unlimited", 0, HELD, ETHER, MAX_ALLOWANCE),
        ("unlimited", 0, 0, 0, None),  # nothing needed, nothing approved
    ],
)
def test_approval_amount(
    mode: ApprovalMode, allowance: int, balance: int, needed: int, expected: int
) -> None:
    assert approval_amount(mode, allowance, balance, needed) == expected


async def test_a_short_allowance_sends_one_approval_per_pair_and_the_opportunities_wait(store: Store) -> None:
    node = unapproved()
    ex = executor(node, store)
    attempts = await attempt(
        ex, item(USERS[0], 3 * ETHER), item(USERS[1], 2 * ETHER), item(USERS[2], ETHER, debt=DAI)
    )
    assert outcomes(attempts) == [("skipped", "approval pending")] * 3
    assert all("sent in 0x" in a.reason for a in attempts)
    assert node.approvals() == [(5, token(USDC), POOL, HELD), (6, token(DAI), POOL, HELD)]
    recorded = [(tx.nonce, tx.market, tx.user, tx.is_approval) for tx in store.in_flight()]
    assert recorded == [(5, USDC, POOL, True), (6, DAI, POOL, True)]  # persisted as approvals


async def test_an_approval_in_flight_is_not_sent_again_even_after_a_restart(store: Store) -> None:
    node = unapproved()
    await attempt(executor(node, store), item(USERS[0], ETHER), block=100)
    again = await attempt(executor(node, store), item(USERS[0], ETHER), item(USERS[1], ETHER), block=101)
    assert outcomes(again) == [("skipped", "approval pending")] * 2
    assert all("in flight" in a.reason for a in again)
    assert len(node.approvals()) == 1 and len(node.raw_sent) == 1


async def test_once_the_approval_is_mined_the_next_block_liquidates(store: Store) -> None:
    node = unapproved()
    ex = executor(node, store)
    await attempt(ex, item(USERS[0], ETHER), block=100)
    node.mine_all(101)
    settled = await ex.track(101, BASE_FEE, lambda tx: False)  # never cancelled, though no position
    assert [tx.is_approval for tx in settled] == [True]
    assert [tx.state for tx in store.transactions()] == [TxState.MINED]
    (sent,) = await attempt(ex, item(USERS[0], ETHER), block=101)
    assert sent.outcome == "sent"
    assert node.sent_nonces()[-1] == (6, calldata(USERS[0]))
    assert ex.settled["mined"] == 0  # an approval is not a liquidation won


async def test_approvals_off_sends_nothing(store: Store) -> None:
    node = unapproved()
    (skipped,) = await attempt(executor(node, store, "off"), item(USERS[0], ETHER))
    assert (skipped.outcome, skipped.reason.split(":")[0]) == ("skipped", "approval missing")
    assert node.raw_sent == [] and store.transactions() == []


async def test_unlimited_approves_uint256_max(store: Store) -> None:
    node = unapproved()
    await attempt(executor(node, store, "unlimited"), item(USERS[0], ETHER))
    assert node.approvals() == [(5, token(USDC), POOL, MAX_ALLOWANCE)]


async def test_dry_run_sends_nothing_and_reports_each_approval_once(store: Store) -> None:
    node = unapproved()
    ex = executor(node, store, live=False)
    with structlog.testing.capture_logs() as logs:
        first = await attempt(ex, item(USERS[0], ETHER), block=100)
        second = await attempt(ex, item(USERS[0], ETHER), block=101)
    for attempts in (first, second):
        assert outcomes(attempts) == [("skipped", "approval missing")]
        assert f"live mode would approve {HELD}" in attempts[0].reason
    reported = [e for e in logs if e["event"] == "approval_dry_run"]
    assert [(e["token"], e["amount"]) for e in reported] == [(USDC, str(HELD))]
    assert node.raw_sent == [] and store.transactions() == []


async def test_a_usdt_style_token_is_reset_to_zero_first_then_approved(store: Store) -> None:
    node = unapproved(usdc=ETHER // 2)  # short, and non-zero: USDT refuses to change it
    node.usdt.add(USDC)
    ex = executor(node, store)
    (first,) = await attempt(ex, item(USERS[0], ETHER), block=100)
    assert "reset to 0 first" in first.reason
    assert node.approvals() == [(5, token(USDC), POOL, 0)]
    node.mine_all(101)
    await ex.track(101, BASE_FEE, lambda tx: False)
    (second,) = await attempt(ex, item(USERS[0], ETHER), block=101)
    assert second.reason.startswith("approval pending")
    assert node.approvals() == [(5, token(USDC), POOL, 0), (6, token(USDC), POOL, HELD)]
    node.mine_all(102)
    await ex.track(102, BASE_FEE, lambda tx: False)
    (third,) = await attempt(ex, item(USERS[0], ETHER), block=102)
    assert third.outcome == "sent"


async def test_an_approval_that_reverts_even_from_zero_is_reported_and_not_sent(store: Store) -> None:
    node = unapproved()

    async def refuse(method: str, params: Sequence[Any] = ()) -> Any:
        if method == "eth_estimateGas":
            raise RpcError(method, 3, "execution reverted: paused")
        return await ApprovingNode.request(node, method, params)

    node.request = refuse  # type: ignore[method-assign]
    (skipped,) = await attempt(executor(node, store), item(USERS[0], ETHER))
    assert skipped.reason.startswith("approval missing: approve reverted")
    assert node.raw_sent == [] and store.transactions() == []


async def test_a_waiting_approval_is_bumped_not_cancelled_and_stays_an_approval(store: Store) -> None:
    node = unapproved()
    ex = executor(node, store)
    await attempt(ex, item(USERS[0], ETHER), block=100)
    (original,) = store.in_flight()
    await ex.track(101, BASE_FEE, lambda tx: False)
    assert store.in_flight() == [original]  # not cancelled: it is not a position
    await ex.track(102, BASE_FEE, lambda tx: False)  # replace_after_blocks = 2
    (bumped,) = store.in_flight()
    assert bumped.nonce == original.nonce and bumped.is_approval and bumped.tx_hash != original.tx_hash
    assert bumped.max_fee_per_gas >= original.max_fee_per_gas * 1125 // 1000
    assert node.approvals()[-1] == (5, token(USDC), POOL, HELD)  # the same approve, re-signed


async def test_start_up_approves_what_the_wallet_holds(store: Store) -> None:
    node = unapproved(dai=HELD)
    ex = executor(node, store)
    held = [
        Holding("aave", USDC, POOL, HELD, 0),  # held, not approved
        Holding("aave", DAI, POOL, HELD, HELD),  # approved enough already
        Holding("morpho", USDC, MORPHO, HELD, 0),  # the same token, another spender
        Holding("aave", "0x" + "e1" * 20, POOL, 0, 0),  # not held: nothing to approve
    ]
    reasons = await ex.approve_inventory(held, 100)
    assert node.approvals() == [(5, token(USDC), POOL, HELD), (6, token(USDC), MORPHO, HELD)]
    assert set(reasons) == {(USDC, POOL), (USDC, MORPHO)}
    assert await executor(node, store).approve_inventory(held, 101) == {}  # restarted: still in flight
    assert len(node.raw_sent) == 2


@pytest.mark.parametrize(
    ("strategy", "previous", "expected"),
    [
        ("fixed", None, Fees(21 * GWEI, GWEI)),
        ("profit_share", None, Fees(21 * GWEI, GWEI)),  # no profit to share: the fixed tip
        ("percentile", None, Fees(23 * GWEI, 3 * GWEI)),
        ("fixed", Fees(30 * GWEI, 2 * GWEI), Fees(33_750_000_000, 2_250_000_000)),  # +12.5 %
        ("fixed", Fees(95 * GWEI, 2 * GWEI), None),  # a bump over the 100 gwei cap waits
    ],
)
def test_overhead_fees(strategy: Any, previous: Fees | None, expected: Fees | None) -> None:
    policy = FeePolicy(strategy=strategy, max_fee_per_gas_wei=100 * GWEI)
    assert overhead_fees(policy, 10 * GWEI, 3 * GWEI, previous) == expected


@pytest.mark.parametrize(("mode", "reason"), [("off", "approval missing"), ("bounded", "approval pending")])
async def test_a_blocks_liquidations_must_fit_in_the_allowance_together(
    store: Store, mode: ApprovalMode, reason: str
) -> None:
    """Each liquidation draws the allowance down: two that fit alone but not together are not both
    sent (the second would revert on chain, its simulation at the head cannot see the first)."""
    node = unapproved(usdc=1_500 * ETHER)
    attempts = await attempt(executor(node, store, mode), item(USERS[0], 2 * ETHER), item(USERS[1], ETHER))
    assert outcomes(attempts) == [("sent", ""), ("skipped", reason)]
    assert node.sent_nonces()[0] == (5, calldata(USERS[0]))
    assert node.approvals() == ([] if mode == "off" else [(6, token(USDC), POOL, HELD)])


async def test_a_nonce_used_by_a_transaction_the_keeper_did_not_send_is_dropped_and_freed(
    store: Store,
) -> None:
    """The operator spent nonce 5 by hand: no receipt of the keeper's, the account's count past it.
    The record is dropped (not left pending forever), the position freed; nonce 6 still waits."""
    node = unapproved(usdc=HELD)
    ex = executor(node, store)
    await attempt(ex, item(USERS[0], ETHER), item(USERS[1], ETHER), block=100)
    node.chain_nonce = CHAIN_NONCE + 1
    assert await ex.track(101, BASE_FEE, lambda tx: True) == []
    by_nonce = {tx.nonce: (tx.state, tx.note) for tx in store.transactions()}
    assert by_nonce == {
        5: (TxState.DROPPED, "nonce used by a transaction the keeper did not send"),
        6: (TxState.PENDING, None),
    }
    assert not ex.in_flight(PositionKey(POOL, USERS[0])) and ex.in_flight(PositionKey(POOL, USERS[1]))


async def test_a_replaced_original_mined_after_all_is_settled_through_its_replacement(store: Store) -> None:
    node = unapproved(usdc=HELD)
    ex = executor(node, store)
    await attempt(ex, item(USERS[0], ETHER), block=100)
    original = node.raw_sent[-1]
    await ex.track(102, BASE_FEE, lambda tx: True)  # two blocks unmined: a fee bump
    assert len(node.raw_sent) == 2
    node.raw_sent = [original]
    node.mine_all(103)  # the original is the one included
    node.chain_nonce = CHAIN_NONCE + 1
    (settled,) = await ex.track(103, BASE_FEE, lambda tx: True)
    assert settled.note is None and [tx.state for tx in store.transactions()] == [
        TxState.MINED,
        TxState.DROPPED,
    ]
