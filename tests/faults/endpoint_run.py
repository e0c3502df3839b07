"""One run shared by test_endpoints.py and test_websocket.py: two keepers at once, every endpoint fault.

Both cases need a keeper, a crash and the end checks; run one after the other they cost twice the
CI share. So they run together, and each test module asserts its own part of the outcome:

- the *live* keeper reads through seven bad HTTP endpoints (another chain, a frozen head,
  garbage, truncated JSON, a hang, 429, 503) ranked before one good one, and gets its newHeads
  through a proxy that cuts the WebSocket every `CUT_EVERY_S`; a crash lands in the middle;
- the *lone* keeper (dry-run: one account cannot sign for two keepers) has one endpoint, which
  fails in each way in turn (replies without a result too) and heals in between.

The first test to ask runs it (`endpoint_run`); the others get the same outcome. A failure inside
the run fails every test asking for it, with the same message.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.request import urlopen

import pytest

from keeper.config import load_config
from tests.support.config import changed, keeper_config, write_config
from tests.support.devnet import Devnet
from tests.support.fault_proxy import Fault, FaultProxy
from tests.support.keeper import Event, KeeperProcess, named

from .invariants import Run, check_all, store_equals_resync
from .local_checks import Crash, crash, late_liquidations, settle, store_path

BESIDE_A_GOOD_ONE = (
    Fault.WRONG_CHAIN, Fault.FROZEN, Fault.GARBAGE, Fault.TRUNCATED, Fault.HANG,
    Fault.HTTP_429, Fault.HTTP_503,
)  # fmt: skip
LONE_FAULTS = (
    (Fault.GARBAGE, 1.0), (Fault.TRUNCATED, 1.0), (Fault.NO_RESULT, 1.0), (Fault.HTTP_429, 1.5),
    (Fault.HTTP_503, 1.5),
    (Fault.HANG, 4.0), (Fault.FROZEN, 4.0),
)  # fmt: skip
"""What the lone endpoint does in turn, and for how long (s); it heals after each."""
LONE_REQUEST_TIMEOUT_S = 2.5
"""The lone keeper's ``chain.request_timeout_s``: shorter than the hang by more than a head poll, so
whichever request meets the hang first (a head poll or a block's read) times out in it, instead of
being answered 504 when the hang ends."""
DROPS_S = float(os.environ.get("KEEPER_FAULTS_WS_S", "12"))
"""How long the WebSocket keeps being cut; KEEPER_FAULTS_WS_S=60 is the minute of the soak."""
CUT_EVERY_S = 3.0
CRASH_PERCENT = "-1"
"""Enough for a dozen liquidations or more, few enough to fit two blocks of 30M gas with the devnet
keeper's inventory (a deeper crash needs more blocks than that: capacity, not a fault)."""


@dataclass
class EndpointRun:
    live: list[Event]
    lone: list[Event]
    crash: Crash
    late: list[tuple[str, str]]
    scraped: str
    """/metrics of the live keeper just before it stopped."""
    beside: dict[Fault, FaultProxy]
    lone_proxy: FaultProxy
    ws_proxy: FaultProxy
    ws_cuts: int
    bad_answers: Counter[str] = field(default_factory=Counter)
    """Every bad HTTP answer the proxies gave, by fault."""
    wall_s: float = 0.0


_RUNS: dict[int, EndpointRun | BaseException] = {}


def endpoint_run(devnet: Devnet, factory: pytest.TempPathFactory) -> EndpointRun:
    """The outcome of the run on ``devnet`` (run now if no test has asked before)."""
    if devnet.port not in _RUNS:
        try:
            _RUNS[devnet.port] = _run(devnet, factory.mktemp("endpoints"))
        except BaseException as exc:
            _RUNS[devnet.port] = exc
    outcome = _RUNS[devnet.port]
    if isinstance(outcome, BaseException):
        raise AssertionError(f"the shared endpoint run failed: {outcome!r}") from outcome
    return outcome


def with_urls(config: Path, urls: list[str]) -> Path:
    return write_config(changed(load_config(config, {}), {"chain": {"rpc_urls": urls}}), config)


def _run(devnet: Devnet, tmp: Path) -> EndpointRun:
    rpc, s = devnet.rpc, devnet.summary
    started_s = time.monotonic()
    (tmp / "live").mkdir()
    (tmp / "lone").mkdir()
    snapshot = rpc.call("evm_snapshot")
    stop = threading.Event()
    with ExitStack() as stack:
        serve: Callable[[Fault], FaultProxy] = lambda fault: stack.enter_context(  # noqa: E731
            FaultProxy(s["rpc_url"], fault).serving()
        )
        beside = {fault: serve(fault) for fault in BESIDE_A_GOOD_ONE}
        ws_proxy, lone_proxy = serve(Fault.NONE), serve(Fault.NONE)
        live_urls = [ws_proxy.ws_url, *(p.url for p in beside.values()), s["rpc_url"]]  # the good one last
        live_config = with_urls(keeper_config(devnet, tmp / "live", "live"), live_urls)
        lone_config = with_urls(keeper_config(devnet, tmp / "lone", "dry-run"), [lone_proxy.url])
        lone_config = write_config(
            changed(
                load_config(lone_config, {}),
                {"chain": {"head_stall_warn_s": 2.5, "request_timeout_s": LONE_REQUEST_TIMEOUT_S}},
            ),
            lone_config,
        )
        try:
            live, lone = KeeperProcess(live_config), KeeperProcess(lone_config)
            first = int(live.wait_for(named("keeper_ready"), timeout_s=120)["block"])
            lone.wait_for(named("keeper_ready"), timeout_s=120)
            live.wait_for(named("websocket_connected"))
            threads = [
                threading.Thread(target=_cut_repeatedly, args=(ws_proxy, stop), daemon=True),
                threading.Thread(target=_lone_faults, args=(lone_proxy, lone, devnet, stop), daemon=True),
            ]
            for thread in threads:
                thread.start()
            began_s = time.monotonic()
            time.sleep(DROPS_S / 2)
            crashed = crash(devnet, "WETH", CRASH_PERCENT)
            late = late_liquidations(devnet, crashed, live.events, s["keeper_address"])
            time.sleep(max(0.0, began_s + DROPS_S - time.monotonic()))
            stop.set()
            for thread in threads:
                thread.join(timeout=60)
            last = rpc.block_number()
            for keeper in (live, lone):
                keeper.wait_for(lambda e: e.get("event") == "block_handled" and e["block"] >= last)
            settle(devnet)
            scraped = _metrics(live_config)
            for keeper in (live, lone):
                assert keeper.stop() == 0, keeper.lines[-5:]
            account = s["keeper_address"]
            check_all(
                Run(devnet, account, store_path(live_config), first + 1, live.events), tmp / "live-checks"
            )
            # the dry-run keeper sent nothing: its store is what there is to check
            lone_run = Run(devnet, account, store_path(lone_config), first + 1, lone.events)
            store_equals_resync(lone_run, tmp / "lone-checks")
        finally:
            stop.set()
            assert rpc.call("evm_revert", [snapshot]) is True
            rpc.call("anvil_dropAllTransactions")
    bad: Counter[str] = Counter()
    for proxy in [*beside.values(), lone_proxy]:
        bad.update({str(fault): n for fault, n in proxy.bad.items()})
    return EndpointRun(
        live.events, lone.events, crashed, late, scraped, beside, lone_proxy, ws_proxy, ws_proxy.ws_cuts,
        bad, time.monotonic() - started_s,
    )  # fmt: skip


def _cut_repeatedly(proxy: FaultProxy, stop: threading.Event) -> None:
    while not stop.wait(CUT_EVERY_S):
        proxy.cut_websockets()


def _lone_faults(proxy: FaultProxy, keeper: KeeperProcess, devnet: Devnet, stop: threading.Event) -> None:
    """Each fault in turn; after each, wait until the keeper handled the head again."""
    for fault, seconds in LONE_FAULTS:
        proxy.set_fault(fault)
        time.sleep(seconds)
        proxy.set_fault(Fault.NONE)
        healed = devnet.rpc.block_number()
        keeper.wait_for(lambda e, b=healed: e.get("event") == "block_handled" and e["block"] >= b, 30)
    del stop  # the schedule runs to its end: it is shorter than the run


def _metrics(config: Path) -> str:
    listen = load_config(config, {}).metrics.listen
    with urlopen(f"http://{listen}/metrics", timeout=5) as response:
        return str(response.read().decode())


def assert_no_block_missed(events: list[Event]) -> None:
    """Every block number from the first handled to the last was applied and then screened or, when
    a newer head was already known, reported as passed over (its changes screened with the next)."""
    seen = sorted(
        e["block"] for e in events if e.get("event") in ("block_handled", "block_skipped_behind_head")
    )
    assert seen, "no block handled"
    assert seen == list(range(seen[0], seen[-1] + 1)), "a block was skipped"


def errors(events: list[Event], *allowed: str) -> list[Event]:
    return [e for e in events if e.get("level") == "error" and e.get("event") not in allowed]


def error_kinds(events: list[Event]) -> Counter[str]:
    return Counter(e["kind"] for e in events if e.get("event") == "rpc_endpoint_failed")


def summary(run: EndpointRun) -> dict[str, Any]:
    """The figures of the run, for the report."""
    return {
        "bad_answers": dict(run.bad_answers),
        "ws_cuts": run.ws_cuts,
        "crash_liquidatable": len(run.crash.became),
        "late": len(run.late),
        "wall_s": round(run.wall_s, 1),
    }
