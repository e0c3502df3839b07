"""Reorgs under a running keeper: one that takes away the blocks holding its mined liquidations
(the price update stays), one that takes away the price update too.

What Anvil does (checked against its source, `anvil_reorg` / `anvil_rollback` in
foundry's anvil/src/eth/api.rs, and by hand): `anvil_reorg(depth, txs)` rewinds ``depth`` blocks and
mines ``depth`` new ones holding only ``txs``; `anvil_rollback(depth)` rewinds without mining. In both
the removed blocks' transactions do *not* return to the pool, and the account's nonce goes back.
So the keeper's liquidations simply vanish: its store calls their nonces used while the chain does
not, and every later transaction would wait behind the gap. It must take them back as pending:
re-send them (same bytes) when the position is still liquidatable, cancel them (same nonce, empty
self-transfer) when the price that made it so is gone - and then send nothing new for it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from keeper.devnet.feeds import set_price
from tests.support.devnet import Devnet

from .invariants import check_all
from .support import flash_keeper, reverted, run_of, wait_event, wait_settled


def mined_blocks(events: list[dict[str, Any]]) -> set[int]:
    return {int(e["block"]) for e in events if e.get("event") == "liquidation_mined"}


def reorg_case(devnet: Devnet, directory: Any, remove_price: bool) -> dict[str, Any]:
    rpc = devnet.rpc
    with reverted(devnet):
        keeper = flash_keeper(devnet, directory)
        first = int(keeper.start()["block"]) + 1
        crash = set_price(rpc, "WETH", move=Decimal("-12")).block
        wait_settled(devnet, keeper)
        mined = mined_blocks(keeper.new_events())
        assert mined, "nothing was liquidated before the reorg"
        seen = len(keeper.new_events())
        rpc.call("evm_setIntervalMining", [0])  # a fixed depth: no block may come in between
        try:
            head = rpc.block_number()
            if remove_price:  # back to before the crash: the positions are healthy again
                rpc.call("anvil_rollback", [head - crash + 1])
                rpc.call("anvil_mine", [hex(head - crash + 2)])  # past the keeper's head at once
            else:  # the liquidations' blocks replaced by empty ones; the crash stays
                rpc.call("anvil_reorg", [head - min(mined) + 1, []])
        finally:
            rpc.call("evm_setIntervalMining", [1])
        reorg = wait_event(keeper, lambda e: e.get("event") == "reorg", seen, 30)
        assert reorg is not None, keeper.last_lines()
        wait_settled(devnet, keeper)
        before = len(keeper.events)  # one process: its events follow the earlier ones' (none)
        keeper.stop()
        after = keeper.events[before + seen :]
        figures = check_all(run_of(devnet, keeper, first), directory / "resync")
    return {"after": after, **figures}


@pytest.fixture(scope="module")
def price_kept(timed_devnet: Devnet, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return reorg_case(timed_devnet, tmp_path_factory.mktemp("reorg-kept"), remove_price=False)


@pytest.fixture(scope="module")
def price_removed(timed_devnet: Devnet, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return reorg_case(timed_devnet, tmp_path_factory.mktemp("reorg-removed"), remove_price=True)


def named(events: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in events if e.get("event") == name]


def test_liquidations_reorged_out_are_sent_again_and_mined(price_kept: dict[str, Any]) -> None:
    """The same transactions go out again (no new nonce, no second transaction per position) and
    are mined on the new branch; the checks (run in the fixture) found nothing left, nothing stuck."""
    after = price_kept["after"]
    reopened = {e["tx"] for e in named(after, "transaction_reorged_out")}
    resent = {e["tx"] for e in named(after, "transaction_resent_after_reorg")}
    remined = {e["tx"] for e in named(after, "liquidation_mined")}
    assert reopened and resent == reopened and reopened <= remined, (len(reopened), len(resent), len(remined))
    assert not named(after, "liquidation_cancelled")


def test_a_reorg_that_takes_the_price_away_cancels_and_resends_nothing(price_removed: dict[str, Any]) -> None:
    after = price_removed["after"]
    reopened = {e["tx"] for e in named(after, "transaction_reorged_out")}
    cancelled = {e["old"] for e in named(after, "liquidation_cancelled")}
    assert reopened and cancelled == reopened, (len(reopened), len(cancelled))
    assert not named(after, "transaction_resent_after_reorg")
    assert not named(after, "liquidation_sent")
    assert {e["note"] for e in named(after, "liquidation_mined")} == {"cancel"}  # only the cancels
