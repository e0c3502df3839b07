"""The executor's decisions for one block, against a fake node and a real SQLite store.

The fake answers the JSON-RPC the executor sends (the wallet's aggregate3 of balances and
allowances, ``eth_estimateGas``, ``eth_sendRawTransaction``) from plain dicts; what is asserted is
the outcome: the attempts, the raw transactions the node received, and what the store recorded.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import rlp  # type: ignore[import-untyped]
from eth_abi.abi import decode, encode
from eth_utils.crypto import keccak

from keeper.chain.multicall import AGGREGATE3_SELECTOR, MULTICALL3
from keeper.chain.rpc import RpcError
from keeper.execution.executor import (
    ALLOWANCE,
    BALANCE_OF,
    FIRST_WAVE,
    REVERT_BACKOFF_BLOCKS,
    Attempt,
    Executor,
)
from keeper.execution.gas import FeePolicy
from keeper.execution.nonces import NonceManager
from keeper.execution.signer import Signer
from keeper.protocols.base import LiquidationQuote, PositionKey
from keeper.risk.opportunity import Opportunity
from keeper.state.store import Store

KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
SIGNER = Signer.from_key(KEY, 31337)
USDC, DAI = "0x" + "c1" * 20, "0x" + "d1" * 20
POOL = "0x" + "90" * 20
USERS = ["0x" + f"{i:02x}" * 20 for i in range(0xA1, 0xAA)]
BASE_FEE = 10**9
GAS = 300_000
CHAIN_NONCE = 5
ETHER = 10**18


@dataclass
class FakeNode:
    """Balances and allowances of the keeper, gas per call (a string: that call reverts)."""

    balances: dict[str, int] = field(default_factory=dict)
    allowances: dict[tuple[str, str], int] = field(default_factory=dict)
    gas: dict[bytes, int | str] = field(default_factory=dict)
    raw_sent: list[str] = field(default_factory=list)
    chain_nonce: int = 0
    """The keeper account's transaction count at any block (nonces below it are used)."""
    calls_at: list[int] = field(default_factory=list)
    """The gas of each plain ``eth_call`` received (a check at a limit): it fails below the call's gas."""
    estimated: int = 0

    async def request(self, method: str, params: Sequence[Any] = ()) -> Any:
        if method == "eth_getTransactionCount":
            return hex(self.chain_nonce)
        if method == "eth_call":
            data, limit = bytes.fromhex(params[0]["data"][2:]), int(params[0]["gas"], 16)
            self.calls_at.append(limit)
            needed = self.gas.get(data, GAS)
            if isinstance(needed, str):
                raise RpcError(method, 3, f"execution reverted: {needed}")
            if limit < needed:
                raise RpcError(method, -32000, "out of gas")
            return "0x"
        if method == "eth_estimateGas":
            self.estimated += 1
            data = bytes.fromhex(params[0]["data"][2:])
            gas = self.gas.get(data, GAS)
            if isinstance(gas, str):
                raise RpcError(method, 3, f"execution reverted: {gas}")
            return hex(gas)
        if method == "eth_sendRawTransaction":
            self.raw_sent.append(params[0])
            return "0x" + keccak(bytes.fromhex(params[0][2:])).hex()
        raise AssertionError(f"unexpected {method}")

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        return [self._aggregate3(params) for method, params in calls if method == "eth_call"]

    def _aggregate3(self, params: Sequence[Any]) -> str:
        assert params[0]["to"] == MULTICALL3
        data = bytes.fromhex(params[0]["data"][2:])
        assert data[:4] == AGGREGATE3_SELECTOR
        (calls,) = decode(["(address,bool,bytes)[]"], data[4:])
        results = []
        for target, _, call in calls:
            token = target.lower()
            if call[:4] == BALANCE_OF.selector:
                value = self.balances.get(token, 0)
            else:
                assert call[:4] == ALLOWANCE.selector
                _, spender = decode(["address", "address"], call[4:])
                value = self.allowances.get((token, spender.lower()), 0)
            results.append((True, encode(["uint256"], [value])))
        return "0x" + encode(["(bool,bytes)[]"], [results]).hex()

    def sent_nonces(self) -> list[tuple[int, bytes]]:
        """(nonce, calldata) of every raw transaction received, in order."""
        fields = [rlp.decode(bytes.fromhex(raw[2:])[1:]) for raw in self.raw_sent]
        return [(int.from_bytes(f[1], "big"), bytes(f[7])) for f in fields]


