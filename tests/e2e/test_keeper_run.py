"""`keeper run` end to end: a real devnet mining a block a second, the keeper as a subprocess.

1,000 Aave + 1,000 Morpho borrowers; the price path is WETH -25 % (a competitor liquidates ten
positions first, in the same block as the price update), WETH +10 %, WBTC -15 %. Live and dry-run
start from the same snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from keeper.chain.multicall import words
from keeper.devnet.abi import encode_call
from tests.conftest import Devnet

from .keeper_process import Event, KeeperProcess, keeper_config
from .scenario import (
    PRICE_PATH,
    Move,
    aave_borrowers,
    aave_refused,
    aave_unhealthy,
    liquidations,
    morpho_unhealthy,
    move_price,
    transactions_from,
    wait_for_block,
)

pytestmark = pytest.mark.integration

Position = tuple[str, str]
"""(protocol kind, user)."""


@dataclass
class Outcome:
    events: list[Event]
    moves: list[Move]
    keeper_receipts: list[dict[str, Any]]
    liquidations: list[dict[str, Any]]
    became_liquidatable: dict[int, set[Position]]
    refused_by_pool: set[str]
    """Aave users who became liquidatable and of whom the pool still refuses every liquidation at the
    end (a liquidation grace period)."""
    balance_delta: dict[str, int]


def balances(devnet: Devnet, holder: str, block: int) -> dict[str, int]:
    s = devnet.summary
    tokens = dict(s["aave"]["reserves"])
    for symbol, token in s["aave"]["reserves"].items():
        (a_token,) = words(
            devnet.rpc.eth_call(s["aave"]["pool"], encode_call("getReserveData(address)", token), block)[
                256:288
            ]
        )
        tokens[f"a{symbol}"] = "0x" + a_token.to_bytes(20, "big").hex()
    out = {
        name: words(devnet.rpc.eth_call(token, encode_call("balanceOf(address)", holder), block))[0]
        for name, token in tokens.items()
    }
    out["ETH"] = int(devnet.rpc.call("eth_getBalance", [holder, hex(block)]), 16)
    return out


def run_scenario(devnet: Devnet, directory: Path, mode: str) -> Outcome:
    directory.mkdir(parents=True)
    rpc, s = devnet.rpc, devnet.summary
    snapshot = rpc.call("evm_snapshot")
    try:
        keeper = KeeperProcess(keeper_config(devnet, directory, mode))
        ready = keeper.wait_for(lambda e: e.get("event") == "keeper_ready")
        start = int(ready["block"])
        before = balances(devnet, s["keeper_address"], start)
        users = aave_borrowers(rpc, s["aave"]["pool"])
        moves, became = [], {}
        for index, (symbol, percent) in enumerate(PRICE_PATH):
            move = move_price(devnet, symbol, percent, competitor_victims=10 if index == 0 else 0)
            moves.append(move)
            wait_for_block(rpc, move.block + 3)
            keeper.wait_for(lambda e, b=move.block + 2: e.get("event") == "block_handled" and e["block"] >= b)
            was = aave_unhealthy(rpc, s["aave"]["pool"], users, move.block - 1)
            now = aave_unhealthy(rpc, s["aave"]["pool"], users, move.block) | set(move.competitor_victims)
            became[move.block] = {("aave_v3", u) for u in now - was}
            became[move.block] |= {
                ("morpho_blue", u)
                for u in morpho_unhealthy(devnet, move.block) - morpho_unhealthy(devnet, move.block - 1)
            }
        assert keeper.stop() == 0, keeper.lines[-5:]
        end = rpc.block_number()
        # a grace period protects positions whatever their health, so they are still there at the end
        fell = {u for positions in became.values() for kind, u in positions if kind == "aave_v3"}
        refused = aave_refused(rpc, s["aave"]["pool"], fell, end, s["keeper_address"])
        after = balances(devnet, s["keeper_address"], end)
        return Outcome(
            keeper.events,
            moves,
            transactions_from(devnet, s["keeper_address"], start + 1, end),
            liquidations(devnet, start + 1, end),
            became,
            refused,
            {k: after[k] - before[k] for k in before},
        )
    finally:
        assert rpc.call("evm_revert", [snapshot]) is True
        rpc.call("anvil_dropAllTransactions")


@pytest.fixture(scope="module")
def live(timed_devnet: Devnet, tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    return run_scenario(timed_devnet, tmp_path_factory.mktemp("live") / "run", "live")


@pytest.fixture(scope="module")
def dry(timed_devnet: Devnet, tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    return run_scenario(timed_devnet, tmp_path_factory.mktemp("dry") / "run", "dry-run")


def test_no_keeper_transaction_reverts(live: Outcome) -> None:
    assert len(live.keeper_receipts) >= 100
    assert [r["transactionHash"] for r in live.keeper_receipts if r["status"] != "0x1"] == []
    assert [e for e in live.events if e.get("level") == "error"] == []


def test_every_position_that_becomes_liquidatable_is_liquidated_within_two_blocks(live: Outcome) -> None:
    unprofitable = {
        (e["protocol"], e["user"]) for e in live.events if e.get("reason") == "not profitable after gas"
    }
    late = []
    for block, positions in live.became_liquidatable.items():
        done = {(_kind(e), e["user"]) for e in live.liquidations if block <= e["block"] <= block + 2}
        protected = {("aave_v3", u) for u in live.refused_by_pool}
        late += [p for p in positions - done - protected if (_name(p[0]), p[1]) not in unprofitable]
    assert sum(len(p) for p in live.became_liquidatable.values()) >= 200
    assert late == []


def test_positions_in_a_grace_period_are_left_alone(live: Outcome, timed_devnet: Devnet) -> None:
    """The v3.6 devnet's grace-period cases fall under 1 with the crash; the pool refuses every
    liquidation of them, and so does the keeper: nothing sent, nothing reverted."""
    grace = set(timed_devnet.summary["aave"]["cases"]["grace_period"])
    became = {
        u for positions in live.became_liquidatable.values() for kind, u in positions if kind == "aave_v3"
    }
    assert grace <= became and live.refused_by_pool == grace
    assert not [e for e in live.liquidations if e["user"] in grace]


def test_the_competitor_went_first_and_cost_no_revert(live: Outcome, timed_devnet: Devnet) -> None:
    competitor = timed_devnet.summary["competitor_address"]
    first = live.moves[0]
    by_competitor = [e for e in live.liquidations if e["liquidator"] == competitor]
    assert {e["user"] for e in by_competitor} == set(first.competitor_victims)
    assert len(first.competitor_victims) == 10
    assert all(e["block"] == first.block for e in by_competitor)


def test_balance_changes_equal_the_reported_liquidations(live: Outcome, timed_devnet: Devnet) -> None:
    s = timed_devnet.summary
    symbol = {token: name for name, token in s["aave"]["reserves"].items()}
    for market in s["morpho"]["market_params"]:
        symbol[market["id"]] = market["loan"], market["collateral"]
    expected = dict.fromkeys(live.balance_delta, 0)
    mined = [e for e in live.events if e.get("event") == "liquidation_mined"]
    assert {e["tx"] for e in mined} == {r["transactionHash"] for r in live.keeper_receipts}
    for event in mined:
        for flow in event["realized"]:
            if "market" in flow:
                loan, collateral = symbol[flow["market"]]
            else:
                loan, collateral = symbol[flow["debt_asset"]], symbol[flow["collateral_asset"]]
            expected[loan] -= int(flow["debt_repaid"])
            expected["a" + collateral if flow.get("receive_a_token") else collateral] += int(
                flow["collateral_seized"]
            )
        expected["ETH"] -= int(event["gas_paid_wei"])
    for name, delta in live.balance_delta.items():
        if name.startswith("a"):  # aTokens keep accruing interest after they arrive
            assert expected[name] <= delta <= expected[name] * 1_000_001 // 1_000_000 + 1, name
        else:
            assert delta == expected[name], name


def test_dry_run_sends_nothing_and_sees_what_live_mode_saw(live: Outcome, dry: Outcome) -> None:
    assert dry.keeper_receipts == []
    assert [e for e in dry.events if e.get("event") == "liquidation_sent"] == []

    def first_block_positions(outcome: Outcome) -> set[Position]:
        block = outcome.moves[0].block
        kinds = ("liquidation_sent", "liquidation_dry_run", "opportunity_skipped")
        return {
            (e["protocol"], e["user"])
            for e in outcome.events
            if e.get("event") in kinds and e["block"] == block
        }

    seen = first_block_positions(dry)
    assert len(seen) >= 100
    assert seen == first_block_positions(live)


def _kind(event: dict[str, Any]) -> str:
    return "morpho_blue" if "market" in event else "aave_v3"


def _name(kind: str) -> str:
    return {"aave_v3": "aave", "morpho_blue": "morpho"}[kind]


def test_each_feed_update_is_seen_in_its_own_block(live: Outcome, timed_devnet: Devnet) -> None:
    reserves = timed_devnet.summary["aave"]["reserves"]
    seen = {(e["block"], e["asset"]) for e in live.events if e.get("event") == "feed_updated"}
    assert {(m.block, reserves[m.symbol]) for m in live.moves} <= seen
