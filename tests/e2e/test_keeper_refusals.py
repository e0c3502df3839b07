"""What `keeper run` refuses to do, and says so: wrong chain, no inventory, no approval, a dead feed."""

from __future__ import annotations

from pathlib import Path

import pytest

from keeper.devnet.abi import encode_call
from keeper.devnet.accounts import dev_account
from keeper.devnet.feeds import discover_feeds
from tests.support.config import keeper_config, variant
from tests.support.devnet import Devnet
from tests.support.keeper import Event, KeeperProcess, named, run_keeper

from .scenario import move_price, transactions_from, wait_for_block

pytestmark = pytest.mark.integration


def test_wrong_chain_id_stops_before_anything(timed_devnet: Devnet, tmp_path: Path) -> None:
    store = tmp_path / "store.sqlite"
    changes = {"chain": {"chain_id": 1}, "store": {"path": str(store)}}
    config = variant(timed_devnet, tmp_path / "keeper.toml", changes)
    proc = run_keeper(
        "run", "--config", str(config), env={"KEEPER_PRIVATE_KEY": "0x" + "11" * 32, "PATH": ""}
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "keeper: error: chain.chain_id is 1 but the RPC endpoint serves chain 31337"
    )
    assert not store.exists(), "a store was created for a chain the keeper refused"


def test_missing_key_is_one_line_naming_the_variable(timed_devnet: Devnet, tmp_path: Path) -> None:
    proc = run_keeper("run", "--config", str(keeper_config(timed_devnet, tmp_path, "live")), env={"PATH": ""})
    assert proc.returncode == 2
    assert "KEEPER_PRIVATE_KEY" in proc.stderr.strip().splitlines()[-1]
    assert "Traceback" not in proc.stderr


def test_unfunded_and_unapproved_keepers_skip_with_the_reason_and_send_nothing(
    timed_devnet: Devnet, tmp_path: Path
) -> None:
    rpc, s = timed_devnet.rpc, timed_devnet.summary
    unfunded, unapproved = dev_account(6), dev_account(7)
    snapshot = rpc.call("evm_snapshot")
    try:
        for token in s["aave"]["reserves"].values():  # funded, but approves nothing
            amount = 10**30
            rpc.call(
                "eth_sendTransaction",
                [
                    {
                        "from": unapproved.address,
                        "to": token,
                        "data": "0x" + encode_call("mint(uint256)", amount).hex(),
                    }
                ],
            )
        keepers = []
        for account, name in ((unfunded, "unfunded"), (unapproved, "unapproved")):
            (tmp_path / name).mkdir()
            keeper = KeeperProcess(  # approvals off: the keeper approving by itself is test_keeper_approvals
                keeper_config(timed_devnet, tmp_path / name, "live", approvals="off"),
                account.private_key,
            )
            keeper.wait_for(named("keeper_ready"))
            keepers.append(keeper)
        start = rpc.block_number()
        move = move_price(timed_devnet, "WETH", "-25")
        wait_for_block(rpc, move.block + 2)
        for keeper in keepers:
            keeper.wait_for(lambda e, b=move.block + 1: e.get("event") == "block_handled" and e["block"] >= b)
            assert keeper.stop() == 0
        end = rpc.block_number()
    finally:
        assert rpc.call("evm_revert", [snapshot]) is True
        rpc.call("anvil_dropAllTransactions")
    for keeper, account, reason in (
        (keepers[0], unfunded, "inventory short"),
        (keepers[1], unapproved, "approval missing"),
    ):
        skipped = keeper.named("opportunity_skipped")
        assert len(skipped) >= 100 and all(e["reason"].startswith(reason) for e in skipped)
        assert keeper.named("liquidation_sent") == []
        assert transactions_from(timed_devnet, account.address, start, end) == []
    assert keepers[1].named("approval_missing")  # and the start-up report said so


