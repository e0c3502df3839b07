"""Bad endpoints in ``chain.rpc_urls``: none may feed state into the book.

Each bad endpoint is a `FaultProxy` in front of the shared 1-second devnet's Anvil: one answering
for another chain, one frozen at the head it had when the keeper started, one answering garbage,
one truncated JSON, one that never answers, one rate-limiting (429), one failing (503). Alone, an
endpoint of another chain is refused in one line before anything is opened; the others make the
keeper wait and retry (logged and counted) and it resumes, no block skipped, when the endpoint
heals. Next to a good endpoint they are ranked down or excluded, and a crash is still liquidated
within 2 blocks; an endpoint of another chain forwards not one call beyond ``eth_chainId``.
Every run ends with the end checks (`tests.faults.local_checks`).
"""

from __future__ import annotations

import os
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from keeper.config import load_config
from tests.support.config import changed, keeper_config, write_config
from tests.support.devnet import Devnet
from tests.support.fault_proxy import Fault, FaultProxy
from tests.support.keeper import KEEPER_KEY, Event, KeeperProcess, named, run_keeper

from .local_checks import crash, end_checks, late_liquidations, settle

BAD_BESIDE_A_GOOD_ONE = (
    Fault.WRONG_CHAIN, Fault.FROZEN, Fault.GARBAGE, Fault.TRUNCATED, Fault.HANG,
    Fault.HTTP_429, Fault.HTTP_503,
)  # fmt: skip
CRASH_PERCENT = "-1"
"""Enough for dozens of liquidations, few enough for the devnet keeper's inventory to pay every one
within two blocks (a deeper crash needs more gas than two 30M-gas blocks hold: capacity, not a fault)."""
TRIED: Counter[str] = Counter()
"""Bad answers the proxies gave over this module, by fault: the figure for the report."""


@pytest.fixture
def proxies(timed_devnet: Devnet) -> Iterator[dict[Fault, FaultProxy]]:
    with ExitStack() as stack:
        made = {
            f: stack.enter_context(FaultProxy(timed_devnet.summary["rpc_url"], f).serving()) for f in Fault
        }
        yield made
        for proxy in made.values():
            TRIED.update({str(fault): n for fault, n in proxy.bad.items()})


def with_urls(config: Path, urls: list[str]) -> Path:
    return write_config(changed(load_config(config, {}), {"chain": {"rpc_urls": urls}}), config)


def metrics(config: Path) -> str:
    listen = load_config(config, {}).metrics.listen
    with urllib.request.urlopen(f"http://{listen}/metrics", timeout=5) as response:
        return str(response.read().decode())


def assert_no_block_missed(events: list[Event]) -> None:
    """Every block number from the first handled to the last was applied and then screened or, when
    a newer head was already known, reported as passed over (its changes screened with the next)."""
    seen = sorted(
        e["block"] for e in events if e.get("event") in ("block_handled", "block_skipped_behind_head")
    )
    assert seen == list(range(seen[0], seen[-1] + 1)), "a block was skipped"


def error_kinds(events: list[Event]) -> Counter[str]:
    return Counter(e["kind"] for e in events if e.get("event") == "rpc_endpoint_failed")


def test_an_endpoint_of_another_chain_alone_is_refused_in_one_line(
    timed_devnet: Devnet, proxies: dict[Fault, FaultProxy], tmp_path: Path
) -> None:
    wrong = proxies[Fault.WRONG_CHAIN]
    config = with_urls(keeper_config(timed_devnet, tmp_path, "live"), [wrong.url])
    for command in ("check-config", "run", "positions"):
        proc = run_keeper(
            command, "--config", str(config), env=dict(os.environ, KEEPER_PRIVATE_KEY=KEEPER_KEY)
        )
        lines = [line for line in proc.stderr.splitlines() if line.startswith("keeper: ")]
        assert proc.returncode == 2, (command, proc.stderr[-400:])
        assert lines == ["keeper: error: chain.chain_id is 31337 but the RPC endpoint serves chain 1"], (
            command
        )
    assert not (tmp_path / "store.sqlite").exists()
    assert wrong.forwarded == Counter(), "an endpoint of another chain was asked for state"