def funded(amount: int = 10**6 * ETHER) -> FakeNode:
    return FakeNode(
        balances={USDC: amount, DAI: amount},
        allowances={(USDC, POOL): 2**256 - 1, (DAI, POOL): 2**256 - 1},
    )


def item(
    user: str, gross_wei: int, repaid: int = 1_000 * ETHER, debt: str = USDC
) -> tuple[Opportunity, tuple[str, bytes]]:
    quote = LiquidationQuote("aave_v3", POOL, user, "0x" + "e1" * 20, debt, repaid, ETHER)
    return Opportunity("aave", quote, gross_wei), (POOL, calldata(user))


def calldata(user: str) -> bytes:
    return b"\x00\xe8\xed\x50" + bytes.fromhex(user[2:])


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "keeper.sqlite") as opened:
        yield opened


def executor(node: FakeNode, store: Store, live: bool = True) -> Executor:
    policy = FeePolicy(strategy="fixed", max_fee_per_gas_wei=100 * 10**9)
    nonces = NonceManager(CHAIN_NONCE, store.in_flight()) if live else None
    return Executor(node, SIGNER.address, policy, 2_000, store, nonces, SIGNER if live else None)


async def attempt(
    ex: Executor, *items: tuple[Opportunity, tuple[str, bytes]], block: int = 100, path_gas: int | None = None
) -> list[Attempt]:
    """``path_gas``: each call's known path gas, checked with an ``eth_call`` at its limit (inventory)."""
    if path_gas is None:
        return await ex.attempt_all(list(items), block, BASE_FEE)
    return await ex.attempt_all(list(items), block, BASE_FEE, [path_gas] * len(items), check_at_gas=True)


def outcomes(attempts: list[Attempt]) -> list[tuple[str, str]]:
    return [(a.outcome, a.reason.split(":")[0]) for a in attempts]


async def test_profitable_liquidations_go_out_in_the_order_given_with_consecutive_nonces(
    store: Store,
) -> None:
    node = funded()
    ex = executor(node, store)
    best_first = [item(USERS[0], 3 * ETHER), item(USERS[1], 2 * ETHER), item(USERS[2], ETHER)]
    attempts = await attempt(ex, *best_first)
    assert outcomes(attempts) == [("sent", "")] * 3
    assert node.sent_nonces() == [(5, calldata(USERS[0])), (6, calldata(USERS[1])), (7, calldata(USERS[2]))]
    recorded = {tx.user: tx.nonce for tx in store.in_flight()}
    assert recorded == {USERS[0]: 5, USERS[1]: 6, USERS[2]: 7}  # persisted, and the hashes match
    assert {tx.tx_hash for tx in store.in_flight()} == {a.tx_hash for a in attempts}


@pytest.mark.parametrize(
    ("node", "reason"),
    [
        (FakeNode(balances={USDC: 10 * ETHER}, allowances={(USDC, POOL): 2**256 - 1}), "inventory short"),
        (FakeNode(balances={USDC: 10**6 * ETHER}, allowances={(USDC, POOL): ETHER}), "approval missing"),
    ],
)
async def test_what_the_wallet_cannot_pay_is_skipped_and_nothing_is_sent(
    store: Store, node: FakeNode, reason: str
) -> None:
    (skipped,) = await attempt(executor(node, store), item(USERS[0], ETHER))
    assert (skipped.outcome, skipped.reason.split(":")[0]) == ("skipped", reason)
    assert node.raw_sent == [] and store.transactions() == []


async def test_inventory_is_earmarked_within_the_block(store: Store) -> None:
    """One balance pays for the best first; the next that no longer fits is skipped."""
    node = funded(1_500 * ETHER)
    attempts = await attempt(executor(node, store), item(USERS[0], 2 * ETHER), item(USERS[1], ETHER))
    assert outcomes(attempts) == [("sent", ""), ("skipped", "inventory short")]
    assert [nonce for nonce, _ in node.sent_nonces()] == [5]