def test_a_dead_feed_leaves_its_positions_alone(timed_devnet: Devnet, tmp_path: Path) -> None:
    rpc, s = timed_devnet.rpc, timed_devnet.summary
    snapshot = rpc.call("evm_snapshot")
    try:
        keeper = KeeperProcess(keeper_config(timed_devnet, tmp_path, "live"))
        keeper.wait_for(named("keeper_ready"))
        feed = discover_feeds(rpc)["USDC"]
        owner = "0x" + rpc.eth_call(feed, encode_call("owner()"))[-20:].hex()
        rpc.call("evm_setIntervalMining", [0])
        rpc.call(
            "eth_sendTransaction",
            [{"from": owner, "to": feed, "data": "0x" + encode_call("updateAnswer(int256)", 0).hex()}],
        )
        move = move_price(timed_devnet, "WETH", "-25")  # mines the dead feed and the crash together
        wait_for_block(rpc, move.block + 2)
        keeper.wait_for(lambda e, b=move.block + 1: e.get("event") == "block_handled" and e["block"] >= b)
        assert keeper.stop() == 0
    finally:
        rpc.call("evm_setIntervalMining", [1])
        assert rpc.call("evm_revert", [snapshot]) is True
        rpc.call("anvil_dropAllTransactions")
    usdc = s["aave"]["reserves"]["USDC"]
    rejected = keeper.named("price_rejected")
    assert rejected and all(e["asset"] == usdc for e in rejected)
    touched = keeper.named("liquidation_sent") + keeper.named("opportunity_skipped")
    assert not [e for e in touched if usdc in (e["collateral_asset"], e["debt_asset"])]
    assert keeper.named("liquidation_reverted") == []


def test_stale_and_jumping_prices_are_refused(timed_devnet: Devnet, tmp_path: Path) -> None:
    """The jump bound compares a block's prices with the last block the keeper *checked*: before the
    move it must have checked one (right after start-up it has none), and the move's own block may be
    skipped as behind the head, so the refusal is asserted at the first block checked from the move on."""
    rpc, s = timed_devnet.rpc, timed_devnet.summary
    weth, usdc = s["aave"]["reserves"]["WETH"], s["aave"]["reserves"]["USDC"]
    snapshot = rpc.call("evm_snapshot")
    try:
        config = keeper_config(timed_devnet, tmp_path, "live", max_price_age_s=600, max_price_jump_bps=4000)
        keeper = KeeperProcess(config)
        keeper.wait_for(named("keeper_ready"))
        keeper.wait_for(named("block_handled"))  # prices to compare the jump with
        rpc.call("evm_increaseTime", [3_600])  # every feed is now an hour old ...
        move = move_price(timed_devnet, "WETH", "-45")  # ... except WETH, which jumps 45 %
        checked = keeper.wait_for(lambda e: handled_from(e, move.block))["block"]
        after = keeper.wait_for(lambda e: handled_from(e, checked + 1))["block"]
        assert keeper.stop() == 0
    finally:
        assert rpc.call("evm_revert", [snapshot]) is True
        rpc.call("anvil_dropAllTransactions")
    rejected = keeper.named("price_rejected")
    reasons = {
        (e["block"], e.get("asset") or e.get("market")): e["reason"]
        for e in rejected
        if e["protocol"] != "price_feeds"  # the devnet config's own feeds: the same feeds, checked apart
    }
    feeds = {(e["block"], e["asset"]): e["reason"] for e in rejected if e["protocol"] == "price_feeds"}
    assert reasons[(checked, usdc)].startswith("stale: updated")
    assert f"stale: updated {reasons[(checked, usdc)].split()[2]} s ago" in feeds[(checked, usdc)]
    assert "moved -45.00 % in one block" in feeds[(checked, weth)]
    assert reasons[(checked, weth)].startswith("moved -45.00 % in one block")
    assert [b for b, key in reasons if key == weth and b > checked] == []  # refused once, not forever
    assert (after, usdc) in reasons  # (and the stale ones stay refused)
    # every Aave borrower uses a stale asset (USDC, DAI, WBTC); Morpho's markets are liquidatable once
    # the jump has passed, but their loan token's reference price is stale, so they cannot be valued
    assert keeper.named("liquidation_sent") == []
    assert any(
        e["protocol"] == "morpho" and e["block"] > checked for e in keeper.named("opportunity_unpriced")
    )


def handled_from(event: Event, block: int) -> bool:
    """A block at or after ``block`` whose prices the keeper checked (not one skipped as behind head)."""
    return event.get("event") == "block_handled" and event["block"] >= block
