"""The WebSocket dropping every few blocks: no block skipped, liquidations still on time.

The live keeper of the shared endpoint run (`tests.faults.endpoint_run`) gets its newHeads through a
proxy that aborts the socket every 3 s (no close frame) for ``KEEPER_FAULTS_WS_S`` seconds (12 in
CI; 60 is the minute of the soak), a crash in the middle of it.
"""

from __future__ import annotations

import pytest

from tests.support.devnet import Devnet

from .endpoint_run import CUT_EVERY_S, DROPS_S, EndpointRun, assert_no_block_missed, endpoint_run, errors


@pytest.fixture
def run(timed_devnet: Devnet, tmp_path_factory: pytest.TempPathFactory) -> EndpointRun:
    return endpoint_run(timed_devnet, tmp_path_factory)


def test_every_cut_is_followed_by_a_reconnect(run: EndpointRun) -> None:
    assert run.ws_cuts >= DROPS_S // CUT_EVERY_S - 1, run.ws_cuts
    lost = [e for e in run.live if e.get("event") == "websocket_lost"]
    connected = [e for e in run.live if e.get("event") == "websocket_connected"]
    assert len(lost) >= run.ws_cuts and len(connected) >= run.ws_cuts + 1


def test_no_block_is_skipped_and_the_crash_is_liquidated_on_time(run: EndpointRun) -> None:
    assert_no_block_missed(run.live)
    assert len(run.crash.became) >= 10 and run.late == []
    assert errors(run.live, "rpc_endpoint_wrong_chain") == []