async def test_a_reverting_simulation_is_skipped_and_gives_its_inventory_back(store: Store) -> None:
    """The give-back reaches the next wave: a wave's prechecks all run before it is simulated."""
    node = funded(1_500 * ETHER)
    node.gas[calldata(USERS[0])] = "health factor not below threshold"
    others = [item(u, 8 * ETHER, repaid=ETHER, debt=DAI) for u in USERS[1:FIRST_WAVE]]
    first_wave = [item(USERS[0], 9 * ETHER), *others]
    attempts = await attempt(executor(node, store), *first_wave, item(USERS[FIRST_WAVE], ETHER))
    assert outcomes(attempts) == [("skipped", "simulation reverted")] + [("sent", "")] * FIRST_WAVE
    assert "health factor not below threshold" in attempts[0].reason
    sent = node.sent_nonces()
    assert [nonce for nonce, _ in sent] == list(range(5, 5 + FIRST_WAVE))  # no nonce spent on the revert
    assert sent[-1] == (5 + FIRST_WAVE - 1, calldata(USERS[FIRST_WAVE]))  # paid with the USDC given back


async def test_a_liquidation_not_worth_its_gas_is_skipped(store: Store) -> None:
    node = funded()
    # 360,000 gas (estimate + 20 %) at up to ~3.25 gwei is ~1.2e15 wei: 1e15 of gross profit cannot pay it
    attempts = await attempt(executor(node, store), item(USERS[0], 10**15), item(USERS[1], ETHER))
    assert outcomes(attempts) == [("skipped", "not profitable after gas"), ("sent", "")]
    assert node.sent_nonces() == [(5, calldata(USERS[1]))]


async def test_one_transaction_per_position_while_it_is_in_flight(store: Store) -> None:
    node = funded()
    ex = executor(node, store)
    await attempt(ex, item(USERS[0], ETHER), block=100)
    assert ex.in_flight(PositionKey(POOL, USERS[0]))
    again = await attempt(ex, item(USERS[0], 2 * ETHER), item(USERS[1], ETHER), block=101)
    assert outcomes(again) == [("skipped", "transaction already in flight"), ("sent", "")]
    assert [nonce for nonce, _ in node.sent_nonces()] == [5, 6]
    assert sorted(tx.user for tx in store.in_flight()) == sorted([USERS[0], USERS[1]])


async def test_a_restarted_executor_knows_what_is_in_flight(store: Store) -> None:
    node = funded()
    await attempt(executor(node, store), item(USERS[0], ETHER))
    restarted = executor(node, store)  # nonces rebuilt from the store
    again = await attempt(restarted, item(USERS[0], ETHER), item(USERS[1], ETHER))
    assert outcomes(again) == [("skipped", "transaction already in flight"), ("sent", "")]
    assert [nonce for nonce, _ in node.sent_nonces()] == [5, 6]


async def test_dry_run_simulates_and_prices_but_sends_and_records_nothing(store: Store) -> None:
    node = funded()
    attempts = await attempt(executor(node, store, live=False), item(USERS[0], ETHER), item(USERS[1], 10**15))
    assert outcomes(attempts) == [("dry_run", ""), ("skipped", "not profitable after gas")]
    assert attempts[0].gas_limit == GAS * 12 // 10
    assert 0 < attempts[0].expected_net_profit_wei < ETHER
    assert node.raw_sent == [] and store.transactions() == []


@dataclass
class MiningNode(FakeNode):
    """Also answers receipts: each hash in ``receipts`` is mined with that status in ``block``."""

    receipts: dict[str, tuple[int, int]] = field(default_factory=dict)

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        if calls and calls[0][0] == "eth_getTransactionReceipt":
            return [self._receipt(params[0]) for _, params in calls]
        return await super().batch(calls)

    def _receipt(self, tx_hash: str) -> dict[str, Any] | None:
        if tx_hash not in self.receipts:
            return None
        status, block = self.receipts[tx_hash]
        return {
            "status": hex(status),
            "blockNumber": hex(block),
            "gasUsed": hex(GAS),
            "effectiveGasPrice": hex(BASE_FEE),
            "logs": [],
        }


