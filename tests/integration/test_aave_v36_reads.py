"""The v3.6 reader keeps the round-trip budget: two batched Multicall3 rounds per block, whatever
the number of users, with the v3.6 views (virtual balance, deficit, grace period, eMode bitmaps)
riding inside them and equal to the pool's own getters."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from keeper.chain.multicall import Call, Result
from keeper.chain.rpc import BlockTag, HttpRpc, Rpc
from keeper.protocols.aave_v3 import reader
from keeper.protocols.aave_v3.adapter import AaveV3Adapter
from keeper.protocols.base import PositionKey
from tests.conftest import Devnet
from tests.support.devnet import running_devnet

from .adapter_support import Follower, head
from .helpers import view

pytestmark = pytest.mark.integration

BORROWERS = 60


@pytest.fixture(scope="module")
def devnet36(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    config_out = tmp_path_factory.mktemp("reads36") / "devnet.toml"
    with running_devnet(config_out, BORROWERS, 5, "--aave-version", "3.6") as devnet:
        yield devnet


async def test_two_rounds_per_block_whatever_the_number_of_users(
    devnet36: Devnet, monkeypatch: pytest.MonkeyPatch
) -> None:
    rounds: list[int] = []
    real = reader.aggregate3

    async def counting(rpc: Rpc, calls: list[Call], block: BlockTag, *args: Any) -> list[Result]:
        rounds.append(len(calls))
        return await real(rpc, calls, block, *args)

    async with HttpRpc(devnet36.summary["rpc_url"]) as rpc:
        adapter = AaveV3Adapter("aave", devnet36.summary["aave"]["pool_addresses_provider"])
        follower = Follower(adapter, rpc)
        await follower.sync()
        monkeypatch.setattr(reader, "aggregate3", counting)
        block = await head(rpc)
        everyone = [PositionKey(adapter.pool, user) for user in adapter.users]
        assert len(everyone) >= BORROWERS * 9 // 10
        sizes = {}
        for keys in ([], everyone[:1], everyone):
            rounds.clear()
            await adapter.refresh(rpc, block, keys)
            assert len(rounds) == 2, (len(keys), rounds)
            sizes[len(keys)] = sum(rounds)
        assert sizes[0] < sizes[1] < sizes[len(everyone)]  # calls grow with users, rounds do not


async def test_v36_views_equal_the_pool_getters(devnet36: Devnet) -> None:
    async with HttpRpc(devnet36.summary["rpc_url"]) as rpc:
        adapter = AaveV3Adapter("aave", devnet36.summary["aave"]["pool_addresses_provider"])
        await Follower(adapter, rpc).sync()
    state = adapter.pool_state
    assert state is not None and state.emode_categories, "no eMode user was seeded"
    pool, chain = adapter.pool, devnet36.rpc
    for reserve in state.reserves.values():
        (virtual,) = view(chain, pool, "getVirtualUnderlyingBalance(address)", ["uint128"], reserve.asset)
        (deficit,) = view(chain, pool, "getReserveDeficit(address)", ["uint256"], reserve.asset)
        (grace,) = view(chain, pool, "getLiquidationGracePeriod(address)", ["uint40"], reserve.asset)
        assert (
            reserve.virtual_underlying_balance,
            reserve.deficit,
            reserve.liquidation_grace_period_until,
        ) == (
            virtual,
            deficit,
            grace,
        )
        assert reserve.virtual_underlying_balance > 0
    for category in state.emode_categories.values():
        bitmaps = [
            view(chain, pool, f"getEModeCategory{name}Bitmap(uint8)", ["uint128"], category.id)[0]
            for name in ("Collateral", "Borrowable", "Ltvzero")
        ]
        assert [category.collateral_bitmap, category.borrowable_bitmap, category.ltvzero_bitmap] == bitmaps
        assert category.collateral_bitmap != 0
