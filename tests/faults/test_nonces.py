"""The keeper account's nonce spent from outside while the keeper runs: the operator used the wallet
by hand, once while the keeper had nothing in flight and once taking the nonce of a liquidation
that waited in the pool (a higher-fee transaction with the same nonce replaces it there).

The keeper must notice that the nonce is used by a transaction it did not send (no receipt of its
own, the account's count past it), drop its record, free the position and liquidate it again on a
fresh nonce; and it must not leave a gap or a record pending forever."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest
from eth_account import Account

from keeper.devnet.feeds import set_price
from keeper.state.store import Store
from keeper.state.txstate import TxState
from tests.support.devnet import Devnet

from .invariants import WOULD_NOT_PAY, check_all
from .support import FAULT_KEY, base_fee, flash_keeper, reverted, run_of, stall, wait_event, wait_settled

GWEI = 10**9


def send_by_hand(devnet: Devnet, nonce: int, max_fee_wei: int) -> str:
    """A 1-wei self-transfer from the keeper's key at ``nonce``, as an operator's wallet would."""
    account = Account.from_key(FAULT_KEY)
    signed = account.sign_transaction(
        {
            "type": 2,
            "chainId": devnet.summary["chain_id"],
            "nonce": nonce,
            "to": account.address,
            "value": 1,
            "gas": 21_000,
            "maxFeePerGas": max_fee_wei,
            "maxPriorityFeePerGas": max_fee_wei // 2,
        }
    )
    return str(devnet.rpc.call("eth_sendRawTransaction", ["0x" + signed.raw_transaction.hex()]))


def nonce(devnet: Devnet, address: str, tag: str) -> int:
    return int(devnet.rpc.call("eth_getTransactionCount", [address, tag]), 16)


def waiting_liquidation(devnet: Devnet, address: str, timeout_s: float = 5) -> int:
    """The lowest nonce of a liquidation of the keeper's waiting in the node's pool."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        content = devnet.rpc.call("txpool_content")
        waiting = [
            int(n)
            for section in ("pending", "queued")
            for sender, txs in (content.get(section) or {}).items()
            if sender.lower() == address.lower()
            for n, tx in txs.items()
            if tx["to"].lower() != address.lower()
        ]
        if waiting:
            return min(waiting)
        time.sleep(0.05)
    raise AssertionError("no liquidation of the keeper's waits in the pool")


@pytest.fixture(scope="module")
def spent(timed_devnet: Devnet, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    devnet = timed_devnet
    directory = tmp_path_factory.mktemp("nonces")
    with reverted(devnet):
        keeper = flash_keeper(devnet, directory)
        first = int(keeper.start()["block"]) + 1
        address = keeper.address
        # 1. nothing in flight: the operator's transaction takes the nonce the keeper would use next
        idle = send_by_hand(devnet, nonce(devnet, address, "pending"), 3 * base_fee(devnet) + 10 * GWEI)
        set_price(devnet.rpc, "WETH", move=Decimal("-12"))
        wait_settled(devnet, keeper)
        # 2. in flight: the keeper's bids wait behind a base fee spike; the operator takes the
        # lowest waiting nonce with a bid high enough to be mined at once
        seen = len(keeper.new_events())
        set_price(devnet.rpc, "WBTC", move=Decimal("-12"))
        stall(devnet)
        assert wait_event(keeper, lambda e: e.get("event") == "transactions_persisted", seen, 10)
        taken = waiting_liquidation(devnet, address)
        busy = send_by_hand(devnet, taken, 3 * base_fee(devnet) + 100 * GWEI)
        wait_settled(devnet, keeper)
        keeper.stop()
        with Store.open(directory / "store.sqlite") as store:
            records = store.nonce_records(taken)
        figures = check_all(run_of(devnet, keeper, first, {idle, busy}), directory / "resync")
    return {"keeper": keeper, "taken": taken, "records": records, "by_hand": (idle, busy), **figures}


def test_the_keeper_drops_what_a_hand_sent_transaction_replaced(spent: dict[str, Any]) -> None:
    """The keeper's liquidation at the taken nonce is recorded dropped (nothing of it was mined),
    and the keeper said why."""
    records = spent["records"]
    assert records and all(r.state is TxState.DROPPED for r in records), records
    outside = [e for e in spent["keeper"].events if e.get("event") == "nonce_used_outside"]
    assert spent["taken"] in {e["nonce"] for e in outside}, outside


def test_the_position_of_the_taken_nonce_is_freed_and_decided_again(spent: dict[str, Any]) -> None:
    """Its position was freed: liquidated on a later nonce, or (the base fee still high) skipped as
    not paying for its gas - never left held by the dropped record."""
    events = spent["keeper"].events
    (lost,) = [r for r in spent["records"] if r.user != spent["keeper"].address]
    dropped_at = next(
        i
        for i, e in enumerate(events)
        if e.get("event") == "nonce_used_outside" and e["nonce"] == spent["taken"]
    )
    later = [e for e in events[dropped_at:] if e.get("user") == lost.user]
    mined = [e for e in later if e.get("event") == "liquidation_mined"]
    skipped = [e for e in later if e.get("event") == "opportunity_skipped"]
    assert all(e["nonce"] > spent["taken"] for e in mined), mined
    assert mined or (skipped and any(r in skipped[-1]["reason"] for r in WOULD_NOT_PAY)), later[-3:]


def test_both_hand_sent_transactions_were_mined_and_the_keeper_kept_working(spent: dict[str, Any]) -> None:
    assert spent["keeper_transactions_mined"] >= 50 + len(spent["by_hand"]), spent
