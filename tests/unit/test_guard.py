"""The spend guard's pure core: realized loss, rolling windows, the trip decision; and its ledger."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from keeper.chain.types import BlockRef
from keeper.config import GuardConfig
from keeper.execution.guard import (
    DAY_S,
    HOUR_S,
    Limits,
    figures,
    in_window,
    plus,
    reached,
    realized_loss_wei,
    recent,
    settlement,
    window_total,
)
from keeper.execution.spend_guard import SpendGuard, limits_of, reset_json, status_json
from keeper.obs.metrics import Metrics
from keeper.state.guardstate import Cap, Settlement, Trip
from keeper.state.store import Store
from keeper.state.txstate import SentTx

NOW = 1_700_000_000
GWEI = 10**9


def rec(age_s: int, gas: int = 0, loss: int = 0, reverted: bool = False, name: str = "") -> Settlement:
    """A settlement ``age_s`` seconds before NOW."""
    return Settlement(name or f"0x{age_s}-{gas}-{loss}-{reverted}", 0, 1, NOW - age_s, gas, loss, reverted)


@pytest.mark.parametrize(
    ("gas", "success", "liquidations", "approval", "loss"),
    [
        (100, False, 0, False, 100),  # reverted: loses its gas
        (100, False, 0, True, 100),  # a reverted approval too
        (100, True, 0, False, 100),  # mined, liquidated nothing (cancel, gap filler, all skipped)
        (100, True, 1, False, 0),  # a liquidation realizes at least its gas
        (100, True, 3, False, 0),
        (100, True, 0, True, 0),  # an approval is an expense, not a loss
        (0, False, 0, False, 0),
    ],
)
def test_realized_loss(gas: int, success: bool, liquidations: int, approval: bool, loss: int) -> None:
    assert realized_loss_wei(gas, success, liquidations, approval) == loss


def test_settlement_is_the_receipts_gas_times_price() -> None:
    s = settlement(
        "0xa", 7, 100, NOW, success=False, gas_used=21_000, effective_gas_price=3 * GWEI,
        liquidations=0, approval=False,
    )  # fmt: skip
    assert s == Settlement("0xa", 7, 100, NOW, 63_000 * GWEI, 63_000 * GWEI, True)


@pytest.mark.parametrize(
    ("at_s", "now_s", "window_s", "counted"),
    [
        (NOW, NOW, HOUR_S, True),
        (NOW - HOUR_S + 1, NOW, HOUR_S, True),
        (NOW - HOUR_S, NOW, HOUR_S, False),  # exactly one window old: out (the window is (now-w, now])
        (NOW - DAY_S + 1, NOW, DAY_S, True),
        (NOW - DAY_S, NOW, DAY_S, False),
        (NOW + 50, NOW, HOUR_S, True),  # stamped after now (clock skew, a reorg): still counted
    ],
)
def test_window_edges(at_s: int, now_s: int, window_s: int, counted: bool) -> None:
    assert in_window(at_s, now_s, window_s) is counted


def test_hour_and_day_figures_from_the_same_records() -> None:
    records = [
        rec(10, gas=5, loss=1),
        rec(HOUR_S - 1, gas=7, loss=2, reverted=True),
        rec(HOUR_S, gas=11, loss=4, reverted=True),  # left the hour, still in the day
        rec(DAY_S - 1, gas=13, loss=8),
        rec(DAY_S, gas=17, loss=16, reverted=True),  # left the day too
    ]
    assert figures(records, NOW, Limits(revert_window_s=HOUR_S)) == {
        Cap.GAS_PER_HOUR: 12,
        Cap.GAS_PER_DAY: 36,
        Cap.LOSS_PER_HOUR: 3,
        Cap.LOSS_PER_DAY: 15,
        Cap.REVERTS: 1,
    }
    assert figures(records, NOW, Limits(revert_window_s=DAY_S + 1))[Cap.REVERTS] == 3


@pytest.mark.parametrize(
    ("limits", "cap", "figure"),
    [
        (Limits(gas_per_hour_wei=12), Cap.GAS_PER_HOUR, 12),  # reached at the limit, not only above
        (Limits(gas_per_hour_wei=13), None, 0),
        (Limits(gas_per_hour_wei=100, gas_per_day_wei=36), Cap.GAS_PER_DAY, 36),  # the hour allows it
        (Limits(loss_per_hour_wei=3), Cap.LOSS_PER_HOUR, 3),
        (Limits(loss_per_hour_wei=4, loss_per_day_wei=15), Cap.LOSS_PER_DAY, 15),
        (Limits(max_reverts=1), Cap.REVERTS, 1),
        (Limits(max_reverts=2), None, 0),
        (Limits(max_reverts=2, revert_window_s=DAY_S), Cap.REVERTS, 2),
        (Limits(gas_per_hour_wei=1, max_reverts=1), Cap.GAS_PER_HOUR, 12),  # the first cap in order wins
        (Limits(), None, 0),  # no caps at all
    ],
)
def test_which_cap_trips(limits: Limits, cap: Cap | None, figure: int) -> None:
    records = [rec(10, gas=5, loss=1), rec(HOUR_S - 1, gas=7, loss=2, reverted=True)]
    records += [rec(HOUR_S, gas=11, loss=4, reverted=True), rec(DAY_S - 1, gas=13, loss=8)]
    trip = reached(records, NOW, 42, limits, "0xlast")
    if cap is None:
        assert trip is None
    else:
        assert trip == Trip(cap, limits.window_s(cap), figure, limits.limit(cap) or 0, NOW, 42, "0xlast")


records_strategy = st.lists(
    st.builds(
        rec,
        age_s=st.integers(-100, 2 * DAY_S),
        gas=st.integers(0, 10**18),
        loss=st.integers(0, 10**18),
        reverted=st.booleans(),
    ),
    max_size=40,
)


@given(records_strategy, st.integers(1, 3 * DAY_S))
def test_window_total_is_the_brute_force_sum(records: list[Settlement], window_s: int) -> None:
    expected = 0
    for r in records:
        if NOW - r.at_s < window_s:
            expected += r.gas_paid_wei
    assert window_total(records, NOW, window_s, lambda r: r.gas_paid_wei) == expected


@given(records_strategy)
def test_the_day_never_counts_less_than_the_hour(records: list[Settlement]) -> None:
    values = figures(records, NOW, Limits())
    assert values[Cap.GAS_PER_DAY] >= values[Cap.GAS_PER_HOUR]
    assert values[Cap.LOSS_PER_DAY] >= values[Cap.LOSS_PER_HOUR]


@given(records_strategy, st.integers(1, 10**18), st.integers(1, 10**18))
def test_trips_exactly_when_a_figure_reaches_its_limit(
    records: list[Settlement], gas_limit: int, loss_limit: int
) -> None:
    limits = Limits(gas_per_day_wei=gas_limit, loss_per_day_wei=loss_limit)
    values = figures(records, NOW, limits)
    trip = reached(records, NOW, 1, limits)
    should = values[Cap.GAS_PER_DAY] >= gas_limit or values[Cap.LOSS_PER_DAY] >= loss_limit
    assert (trip is not None) is should
    if trip is not None:
        assert trip.figure == values[trip.cap] >= trip.limit


@given(records_strategy, records_strategy, st.integers(1, 2 * DAY_S))
def test_counting_receipts_one_by_one_equals_summing_them_all(
    history: list[Settlement], block: list[Settlement], revert_window_s: int
) -> None:
    """The shell adds each receipt of a block (stamped at the block's time) to the block's figures."""
    limits = Limits(revert_window_s=revert_window_s)
    now = [replace(r, at_s=NOW) for r in block]
    values = figures(history, NOW, limits)
    for record in now:
        values = plus(values, record)
    assert values == figures(history + now, NOW, limits)


@given(records_strategy, st.integers(1, 2 * DAY_S))
def test_forgetting_old_records_changes_no_figure(records: list[Settlement], revert_window_s: int) -> None:
    limits = Limits(revert_window_s=revert_window_s)
    assert figures(recent(records, NOW, limits), NOW, limits) == figures(records, NOW, limits)


def test_config_zero_is_no_cap_and_the_defaults_are_caps() -> None:
    assert limits_of(GuardConfig(max_gas_per_hour_wei=0, max_reverts=0)).limit(Cap.GAS_PER_HOUR) is None
    assert limits_of(GuardConfig(max_reverts=0)).limit(Cap.REVERTS) is None
    defaults = limits_of(GuardConfig())
    assert all(defaults.limit(cap) for cap in Cap)
    # the devnet's 320-liquidation flash crash pays ~0.1 ETH of gas: far from every default
    assert min(defaults.limit(c) or 0 for c in (Cap.GAS_PER_HOUR, Cap.GAS_PER_DAY)) >= 10**18


# -- the ledger in the store -----------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(tmp_path / "store.sqlite")


def test_settlements_and_trip_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    trip = Trip(Cap.LOSS_PER_DAY, DAY_S, 2 * 10**20, 10**20, NOW, 9, "0xb")
    with Store.open(path) as store:
        assert store.record_settlement(rec(5, gas=10**20, loss=10**20, name="0xa"))
        assert store.record_settlement(rec(1, gas=10**20, loss=10**20, reverted=True, name="0xb"), trip)
        assert not store.record_settlement(rec(1, gas=1, name="0xb"))  # a hash counts once
    with Store.open(path) as store:
        assert store.guard_trip() == trip
        assert [s.tx_hash for s in store.settlements(NOW - HOUR_S)] == ["0xa", "0xb"]
        second = rec(1, gas=10**20, loss=10**20, reverted=True, name="0xb")
        assert store.settlements(NOW - HOUR_S)[1] == second
        assert store.settlements(NOW - 3) == [store.settlements(NOW - HOUR_S)[1]]


def test_the_first_trip_recorded_is_kept(store: Store) -> None:
    first = Trip(Cap.GAS_PER_HOUR, HOUR_S, 5, 5, NOW, 1, "0xa")
    store.record_trip(first)
    store.record_trip(Trip(Cap.REVERTS, HOUR_S, 3, 3, NOW, 2, "0xb"))
    assert store.guard_trip() == first


def test_reset_clears_the_trip_and_forgives_what_was_counted(store: Store) -> None:
    limits = Limits(gas_per_hour_wei=10)
    store.record_settlement(rec(5, gas=6, name="0xa"))
    trip = Trip(Cap.GAS_PER_HOUR, HOUR_S, 12, 10, NOW, 1, "0xb")
    store.record_settlement(rec(4, gas=6, name="0xb"), trip)
    status = status_json(store, limits, NOW)
    assert status["tripped"] and status["caps"]["gas_per_hour"] == {
        "window_s": HOUR_S, "figure": "12", "limit": "10",
    }  # fmt: skip
    assert "gas_per_hour reached: 12 wei" in status["reason"]
    cleared = reset_json(store)
    assert cleared["cleared"]["cap"] == "gas_per_hour" and cleared["settlements_forgiven"] == 2
    assert store.guard_trip() is None and store.settlements(0) == []
    store.record_settlement(rec(1, gas=3, name="0xc"))  # counted again from the reset on
    after = status_json(store, limits, NOW)
    assert not after["tripped"] and after["caps"]["gas_per_hour"]["figure"] == "3"
    assert reset_json(store) == {"reset": True, "cleared": None, "settlements_forgiven": 1}


def test_a_store_from_before_the_guard_upgrades_and_keeps_its_transactions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from keeper.state import store as store_module

    path = tmp_path / "store.sqlite"
    with monkeypatch.context() as old_keeper:
        old_keeper.setattr(store_module, "MIGRATIONS", store_module.MIGRATIONS[:2])
        old_keeper.setattr(store_module, "SCHEMA_VERSION", 2)
        with Store.open(path) as old:
            assert old.transactions() == []
    with Store.open(path) as store:
        assert store.guard_trip() is None and store.settlements(0) == []
        assert store.record_settlement(rec(1, gas=5, name="0xa"))
        assert store.settlements(0) == [rec(1, gas=5, name="0xa")]


# -- the shell over a real store: receipts in, trips out -------------------------------------------


def sent_tx(nonce: int, note: str | None = None) -> SentTx:
    return SentTx(
        nonce, f"0x{nonce:064x}", "aave", "0xpool", "0xuser", "0x02", 2 * GWEI, GWEI, 500_000, 10**15, 1,
        note=note,
    )  # fmt: skip


def receipt(block: int, status: int, gas_used: int, price: int = GWEI) -> dict[str, object]:
    return {
        "blockNumber": hex(block), "status": hex(status), "gasUsed": hex(gas_used),
        "effectiveGasPrice": hex(price), "logs": [],
    }  # fmt: skip


def test_the_shell_trips_persists_and_picks_up_a_reset(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    limits = Limits(loss_per_hour_wei=3 * 21_000 * GWEI, max_reverts=5)
    registry_metrics = Metrics(CollectorRegistry())
    with Store.open(path) as store:
        guard = SpendGuard(store, limits, registry_metrics)
        guard.start(BlockRef(10, "0xa", NOW))
        for nonce in range(2):  # two cancels, mined: each loses its 21,000 gas
            guard.observe(sent_tx(nonce, "cancel"), receipt(10, 1, 21_000))
        assert guard.allows and guard.refusal() == ""
        guard.at_block(11, NOW + 12)
        guard.observe(sent_tx(2), receipt(11, 0, 21_000))  # reverted: the third loss reaches the cap
        guard.observe(sent_tx(2), receipt(11, 0, 21_000))  # the same receipt again counts once
        assert not guard.allows and guard.trip is not None
        assert guard.trip.cap is Cap.LOSS_PER_HOUR and guard.trip.figure == 63_000 * GWEI
        assert "loss_per_hour reached" in guard.refusal()
        sample = registry_metrics.registry.get_sample_value
        assert sample("keeper_spend_guard_tripped", {"cap": "loss_per_hour"}) == 1
        assert sample("keeper_spend_guard_reverted_transactions") == 1
    with Store.open(path) as store:  # a restart: still tripped, whatever the windows say now
        restarted = SpendGuard(store, limits, Metrics(CollectorRegistry()))
        restarted.start(BlockRef(500, "0xb", NOW + 2 * DAY_S))
        assert not restarted.allows
        reset_json(store)  # `keeper guard reset` from another process, the keeper running
        restarted.at_block(501, NOW + 2 * DAY_S + 12)
        assert restarted.allows


def test_a_cap_lowered_in_the_config_trips_at_start_up(tmp_path: Path) -> None:
    with Store.open(tmp_path / "store.sqlite") as store:
        guard = SpendGuard(store, Limits(), Metrics(CollectorRegistry()))
        guard.start(BlockRef(10, "0xa", NOW))
        guard.observe(sent_tx(0), receipt(10, 1, 100_000))  # a liquidation: gas, no loss
        assert guard.allows
        lowered = SpendGuard(store, Limits(gas_per_day_wei=100_000 * GWEI), Metrics(CollectorRegistry()))
        lowered.start(BlockRef(20, "0xb", NOW + HOUR_S))
        assert lowered.trip == Trip(
            Cap.GAS_PER_DAY, DAY_S, 100_000 * GWEI, 100_000 * GWEI, NOW + HOUR_S, 20, ""
        )
        assert store.guard_trip() == lowered.trip


def test_the_metrics_know_every_cap() -> None:
    from keeper.obs.metrics import GUARD_CAPS

    assert tuple(str(cap) for cap in Cap) == GUARD_CAPS
    sample = Metrics(CollectorRegistry()).registry.get_sample_value
    assert [sample("keeper_spend_guard_tripped", {"cap": str(cap)}) for cap in Cap] == [0.0] * 5
