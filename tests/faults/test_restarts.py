"""Restarts after the keeper's own contracts changed on chain while it was down:

- inventory: the devnet keeper account's approvals revoked by hand between two runs; the second
  run must approve again before it liquidates (a liquidation sent on a zero allowance reverts);
- flash: restarted with a config naming a new executor while liquidations sent to the old one wait
  in the store and the pool; the restart must track those to the end (the old executor still
  works and is still the keeper's) and send what is new to the new one.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from keeper.devnet.feeds import set_price
from tests.e2e.test_keeper_approvals import allowance, pairs, unapprove
from tests.support.config import keeper_config
from tests.support.devnet import Devnet
from tests.support.keeper import KEEPER_KEY

from .invariants import check_all, keeper_transactions
from .support import (
    Keeper,
    deploy_executor,
    flash_config,
    flash_keeper,
    reverted,
    run_of,
    stall,
    wait_event,
    wait_settled,
)


@pytest.fixture(scope="module")
def revoked(timed_devnet: Devnet, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    devnet = timed_devnet
    directory = tmp_path_factory.mktemp("revoked")
    with reverted(devnet):
        unapprove(devnet)
        keeper = Keeper(keeper_config(devnet, directory, "live", approvals="unlimited"), KEEPER_KEY)
        first = int(keeper.start()["block"]) + 1
        wait_settled(devnet, keeper)  # start-up approved every debt token it holds
        keeper.stop()
        approved = {pair: allowance(devnet, pair[0], keeper.address, pair[1]) for pair in pairs(devnet)}
        down = devnet.rpc.block_number() + 1
        unapprove(devnet)  # by hand, while the keeper is down
        by_hand = {
            t["hash"] for t in keeper_transactions(run_of(devnet, keeper, down), devnet.rpc.block_number())
        }
        seen = len(keeper.events)
        keeper.start()
        set_price(devnet.rpc, "WETH", move=Decimal("-12"))
        wait_settled(devnet, keeper)
        keeper.stop()
        figures = check_all(run_of(devnet, keeper, first, by_hand), directory / "resync")
    return {"events": keeper.events[seen:], "approved_first": approved, **figures}


def test_revoked_approvals_are_given_again_before_any_liquidation(revoked: dict[str, Any]) -> None:
    """The first run approved, the second approved again (its start-up), then liquidated; the checks
    (in the fixture) found no revert and nothing left."""
    assert any(revoked["approved_first"].values()), revoked["approved_first"]
    events = revoked["events"]
    names = [e.get("event") for e in events]
    assert "approval_mined" in names and "liquidation_mined" in names, set(names)
    assert names.index("approval_mined") < names.index("liquidation_mined")


@pytest.fixture(scope="module")
def moved(timed_devnet: Devnet, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    devnet = timed_devnet
    directory = tmp_path_factory.mktemp("moved")
    with reverted(devnet):
        keeper = flash_keeper(devnet, directory)
        # The new executor is deployed (by the keeper's own key, as `keeper executor deploy` does)
        # before the run, not while it is down: deployed after the kill it would take the nonce after
        # a wave already broadcast and wait for that wave to be mined, so nothing sent to the old
        # executor would be left for the restart to track.
        new = deploy_executor(devnet)
        first = int(keeper.start()["block"]) + 1
        old = keeper_executor(keeper)
        seen = len(keeper.new_events())
        set_price(devnet.rpc, "WETH", move=Decimal("-12"))
        stall(devnet)  # what it sends now waits in the pool
        assert wait_event(keeper, lambda e: e.get("event") == "transactions_persisted", seen, 10)
        keeper.kill()
        keeper.config = flash_config(devnet, directory, new)
        restart = int(keeper.start()["block"])
        wait_settled(devnet, keeper)
        keeper.stop()
        head = devnet.rpc.block_number()
        run = run_of(devnet, keeper, first)
        targets = [
            (int(t["blockNumber"], 16), (t["to"] or "").lower()) for t in keeper_transactions(run, head)
        ]
        figures = check_all(run, directory / "resync")
    return {"old": old.lower(), "new": new.lower(), "restart": restart, "targets": targets, **figures}


def keeper_executor(keeper: Keeper) -> str:
    from keeper.config import load_config

    executor = load_config(keeper.config, {}).execution.executor
    assert executor is not None
    return executor


def test_what_went_to_the_old_executor_is_tracked_to_the_end_and_the_rest_goes_to_the_new(
    moved: dict[str, Any],
) -> None:
    to_old_after = [b for b, to in moved["targets"] if to == moved["old"] and b > moved["restart"]]
    to_new = [b for b, to in moved["targets"] if to == moved["new"]]
    assert to_old_after and to_new, (len(to_old_after), len(to_new))
