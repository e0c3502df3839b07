"""The spend guard on the real devnet: each cap trips on a real keeper run, and then it holds.

One store and one chain story shared by every assertion (module-scoped), on the session's
`timed_devnet` (inventory strategy, the devnet keeper account), one keeper run per cap:

1. - 4. Real reverted keeper transactions (`crash_then_restore`): a WETH crash is mined with
   interval mining paused and the price's restore waits in the mempool ahead of whatever the
   keeper sends, so the keeper's liquidations (simulated at the crash block, where they pass)
   revert in the next block. ``max_gas_per_day_wei = 1`` with the hour cap at 1 ETH (the day cap
   trips on a figure the hour cap allows), ``max_loss_per_hour_wei = 1``,
   ``max_loss_per_day_wei = 1`` (hour at 1 ETH), then ``max_reverts = 3``. Each leaves nothing
   liquidatable (the price is back), so the next run starts clean.
5. ``max_gas_per_hour_wei = 1``: a WETH crash; the first mined liquidations trip it. A WBTC
   crash while tripped: nothing is sent (logs, the account's nonce), /readyz says why. A restart
   is still stopped; `keeper guard status` says so; `keeper guard reset` (the keeper running) and
   it sends the WBTC liquidations at once.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from keeper.devnet.abi import decode_result, encode_call
from keeper.devnet.feeds import discover_feeds, moved_answer
from keeper.state.store import Store
from tests.conftest import Devnet, free_port, run_keeper
from tests.e2e.scenario import morpho_unhealthy, move_price, wait_for_block
from tests.support.config import variant
from tests.support.keeper import Event, KeeperProcess

ETH = 10**18
NO_CAPS = {
    "max_gas_per_hour_wei": 0,
    "max_gas_per_day_wei": 0,
    "max_loss_per_hour_wei": 0,
    "max_loss_per_day_wei": 0,
    "max_reverts": 0,
}
CRASH = "-1"
"""WETH's move: 16 Morpho liquidations on the seeded devnet (WBTC -1 %: 29), enough for every cap,
and quick to send and mine (a -25 % crash is 300)."""


def named(name: str, **fields: object) -> Callable[[Event], bool]:
    return lambda e: e.get("event") == name and all(e.get(k) == v for k, v in fields.items())


@dataclass
class Phase:
    """One keeper run against one guard config."""

    cap: str
    trip: Event
    events: list[Event]
    readyz: tuple[int, dict[str, Any]]
    metrics: str
    reverted_on_chain: int = 0


@dataclass
class Story:
    phases: dict[str, Phase] = field(default_factory=dict)
    nonce_at_trip: int = 0
    nonce_after_second_crash: int = 0
    liquidatable_while_tripped: int = 0
    sent_after_trip: list[Event] = field(default_factory=list)
    restart_events: list[Event] = field(default_factory=list)
    restart_readyz: tuple[int, dict[str, Any]] = (0, {})
    status: dict[str, Any] = field(default_factory=dict)
    reset: dict[str, Any] = field(default_factory=dict)
    sent_after_reset: list[Event] = field(default_factory=list)
    mined_after_reset: list[Event] = field(default_factory=list)


class Runner:
    def __init__(self, devnet: Devnet, directory: Path) -> None:
        self.devnet, self.directory = devnet, directory
        self.store = directory / "store.sqlite"
        self.runs = 0
        self.keepers: list[KeeperProcess] = []

    def dump(self) -> None:
        """Each run's log lines next to its config, for a failure's post-mortem."""
        for index, keeper in enumerate(self.keepers, 1):
            (self.directory / f"keeper-{index}.log").write_text("".join(keeper.lines))

    def start(self, guard: dict[str, int]) -> tuple[KeeperProcess, str, Path]:
        self.runs += 1
        port = free_port()
        changes = {
            # no fee bumps in these short runs (a crash's 300 liquidations take a few blocks to
            # mine), and a stop that waits at most 5 s for what is in flight
            "execution": {"mode": "live", "replace_after_blocks": 50, "shutdown_grace_s": 5},
            "store": {"path": str(self.store)},
            "metrics": {"listen": f"127.0.0.1:{port}"},
            "guard": {**NO_CAPS, **guard},
        }
        config = variant(self.devnet, self.directory / f"keeper-{self.runs}.toml", changes)
        keeper = KeeperProcess(config)
        self.keepers.append(keeper)
        keeper.wait_for(named("keeper_ready"), timeout_s=90)
        return keeper, f"http://127.0.0.1:{port}", config

    def guard_cli(self, command: str, config: Path) -> dict[str, Any]:
        done = run_keeper("guard", command, "--config", str(config))
        assert done.returncode == 0, done.stderr
        result: dict[str, Any] = json.loads(done.stdout)
        return result


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def readyz(base: str) -> tuple[int, dict[str, Any]]:
    status, body = get(base + "/readyz")
    return status, json.loads(body)


def nonce(devnet: Devnet, tag: str = "pending") -> int:
    return int(devnet.rpc.call("eth_getTransactionCount", [devnet.summary["keeper_address"], tag]), 16)


def processed(base: str, block: int, timeout_s: float = 30) -> None:
    """Wait until the keeper processed ``block`` (``keeper_head_block``: set for every block, also
    those a tripped keeper only tracks, which log no ``block_handled``)."""
    deadline = time.monotonic() + timeout_s
    while True:
        head = re.search(r"^keeper_head_block (\S+)$", get(base + "/metrics")[1], re.MULTILINE)
        if head is not None and float(head.group(1)) >= block:
            return
        assert time.monotonic() < deadline, f"the keeper never processed block {block}"
        time.sleep(0.1)


def settle(devnet: Devnet, base: str, blocks: int = 2) -> None:
    """Wait until the keeper processed ``blocks`` more blocks and nothing of its is pending."""
    target = devnet.rpc.block_number() + blocks
    wait_for_block(devnet.rpc, target)
    processed(base, target)
    deadline = time.monotonic() + 20
    while nonce(devnet) != nonce(devnet, "latest"):
        assert time.monotonic() < deadline, "keeper transactions stuck in the mempool"
        time.sleep(0.2)


def crash_then_restore(devnet: Devnet, keeper: KeeperProcess, symbol: str, percent: str) -> tuple[int, int]:
    """The crash in a block of its own, then, before the keeper has seen it, the price restored by
    a transaction waiting in the mempool (mining paused). The keeper simulates at the crash block,
    where its liquidations pass, and sends them behind the restore (the devnet's Anvil orders its
    mempool first come, first served), so in the next block they revert: a front-run the keeper
    could not see. Returns how many it sent for the crash, and the block they reverted in."""
    rpc = devnet.rpc
    feed = discover_feeds(rpc)[symbol]
    (owner,) = decode_result(["address"], rpc.eth_call(feed, encode_call("owner()")))
    (answer,) = decode_result(["int256"], rpc.eth_call(feed, encode_call("latestAnswer()")))
    rpc.call("evm_setIntervalMining", [0])
    try:
        update = encode_call("updateAnswer(int256)", moved_answer(int(answer), Decimal(percent)))
        rpc.call("eth_sendTransaction", [{"from": owner, "to": feed, "data": "0x" + update.hex()}])
        rpc.call("evm_mine")
        restore = encode_call("updateAnswer(int256)", int(answer))
        restoring = rpc.call(
            "eth_sendTransaction", [{"from": owner, "to": feed, "data": "0x" + restore.hex()}]
        )
        crash = rpc.block_number()
        keeper.wait_for(lambda e: e.get("event") == "block_handled" and e["block"] == crash)
        sent = [e for e in keeper.named("liquidation_sent") if e["block"] == crash]
        rpc.call("evm_mine")
    finally:
        rpc.call("evm_setIntervalMining", [1])
    block = rpc.call("eth_getBlockByNumber", [hex(crash + 1), False])
    assert block["transactions"][0] == restoring, "the restore did not go first"
    return len(sent), crash + 1


def reverted_receipts(devnet: Devnet, first: int, last: int) -> int:
    keeper = devnet.summary["keeper_address"].lower()
    count = 0
    for number in range(first, last + 1):
        for receipt in devnet.rpc.call("eth_getBlockReceipts", [hex(number)]) or []:
            count += receipt["from"].lower() == keeper and receipt["status"] == "0x0"
    return count


def tripped_phase(runner: Runner, cap: str, guard: dict[str, int]) -> Phase:
    """Start a keeper with ``guard``, make its liquidations revert, wait for the trip, reset."""
    devnet = runner.devnet
    keeper, base, _ = runner.start(guard)
    sent, restored = crash_then_restore(devnet, keeper, "WETH", CRASH)
    assert sent >= 3
    trip = keeper.wait_for(named("spend_guard_tripped", cap=cap), timeout_s=30)
    phase = Phase(cap, trip, keeper.events, readyz(base), get(base + "/metrics")[1])
    phase.reverted_on_chain = reverted_receipts(devnet, restored, restored)
    assert keeper.stop() == 0, keeper.lines[-5:]
    with Store.open(runner.store) as store:  # what `keeper guard reset` does (tested below), faster
        assert store.reset_guard()[0] is not None
    return phase


def first_story(runner: Runner, story: Story) -> None:
    """Gas per hour trips; while tripped nothing is sent; a restart holds; reset resumes."""
    devnet = runner.devnet
    rpc = devnet.rpc
    keeper, base, config = runner.start({"max_gas_per_hour_wei": 1})
    move_price(devnet, "WETH", CRASH)
    trip = keeper.wait_for(named("spend_guard_tripped"), timeout_s=30)
    settle(devnet, base, blocks=1)
    story.nonce_at_trip = nonce(devnet)
    at = keeper.events.index(trip)
    second = move_price(devnet, "WBTC", CRASH)
    wait_for_block(rpc, second.block + 2)
    processed(base, second.block + 1)
    story.nonce_after_second_crash = nonce(devnet)
    fell = morpho_unhealthy(devnet, second.block) - morpho_unhealthy(devnet, second.block - 1)
    story.liquidatable_while_tripped = len(fell)
    story.sent_after_trip = [e for e in keeper.events[at:] if e.get("event") == "liquidation_sent"]
    story.phases["gas_per_hour"] = Phase(
        "gas_per_hour", trip, keeper.events, readyz(base), get(base + "/metrics")[1]
    )
    assert keeper.stop() == 0, keeper.lines[-5:]

    keeper, base, config = runner.start({"max_gas_per_hour_wei": 1})  # the restart: still stopped
    keeper.wait_for(named("spend_guard_tripped", restored=True))
    restarted_at = rpc.block_number()
    story.status = runner.guard_cli("status", config)
    processed(base, restarted_at + 1)  # a block handled after the restart, with the held-back positions
    story.restart_readyz = readyz(base)
    story.restart_events = list(keeper.events)
    story.reset = runner.guard_cli("reset", config)  # with the keeper running: it resumes by itself
    resumed = keeper.wait_for(named("spend_guard_reset"))
    keeper.wait_for(named("liquidation_mined"), timeout_s=30)
    after = keeper.events.index(resumed)
    story.sent_after_reset = [e for e in keeper.events[after:] if e.get("event") == "liquidation_sent"]
    story.mined_after_reset = [e for e in keeper.events[after:] if e.get("event") == "liquidation_mined"]
    assert keeper.stop() == 0, keeper.lines[-5:]


@pytest.fixture(scope="module")
def story(timed_devnet: Devnet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    rpc = timed_devnet.rpc
    snapshot = rpc.call("evm_snapshot")
    runner = Runner(timed_devnet, tmp_path_factory.mktemp("spend-guard"))
    try:
        story = Story()
        # the revert phases first: each ends with the price restored and nothing left liquidatable,
        # so the next keeper starts with nothing to send before its own crash
        story.phases["gas_per_day"] = tripped_phase(
            runner, "gas_per_day", {"max_gas_per_hour_wei": ETH, "max_gas_per_day_wei": 1}
        )
        story.phases["loss_per_hour"] = tripped_phase(runner, "loss_per_hour", {"max_loss_per_hour_wei": 1})
        story.phases["loss_per_day"] = tripped_phase(
            runner, "loss_per_day", {"max_loss_per_hour_wei": ETH, "max_loss_per_day_wei": 1}
        )
        story.phases["reverts"] = tripped_phase(runner, "reverts", {"max_reverts": 3})
        first_story(runner, story)
        yield story
    finally:
        runner.dump()
        assert rpc.call("evm_revert", [snapshot]) is True
        rpc.call("anvil_dropAllTransactions")


@pytest.mark.parametrize("cap", ["gas_per_hour", "gas_per_day", "loss_per_hour", "loss_per_day", "reverts"])
def test_each_cap_trips_on_a_real_run_and_says_why(story: Story, cap: str) -> None:
    phase = story.phases[cap]
    trip = phase.trip
    assert trip["level"] == "error" and trip["cap"] == cap and trip["restored"] is False
    assert int(trip["figure"]) >= int(trip["limit"]) > 0
    assert trip["window_s"] == {"reverts": 3600, "gas_per_day": 86400, "loss_per_day": 86400}.get(cap, 3600)
    assert cap in trip["reason"] and "keeper guard reset" in trip["reason"]
    status, body = phase.readyz
    assert status == 503 and body["ready"] is False and cap in body["reason"]
    assert body["spend_guard"]["cap"] == cap
    assert f'keeper_spend_guard_tripped{{cap="{cap}"}} 1.0' in phase.metrics
    others = [c for c in story.phases if c != cap]
    assert all(f'keeper_spend_guard_tripped{{cap="{c}"}} 0.0' in phase.metrics for c in others)


def test_the_day_caps_trip_on_figures_the_hour_caps_allow(story: Story) -> None:
    for cap in ("gas_per_day", "loss_per_day"):
        assert 0 < int(story.phases[cap].trip["figure"]) < ETH


def test_loss_and_revert_caps_trip_on_reverted_keeper_transactions_on_chain(story: Story) -> None:
    for cap in ("gas_per_day", "loss_per_hour", "loss_per_day", "reverts"):
        phase = story.phases[cap]
        assert phase.reverted_on_chain >= 3, cap
        # the position is healthy again in the block it reverted in: the keeper calls it a lost race
        reverted = [
            e for e in phase.events if e.get("event") in ("liquidation_reverted", "liquidation_lost_race")
        ]
        assert phase.trip["tx"] in {e["tx"] for e in reverted}, cap  # a reverted liquidation tripped it
    assert int(story.phases["reverts"].trip["figure"]) == 3


def test_a_mined_liquidation_is_gas_but_no_loss(story: Story) -> None:
    """The first crash's liquidations were all mined: gas was paid, the loss figure stayed 0."""
    metrics = story.phases["gas_per_hour"].metrics
    assert 'keeper_spend_guard_realized_loss_wei{window="day"} 0.0' in metrics
    day = 'keeper_spend_guard_gas_paid_wei{window="day"}'
    assert float(next(line for line in metrics.splitlines() if line.startswith(day)).split()[-1]) > 0