@pytest.mark.parametrize(("position_gone", "backs_off"), [(False, True), (True, False)])
async def test_a_reverted_liquidation_backs_off_unless_the_race_was_lost(
    store: Store, position_gone: bool, backs_off: bool
) -> None:
    """A revert the maths did not foresee (the position still liquidatable) is not retried for
    `REVERT_BACKOFF_BLOCKS`, twice that after a second one; a race lost (the position gone) is no
    reason to wait, and a success clears the streak."""
    node = MiningNode(**vars(funded()))
    ex = executor(node, store)
    (sent,) = await attempt(ex, item(USERS[0], ETHER), block=100)
    node.receipts[sent.tx_hash] = (0, 101)
    await ex.track(101, BASE_FEE, lambda tx: not position_gone)
    retried = await attempt(ex, item(USERS[0], ETHER), block=102)
    if not backs_off:
        assert outcomes(retried) == [("sent", "")]
        return
    assert outcomes(retried) == [("skipped", "reverted")]
    assert f"until block {101 + REVERT_BACKOFF_BLOCKS}" in retried[0].reason
    (again,) = await attempt(ex, item(USERS[0], ETHER), block=101 + REVERT_BACKOFF_BLOCKS)
    node.receipts[again.tx_hash] = (0, 112)
    await ex.track(112, BASE_FEE, lambda tx: True)
    (third,) = await attempt(ex, item(USERS[0], ETHER), block=112 + REVERT_BACKOFF_BLOCKS)
    assert third.outcome == "skipped" and f"until block {112 + 2 * REVERT_BACKOFF_BLOCKS}" in third.reason


def sent_gas_limits(node: FakeNode) -> list[int]:
    return [int.from_bytes(rlp.decode(bytes.fromhex(raw[2:])[1:])[4], "big") for raw in node.raw_sent]


async def test_a_call_with_a_path_gas_is_checked_at_the_limit_it_is_sent_with(store: Store) -> None:
    node = funded()
    attempts = await attempt(executor(node, store), item(USERS[0], ETHER), path_gas=400_000)
    assert outcomes(attempts) == [("sent", "")] and node.estimated == 0
    assert node.calls_at == [480_000] == sent_gas_limits(node) == [attempts[0].gas_limit]  # + the 20 % margin


async def test_a_call_failing_at_its_path_gas_is_estimated_and_sent_with_what_it_needs(store: Store) -> None:
    node = funded()
    node.gas[calldata(USERS[0])] = 900_000  # a user with many reserves: more than the path's 480k
    attempts = await attempt(executor(node, store), item(USERS[0], 10 * ETHER), path_gas=400_000)
    assert outcomes(attempts) == [("sent", "")] and node.estimated == 1
    assert sent_gas_limits(node) == [1_080_000]


async def test_a_call_reverting_at_its_path_gas_and_in_the_estimate_is_not_sent(store: Store) -> None:
    node = funded()
    node.gas[calldata(USERS[0])] = "health factor not below threshold"
    attempts = await attempt(executor(node, store), item(USERS[0], ETHER), path_gas=400_000)
    assert outcomes(attempts) == [("skipped", "simulation reverted")] and node.raw_sent == []
    assert node.calls_at == [480_000] and node.estimated == 1


async def test_the_most_gas_a_mined_liquidation_used_bounds_the_next_checks(store: Store) -> None:
    """Mined at 300k (`MiningNode`'s gasUsed): the next call is checked and sent at 300k + 20 %,
    not at the path's 400k + 20 %."""
    node = MiningNode(**vars(funded()))
    ex = executor(node, store)
    (sent,) = await attempt(ex, item(USERS[0], ETHER), path_gas=400_000)
    node.receipts[sent.tx_hash] = (1, 101)
    await ex.track(101, BASE_FEE, lambda tx: True)
    (next_one,) = await attempt(ex, item(USERS[1], ETHER), path_gas=400_000, block=102)
    assert next_one.outcome == "sent" and node.calls_at == [480_000, GAS * 12 // 10]
    assert sent_gas_limits(node) == [480_000, GAS * 12 // 10] and node.estimated == 0
