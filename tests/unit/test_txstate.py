"""Pure tests of transaction states and the nonce manager: no chain, no store, no event loop."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from keeper.errors import Halt
from keeper.execution.nonces import NonceManager
from keeper.protocols.base import PositionKey
from keeper.state.txstate import TERMINAL, SentTx, TxState, allowed

S = TxState
LEGAL = {
    (S.PENDING, S.REPLACED),
    (S.PENDING, S.MINED),
    (S.PENDING, S.REVERTED),
    (S.PENDING, S.DROPPED),
    (S.REPLACED, S.MINED),
    (S.REPLACED, S.REVERTED),
    (S.REPLACED, S.DROPPED),
}


def sent(nonce: int, user: str = "0xu1", market: str = "0xpool", tx_hash: str | None = None) -> SentTx:
    return SentTx(
        nonce=nonce,
        tx_hash=tx_hash or f"0xh{nonce}-{user}",
        protocol="aave-main",
        market=market,
        user=user,
        raw_tx="0x02f8",
        max_fee_per_gas=30 * 10**9,
        max_priority_fee_per_gas=10**9,
        gas_limit=500_000,
        expected_profit_wei=10**16,
        sent_block=100,
    )


# -- transitions ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("from_state", "to_state"), list(itertools.product(TxState, TxState)))
def test_transition_table(from_state: TxState, to_state: TxState) -> None:
    assert allowed(from_state, to_state) is ((from_state, to_state) in LEGAL)


@pytest.mark.parametrize("state", sorted(TERMINAL))
def test_nothing_leaves_a_terminal_state(state: TxState) -> None:
    assert not any(allowed(state, to) for to in TxState)


def test_states_spell_like_the_store_column() -> None:
    assert {s.value for s in TxState} == {"pending", "replaced", "mined", "dropped", "reverted"}
    assert {S.MINED, S.REVERTED, S.DROPPED} == TERMINAL


def test_a_sent_tx_starts_pending_and_names_its_position() -> None:
    tx = sent(3, user="0xabc", market="0xm")
    assert tx.state is S.PENDING and tx.in_flight
    assert tx.position == PositionKey("0xm", "0xabc")
    assert (tx.mined_block, tx.gas_used, tx.effective_gas_price, tx.note) == (None, None, None, None)


# -- nonce manager --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("chain_nonce", "in_flight_nonces", "expected_next"),
    [
        (0, [], 0),
        (7, [], 7),
        (5, [5, 6], 7),  # the node has not seen our in-flight transactions (e.g. it restarted)
        (9, [5, 6], 9),  # they were mined and more were sent from elsewhere: trust the chain
        (5, [8], 9),  # never below an in-flight nonce, even past a gap
        (7, [6], 7),
    ],
)
def test_start_resumes_above_the_chain_and_the_in_flight(
    chain_nonce: int, in_flight_nonces: list[int], expected_next: int
) -> None:
    in_flight = [sent(n, user=f"0xu{n}") for n in in_flight_nonces]
    nonces = NonceManager(chain_nonce, in_flight)
    assert nonces.next_nonce == expected_next
    assert nonces.reserve() == expected_next
    assert all(nonces.holder(tx.position) == tx.nonce for tx in in_flight)


def test_a_negative_chain_nonce_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        NonceManager(-1, [])


def test_reserve_hands_out_consecutive_nonces() -> None:
    nonces = NonceManager(4, [])
    assert [nonces.reserve() for _ in range(3)] == [4, 5, 6]


def test_release_gives_back_only_the_newest_reservation() -> None:
    nonces = NonceManager(10, [])
    first, second = nonces.reserve(), nonces.reserve()
    with pytest.raises(Halt, match="release of nonce 10: only the newest unsent reservation"):
        nonces.release(first)
    assert nonces.next_nonce == 12
    nonces.release(second)
    nonces.release(first)  # now the newest one
    assert nonces.reserve() == 10


def test_a_sent_nonce_cannot_be_released_or_confirmed_twice() -> None:
    nonces = NonceManager(0, [])
    nonce = nonces.reserve()
    nonces.confirm(nonce)
    with pytest.raises(Halt, match="release of nonce 0"):
        nonces.release(nonce)
    with pytest.raises(Halt, match="confirm of nonce 0, which is not an open reservation"):
        nonces.confirm(nonce)
    assert nonces.reserve() == 1


def test_an_in_flight_nonce_from_before_the_restart_cannot_be_released() -> None:
    nonces = NonceManager(3, [sent(3)])
    with pytest.raises(Halt):
        nonces.release(3)
    with pytest.raises(Halt):
        nonces.confirm(3)
    assert nonces.next_nonce == 4


def test_confirm_of_a_nonce_never_reserved_halts() -> None:
    with pytest.raises(Halt, match="confirm of nonce 5"):
        NonceManager(0, []).confirm(5)


class NonceMachine(RuleBasedStateMachine):
    """Any interleaving of reserve / confirm / release: no nonce is ever live twice, and no gaps."""

    def __init__(self) -> None:
        super().__init__()
        self.start = 0
        self.nonces = NonceManager(0, [])
        self.open: list[int] = []  # reserved, not sent, oldest first
        self.sent: set[int] = set()
        self.ever_sent: list[int] = []

    @rule(chain=st.integers(0, 50), in_flight=st.lists(st.integers(0, 60), max_size=4, unique=True))
    def restart(self, chain: int, in_flight: list[int]) -> None:
        """Only before anything happened: a restart is modelled by the start parameters."""
        if self.open or self.sent:
            return
        self.nonces = NonceManager(chain, [sent(n, user=f"0xu{n}") for n in in_flight])
        self.start = max([chain, *(n + 1 for n in in_flight)])

    @rule()
    def reserve(self) -> None:
        nonce = self.nonces.reserve()
        assert nonce not in self.open and nonce not in self.sent
        assert nonce >= self.start
        self.open.append(nonce)

    @precondition(lambda self: bool(self.open))
    @rule(data=st.data())
    def confirm(self, data: st.DataObject) -> None:
        nonce = data.draw(st.sampled_from(self.open))
        self.nonces.confirm(nonce)
        self.open.remove(nonce)
        self.sent.add(nonce)
        self.ever_sent.append(nonce)

    @rule(nonce=st.integers(0, 80))
    def release(self, nonce: int) -> None:
        newest_open = bool(self.open) and nonce == max(self.open) and nonce == self.nonces.next_nonce - 1
        if newest_open:
            self.nonces.release(nonce)
            self.open.remove(nonce)
        else:
            before = self.nonces.next_nonce
            with pytest.raises(Halt):
                self.nonces.release(nonce)
            assert self.nonces.next_nonce == before

    @invariant()
    def handed_out_nonces_are_contiguous_and_unique(self) -> None:
        live = sorted([*self.open, *self.sent])
        assert live == list(range(self.start, self.nonces.next_nonce))
        assert len(self.ever_sent) == len(set(self.ever_sent))


TestNonceMachine = NonceMachine.TestCase
TestNonceMachine.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)


@given(st.lists(st.sampled_from("rcx"), max_size=60), st.integers(0, 1000))
def test_reserve_then_confirm_release_or_hold_never_reuses_a_nonce(ops: list[str], chain: int) -> None:
    """The engine's own pattern: reserve, then send (confirm), back out (release) or keep it open."""
    nonces = NonceManager(chain, [])
    sent_nonces: list[int] = []
    held: list[int] = []
    for op in ops:
        nonce = nonces.reserve()
        assert nonce not in sent_nonces and nonce not in held
        if op == "c":
            nonces.confirm(nonce)
            sent_nonces.append(nonce)
        elif op == "x":
            nonces.release(nonce)
        else:
            held.append(nonce)
    assert sorted(sent_nonces + held) == list(range(chain, nonces.next_nonce))
    assert nonces.next_nonce == chain + ops.count("c") + ops.count("r")


