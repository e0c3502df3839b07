"""Bad endpoints in ``chain.rpc_urls``: none may feed state into the book.

Each bad endpoint is a `FaultProxy` in front of the shared 1-second devnet's Anvil (another chain,
a frozen head, garbage, truncated JSON, a hang, 429, 503). Alone, an endpoint of another chain is
refused in one line before anything is opened, and is asked nothing but its chain id. The rest
runs in the shared endpoint run (`tests.faults.endpoint_run`): next to a good endpoint the bad
ones are excluded or ranked down, said in logs and metrics, and a crash is still liquidated within
2 blocks; a lone endpoint failing in each way in turn makes its keeper wait and resume, no block
skipped. Both keepers' books equal a fresh resync at the end (with the other end checks).
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from tests.support.config import keeper_config
from tests.support.devnet import Devnet
from tests.support.fault_proxy import Fault, FaultProxy
from tests.support.keeper import KEEPER_KEY, run_keeper

from .endpoint_run import (
    EndpointRun,
    assert_no_block_missed,
    endpoint_run,
    error_kinds,
    errors,
    summary,
    with_urls,
)


@pytest.fixture
def run(timed_devnet: Devnet, tmp_path_factory: pytest.TempPathFactory) -> EndpointRun:
    return endpoint_run(timed_devnet, tmp_path_factory)


def test_an_endpoint_of_another_chain_alone_is_refused_in_one_line(
    timed_devnet: Devnet, tmp_path: Path
) -> None:
    with FaultProxy(timed_devnet.summary["rpc_url"], Fault.WRONG_CHAIN).serving() as wrong:
        config = with_urls(keeper_config(timed_devnet, tmp_path, "live"), [wrong.url])
        for command in ("check-config", "run"):
            env = dict(os.environ, KEEPER_PRIVATE_KEY=KEEPER_KEY)
            proc = run_keeper(command, "--config", str(config), env=env)
            lines = [line for line in proc.stderr.splitlines() if line.startswith("keeper: ")]
            assert proc.returncode == 2, (command, proc.stderr[-400:])
            assert lines == ["keeper: error: chain.chain_id is 31337 but the RPC endpoint serves chain 1"]
    assert not (tmp_path / "store.sqlite").exists()
    assert wrong.forwarded == Counter(), "an endpoint of another chain was asked for state"


def test_an_endpoint_of_another_chain_beside_a_good_one_is_excluded_and_asked_nothing(
    run: EndpointRun,
) -> None:
    wrong = run.beside[Fault.WRONG_CHAIN]
    assert wrong.forwarded == Counter()
    assert [e["endpoint"] for e in run.live if e.get("event") == "rpc_endpoint_wrong_chain"] == [wrong.url]
    assert 'kind="wrong_chain"' in run.scraped


def test_bad_endpoints_beside_a_good_one_are_said_and_counted(run: EndpointRun) -> None:
    kinds = error_kinds(run.live)
    assert {"bad_response", "http_429", "http_5xx"} <= set(kinds), kinds
    assert any(e.get("event") == "rpc_endpoint_silent" for e in run.live) or kinds["timeout"]
    assert any(e.get("event") == "rpc_endpoint_stale" for e in run.live), "the frozen one was not demoted"
    for kind in ("bad_response", "http_429", "http_5xx", "timeout"):
        assert f'kind="{kind}"' in run.scraped, kind
    for fault in (Fault.GARBAGE, Fault.TRUNCATED, Fault.HANG, Fault.HTTP_429, Fault.HTTP_503):
        assert run.beside[fault].bad[fault] >= 1, f"the keeper never tried the {fault} endpoint"
    assert errors(run.live, "rpc_endpoint_wrong_chain") == []
    print("endpoint run:", summary(run))  # the figures for the README (pytest -s shows them)


def test_a_crash_beside_bad_endpoints_is_liquidated_within_two_blocks(run: EndpointRun) -> None:
    assert len(run.crash.became) >= 10
    assert run.late == []
    assert_no_block_missed(run.live)


def test_a_lone_endpoint_failing_in_every_way_makes_the_keeper_wait_and_resume(run: EndpointRun) -> None:
    kinds = error_kinds(run.lone)
    assert {"bad_response", "http_429", "http_5xx"} <= set(kinds), kinds
    assert any(e.get("event") == "rpc_endpoint_silent" for e in run.lone) or kinds["timeout"]
    assert any(e.get("event") == "rpc_unavailable" for e in run.lone), "the outage was not said"
    stalled = [e["event"] for e in run.lone if e.get("event", "").startswith("chain_head_")]
    assert stalled[:2] == ["chain_head_stalled", "chain_head_moving"], "the frozen head was not said"
    lone_faults = (
        Fault.GARBAGE,
        Fault.TRUNCATED,
        Fault.NO_RESULT,
        Fault.HANG,
        Fault.HTTP_429,
        Fault.HTTP_503,
    )
    for fault in (*lone_faults, Fault.FROZEN):
        assert run.lone_proxy.bad[fault] >= 1, fault
    assert errors(run.lone) == []
    assert_no_block_missed(run.lone)
