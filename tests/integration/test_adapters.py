"""The shared adapter suite: for every protocol, local health equals the contracts' view to the wei.

Each moment below changes the chain (time passes with no transactions, prices move, borrowers
repay and withdraw); the adapter follows it the way the engine does (logs name the touched
positions; one batched read at the head), then predicts health at the timestamp of the *next*
block, which the test mines and reads back from the contracts. Zero mismatches allowed.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from decimal import Decimal

import pytest
import structlog.testing

from keeper.chain.rpc import HttpRpc
from keeper.devnet.feeds import set_price
from keeper.protocols.aave_v3.adapter import AaveV3Adapter
from keeper.protocols.aave_v3.version import AaveVersion
from tests.conftest import LARGE_BORROWERS, Devnet, large_chain_for

from .adapter_support import (
    AAVE_V30,
    AAVE_V36,
    HEALTH_PROTOCOLS,
    WAD,
    Follower,
    emode_change_txs,
    execute,
    head,
    local,
    make_adapter,
    mismatches,
    onchain,
    position_change_txs,
    settle,
)

pytestmark = pytest.mark.integration

DAY_S = 86_400


def jump(seconds: int) -> Callable[[Devnet, Follower], None]:
    def step(devnet: Devnet, _: Follower) -> None:
        devnet.rpc.call("evm_increaseTime", [seconds])

    return step


def move(symbol: str, percent: str) -> Callable[[Devnet, Follower], None]:
    def step(devnet: Devnet, _: Follower) -> None:
        set_price(devnet.rpc, symbol, move=Decimal(percent))

    return step


@pytest.mark.parametrize("protocol", HEALTH_PROTOCOLS)
async def test_local_health_equals_contract_view_at_every_moment(
    request: pytest.FixtureRequest, protocol: str
) -> None:
    large_chain = large_chain_for(protocol, request)
    rng = random.Random(3)

    def changes(devnet: Devnet, follower: Follower) -> None:
        assert follower.block is not None
        execute(
            devnet, position_change_txs(protocol, devnet, follower.adapter, follower.block.timestamp, rng)
        )

    def emode_changes(devnet: Devnet, follower: Follower) -> None:
        assert isinstance(follower.adapter, AaveV3Adapter)
        before = follower.adapter.pool_state
        execute(devnet, emode_change_txs(devnet, follower.adapter))
        assert before is not None  # the adapter must see the new bitmaps with no user touched
        emodes_changed.append(before.emode_categories[1])

    emodes_changed: list[object] = []
    moments: list[tuple[str, Callable[[Devnet, Follower], None]]] = [
        ("as seeded", lambda d, f: None),
        ("after 1 hour", jump(3_600)),
        ("after 30 days", jump(30 * DAY_S)),
        ("after WETH -12 %", move("WETH", "-12")),
        ("after WBTC +8 %", move("WBTC", "8")),
        ("after partial repays and withdrawals", changes),
        *([("after eMode configuration changes", emode_changes)] if protocol == AAVE_V36 else []),
        ("after 365 days", jump(365 * DAY_S)),
        ("after USDC -3 %", move("USDC", "-3")),
    ]
    async with HttpRpc(large_chain.summary["rpc_url"]) as rpc:
        follower = Follower(make_adapter(protocol, large_chain), rpc)
        await follower.sync()
        _assert_version(protocol, follower)
        compared = liquidatable = 0
        rule_changes: list[str] = []
        for label, step in moments:
            step(large_chain, follower)
            with structlog.testing.capture_logs() as logs:
                await follower.follow()
            rule_changes.extend(e["change"] for e in logs if e["event"] == "aave_rules_changed")
            settle(protocol, large_chain)
            settled = await head(rpc)
            mine = local(follower.adapter.health(settled.timestamp))
            theirs = onchain(protocol, large_chain)
            problems = mismatches(mine, theirs)
            assert not problems, f"{protocol} {label}: {len(problems)} mismatches, first: {problems[:3]}"
            assert len(mine) >= LARGE_BORROWERS * 9 // 10, label
            compared += len(mine)
            liquidatable += sum(hf < WAD for hf, _, _ in mine.values())
        assert compared >= 8 * LARGE_BORROWERS * 9 // 10
        assert liquidatable > 0, (
            "the price path never made a position liquidatable: the test proves too little"
        )
        assert follower.touched_total >= 80, "partial repays/withdrawals must reach the adapter through logs"
        if protocol == AAVE_V36:
            adapter = follower.adapter
            assert isinstance(adapter, AaveV3Adapter) and adapter.pool_state is not None
            assert adapter.pool_state.emode_categories[1] != emodes_changed[0], "bitmaps not re-read"
            # the configurator's events reach the log in the block they happen
            assert rule_changes == ["AssetLtvzeroInEModeChanged", "AssetCollateralInEModeChanged"]
        else:
            assert rule_changes == []


def _assert_version(protocol: str, follower: Follower) -> None:
    adapter = follower.adapter
    if isinstance(adapter, AaveV3Adapter):
        expected = AaveVersion.V3_0 if protocol == AAVE_V30 else AaveVersion.V3_6
        assert adapter.version is not None and adapter.version.version is expected