def test_nothing_new_is_sent_while_tripped(story: Story) -> None:
    assert story.liquidatable_while_tripped > 0
    assert story.sent_after_trip == []
    assert story.nonce_after_second_crash == story.nonce_at_trip


def test_a_restart_stays_stopped_and_status_says_why(story: Story) -> None:
    restored = [e for e in story.restart_events if e.get("event") == "spend_guard_tripped"]
    assert [e["restored"] for e in restored] == [True] and restored[0]["cap"] == "gas_per_hour"
    assert [e for e in story.restart_events if e.get("event") == "liquidation_sent"] == []
    status, body = story.restart_readyz
    assert status == 503 and "gas_per_hour" in body["reason"]
    assert story.status["tripped"] is True and story.status["trip"]["cap"] == "gas_per_hour"
    assert story.status["caps"]["gas_per_hour"]["limit"] == "1"
    assert int(story.status["caps"]["gas_per_hour"]["figure"]) > 0


def test_reset_clears_it_and_the_keeper_sends_again(story: Story) -> None:
    """No price moved between the WBTC crash and the reset: what it sends are the positions it held
    back while tripped."""
    assert story.reset["cleared"]["cap"] == "gas_per_hour" and story.reset["settlements_forgiven"] > 0
    assert 0 < len(story.sent_after_reset) <= story.liquidatable_while_tripped
    assert {e["tx"] for e in story.mined_after_reset} <= {e["tx"] for e in story.sent_after_reset}
    assert story.mined_after_reset
