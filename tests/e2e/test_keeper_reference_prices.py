"""A keeper without Aave values its Morpho quotes with `[[price_feeds]]`, and refuses a stale feed.

The devnet's own config with the aave protocol removed: Morpho Blue's oracles price markets, not
tokens, so every reference price (the native asset's included) comes from the feeds `keeper devnet
up` wrote. `keeper run` live, on a snapshot of the session devnet, through a -25 % WETH crash.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from keeper.config import load_config
from tests.support.config import variant
from tests.support.devnet import Devnet
from tests.support.keeper import Event, KeeperProcess, named
from tests.support.ports import free_port

from .scenario import liquidations, morpho_unhealthy, move_price, transactions_from, wait_for_block

pytestmark = pytest.mark.integration


@dataclass
class Crash:
    events: list[Event]
    became_liquidatable: set[str]
    """Morpho borrowers the crash made liquidatable (exact health before and after the move's block)."""
    move_block: int
    keeper_receipts: list[dict[str, Any]]
    liquidations: list[dict[str, Any]]


def morpho_only(devnet: Devnet, directory: Path, **feed_changes: Any) -> Path:
    """The devnet's config, live, without its aave protocol; ``price_feeds`` replaced if given."""
    data = load_config(devnet.config_path, {}).model_dump(mode="json", exclude_none=True)
    changes: dict[str, Any] = {
        "protocols": [p for p in data["protocols"] if p["kind"] == "morpho_blue"],
        "execution": {"mode": "live"},
        "store": {"path": str(directory / "store.sqlite")},
        "metrics": {"listen": f"127.0.0.1:{free_port()}"},
    }
    if "price_feeds" in feed_changes:
        changes["price_feeds"] = feed_changes["price_feeds"]
    config = variant(devnet, directory / "keeper.toml", changes)
    assert [p.kind for p in load_config(config, {}).protocols] == ["morpho_blue"]
    return config


def crash(devnet: Devnet, config: Path, before_move: float = 0) -> Crash:
    """WETH -25 % with the keeper running; ``before_move`` seconds of chain time pass first, with no
    feed updated (every feed but WETH's, updated by the move, is that much older at the crash)."""
    rpc, s = devnet.rpc, devnet.summary
    snapshot = rpc.call("evm_snapshot")
    try:
        keeper = KeeperProcess(config)
        start = int(keeper.wait_for(named("keeper_ready"))["block"])
        keeper.wait_for(named("block_handled"))
        if before_move:
            rpc.call("evm_increaseTime", [int(before_move)])
        move = move_price(devnet, "WETH", "-25")
        wait_for_block(rpc, move.block + 3)
        keeper.wait_for(lambda e: e.get("event") == "block_handled" and e["block"] >= move.block + 2)
        assert keeper.stop() == 0, keeper.lines[-5:]
        end = rpc.block_number()
        became = morpho_unhealthy(devnet, move.block) - morpho_unhealthy(devnet, move.block - 1)
        return Crash(
            keeper.events,
            became,
            move.block,
            transactions_from(devnet, s["keeper_address"], start + 1, end),
            liquidations(devnet, start + 1, end),
        )
    finally:
        assert rpc.call("evm_revert", [snapshot]) is True
        rpc.call("anvil_dropAllTransactions")


def of(crash: Crash, name: str) -> list[Event]:
    return [e for e in crash.events if e.get("event") == name]


def test_a_morpho_only_keeper_values_and_liquidates_with_the_feeds(
    timed_devnet: Devnet, tmp_path: Path
) -> None:
    outcome = crash(timed_devnet, morpho_only(timed_devnet, tmp_path))
    assert len(outcome.became_liquidatable) >= 20
    assert of(outcome, "opportunity_unpriced") == []
    mined = [e for e in of(outcome, "liquidation_mined") if e["protocol"] == "morpho"]
    unprofitable = {
        e["user"] for e in of(outcome, "opportunity_skipped") if e["reason"] == "not profitable after gas"
    }
    done = {
        e["user"] for e in outcome.liquidations if outcome.move_block <= e["block"] <= outcome.move_block + 2
    }
    assert outcome.became_liquidatable - unprofitable <= done
    assert {e["user"] for e in mined} >= outcome.became_liquidatable - unprofitable
    assert all(int(e["gross_profit_wei"]) > 0 for e in of(outcome, "liquidation_sent"))
    assert outcome.keeper_receipts and [r for r in outcome.keeper_receipts if r["status"] != "0x1"] == []
    assert of(outcome, "liquidation_reverted") == []


def test_without_price_feeds_a_morpho_only_keeper_values_nothing(
    timed_devnet: Devnet, tmp_path: Path
) -> None:
    outcome = crash(timed_devnet, morpho_only(timed_devnet, tmp_path, price_feeds=[]))
    assert len(outcome.became_liquidatable) >= 20
    unpriced = [e for e in of(outcome, "opportunity_unpriced") if e["block"] > outcome.move_block - 1]
    assert {e["user"] for e in unpriced} >= outcome.became_liquidatable
    assert all(
        set(e["unpriced"].values()) == {"no price source (no protocol oracle, no [[price_feeds]] entry)"}
        for e in unpriced
    )
    assert of(outcome, "liquidation_sent") == [] and outcome.keeper_receipts == []


def test_a_stale_feed_leaves_its_token_unpriced(timed_devnet: Devnet, tmp_path: Path) -> None:
    """USDC's feed may be at most 10 minutes old; an hour passes without an update before the crash.
    Every Morpho opportunity the crash opens owes USDC (WETH/USDC): none is valued, each says why."""
    s = timed_devnet.summary
    usdc, usdc_feed = s["aave"]["reserves"]["USDC"], s["feeds"]["USDC"]
    feeds = [
        {"token": f.token, "feed": f.feed, **({"max_age_s": 600} if f.token == usdc else {})}
        for f in load_config(timed_devnet.config_path, {}).price_feeds
    ]
    outcome = crash(timed_devnet, morpho_only(timed_devnet, tmp_path, price_feeds=feeds), before_move=3_600)
    usdc_debt = {m["id"] for m in s["morpho"]["market_params"] if m["loan_token"].lower() == usdc.lower()}
    assert len(outcome.became_liquidatable) >= 20
    unpriced = [e for e in of(outcome, "opportunity_unpriced") if e["block"] >= outcome.move_block]
    assert {e["user"] for e in unpriced} >= outcome.became_liquidatable
    assert all(e["market"] in usdc_debt for e in unpriced)
    prefix = f"feed {usdc_feed}: stale: updated "
    assert all(
        e["unpriced"][usdc].startswith(prefix) and e["unpriced"][usdc].endswith("(max 600 s)")
        for e in unpriced
    )
    rejected = [e for e in of(outcome, "price_rejected") if e["block"] >= outcome.move_block]
    assert rejected and {(e["protocol"], e["asset"]) for e in rejected} == {("price_feeds", usdc)}
    assert of(outcome, "liquidation_sent") == [] and outcome.keeper_receipts == []