# -- one transaction in flight per position -------------------------------------------------------


def test_claim_refuses_a_second_transaction_for_the_same_position() -> None:
    nonces = NonceManager(0, [])
    key, other = PositionKey("0xpool", "0xu1"), PositionKey("0xpool", "0xu2")
    first = nonces.reserve()
    assert nonces.claim(key, first)
    second = nonces.reserve()
    assert not nonces.claim(key, second)
    assert nonces.holder(key) == first
    assert nonces.claim(other, second)
    nonces.free(key)
    nonces.free(key)  # freeing twice is harmless
    assert nonces.holder(key) is None
    assert nonces.claim(key, nonces.reserve())


def test_release_frees_the_positions_its_nonce_claimed() -> None:
    nonces = NonceManager(0, [])
    kept, backed_out = PositionKey("0xpool", "0xu1"), PositionKey("0xpool", "0xu2")
    assert nonces.claim(kept, nonces.reserve())
    nonce = nonces.reserve()
    assert nonces.claim(backed_out, nonce)
    nonces.release(nonce)
    assert nonces.holder(backed_out) is None
    assert nonces.holder(kept) == 0


def test_after_a_restart_in_flight_positions_stay_claimed() -> None:
    in_flight = [sent(4, user="0xu1"), sent(5, user="0xu2")]
    nonces = NonceManager(4, in_flight)
    assert not nonces.claim(PositionKey("0xpool", "0xu1"), nonces.reserve())
    assert nonces.holder(PositionKey("0xpool", "0xu2")) == 5


def test_a_store_with_two_transactions_in_flight_for_one_position_halts() -> None:
    with pytest.raises(Halt, match="two transactions in flight for aave-main 0xpool 0xu1: nonces 4 and 5"):
        NonceManager(0, [sent(4), sent(5)])


def test_cancels_and_gap_fillers_of_one_market_hold_no_position_across_a_restart() -> None:
    """Two cancels in one market both name (market, the keeper's address): a restart with both in
    flight halted on "two transactions in flight" (found by the fault suite's kills)."""
    keeper = "0xkeeper"
    cancels = [
        dataclasses.replace(sent(n, keeper), note=note) for n, note in ((5, "cancel"), (6, "gap filler"))
    ]
    liquidation = sent(7)
    nonces = NonceManager(5, [*cancels, liquidation])
    assert nonces.next_nonce == 8
    assert nonces.holder(PositionKey("0xpool", keeper)) is None
    assert nonces.holder(liquidation.position) == 7
    assert not any(tx.holds_position for tx in cancels) and liquidation.holds_position