def test_bad_endpoints_beside_a_good_one_feed_nothing_and_a_crash_is_liquidated_on_time(
    timed_devnet: Devnet, proxies: dict[Fault, FaultProxy], tmp_path: Path
) -> None:
    rpc, s = timed_devnet.rpc, timed_devnet.summary
    bad = [proxies[f] for f in BAD_BESIDE_A_GOOD_ONE]
    urls = [
        s["ws_url"],
        *(p.url for p in bad),
        s["rpc_url"],
    ]  # the good one last: every bad one is tried first
    config = with_urls(keeper_config(timed_devnet, tmp_path, "live"), urls)
    snapshot = rpc.call("evm_snapshot")
    try:
        keeper = KeeperProcess(config)
        ready = keeper.wait_for(named("keeper_ready"), timeout_s=120)
        start = int(ready["block"])
        keeper.wait_for(lambda e: e.get("event") == "rpc_endpoint_stale", timeout_s=30)  # the frozen one
        crashed = crash(timed_devnet, "WETH", CRASH_PERCENT)
        late = late_liquidations(timed_devnet, crashed, keeper.events, s["keeper_address"])
        keeper.wait_for(lambda e: e.get("event") == "block_handled" and e["block"] >= crashed.move.block + 2)
        settle(timed_devnet)
        scraped = metrics(config)
        assert keeper.stop() == 0, keeper.lines[-5:]
        (tmp_path / "keeper.log").write_text("".join(keeper.lines))
        assert len(crashed.became) >= 10 and late == [], (len(crashed.became), late)
        end_checks(timed_devnet, keeper, config, start + 1, tmp_path)
    finally:
        assert rpc.call("evm_revert", [snapshot]) is True
        rpc.call("anvil_dropAllTransactions")
    assert proxies[Fault.WRONG_CHAIN].forwarded == Counter()
    assert [e["endpoint"] for e in keeper.named("rpc_endpoint_wrong_chain")] == [
        proxies[Fault.WRONG_CHAIN].url
    ]
    kinds = error_kinds(keeper.events)
    assert {"bad_response", "http_429", "http_5xx"} <= set(kinds), kinds
    assert keeper.named("rpc_endpoint_silent") or kinds["timeout"], "the hung endpoint went unnoticed"
    for kind in ("wrong_chain", "bad_response", "http_429", "http_5xx", "timeout"):
        assert f'kind="{kind}"' in scraped, kind
    assert [
        e for e in keeper.events if e.get("level") == "error" and e["event"] != "rpc_endpoint_wrong_chain"
    ] == []
    assert_no_block_missed(keeper.events)


def test_a_lone_endpoint_that_fails_in_every_way_makes_the_keeper_wait_not_guess(
    timed_devnet: Devnet, proxies: dict[Fault, FaultProxy], tmp_path: Path
) -> None:
    rpc = timed_devnet.rpc
    proxy = proxies[Fault.NONE]
    config = with_urls(keeper_config(timed_devnet, tmp_path, "live"), [proxy.url])
    snapshot = rpc.call("evm_snapshot")
    try:
        keeper = KeeperProcess(config)
        ready = keeper.wait_for(named("keeper_ready"), timeout_s=120)
        start = int(ready["block"])
        for fault, seconds in (
            (Fault.GARBAGE, 2), (Fault.TRUNCATED, 2), (Fault.HTTP_429, 2), (Fault.HTTP_503, 2),
            (Fault.HANG, 3), (Fault.FROZEN, 4),
        ):  # fmt: skip
            proxy.set_fault(fault)
            time.sleep(seconds)
            proxy.set_fault(Fault.NONE)
            healed = rpc.block_number()
            keeper.wait_for(lambda e, b=healed: e.get("event") == "block_handled" and e["block"] >= b, 30)
        settle(timed_devnet)
        assert keeper.stop() == 0, keeper.lines[-5:]
        end_checks(timed_devnet, keeper, config, start + 1, tmp_path)
    finally:
        assert rpc.call("evm_revert", [snapshot]) is True
        rpc.call("anvil_dropAllTransactions")
    kinds = error_kinds(keeper.events)
    assert {"bad_response", "http_429", "http_5xx", "timeout"} <= set(kinds), kinds
    assert keeper.named("rpc_unavailable"), "the outage was not said"
    assert [e for e in keeper.events if e.get("level") == "error"] == []
    assert_no_block_missed(keeper.events)
