"""Position sync on a real Anvil: backfill, live tracking, WebSocket loss, reorgs.

Every followed book is compared with a from-scratch resync at the same head: same accounts
tracked, same exact health for each.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from keeper.app import combined_filter
from keeper.chain.blocks import BlockStream, PollingHeads, WebSocketHeads
from keeper.chain.rpc import HttpRpc
from keeper.devnet.abi import encode_call
from keeper.devnet.accounts import SUPPLIER_INDEXES, dev_account, user_addresses
from keeper.devnet.cases import CASES
from keeper.devnet.morpho import MARKET_PARAMS
from keeper.devnet.rpc import Tx
from keeper.protocols.aave_v3.adapter import AaveV3Adapter
from keeper.protocols.base import PositionKey
from keeper.state.store import Store
from keeper.state.sync import BlockUpdate, PositionSync
from tests.conftest import LARGE_BORROWERS, Devnet

from .adapter_support import execute
from .helpers import MAX_UINT, send
from .sync_support import TcpProxy, book, fresh_book, new_sync

pytestmark = pytest.mark.integration


def fresh_account(label: str) -> str:
    return to_checksum_address(keccak(text=f"keeper-test-{label}")[12:])


def open_aave_position(devnet: Devnet, user: str, usdc_debt: int = 1_000 * 10**6) -> dict[str, Any]:
    """Supply 10 WETH and borrow USDC; returns the supply receipt (the block that reveals the user)."""
    rpc, s = devnet.rpc, devnet.summary
    pool, weth, usdc = s["aave"]["pool"], s["aave"]["reserves"]["WETH"], s["aave"]["reserves"]["USDC"]
    rpc.call("anvil_setBalance", [user, hex(10**20)])
    send(rpc, user, weth, "mint(uint256)", 10 * 10**18)
    send(rpc, user, weth, "approve(address,uint256)", pool, MAX_UINT)
    supplied = send(rpc, user, pool, "supply(address,uint256,address,uint16)", weth, 10 * 10**18, user, 0)
    send(rpc, user, pool, "borrow(address,uint256,uint256,uint16,address)", usdc, usdc_debt, 2, 0, user)
    return supplied


def open_morpho_position(devnet: Devnet, user: str) -> dict[str, Any]:
    rpc, s = devnet.rpc, devnet.summary
    market = s["morpho"]["market_params"][0]
    params = (
        market["loan_token"],
        market["collateral_token"],
        market["oracle"],
        market["irm"],
        int(market["lltv"]),
    )
    rpc.call("anvil_setBalance", [user, hex(10**20)])
    send(rpc, user, market["collateral_token"], "mint(uint256)", 10 * 10**18)
    send(rpc, user, market["collateral_token"], "approve(address,uint256)", s["morpho"]["address"], MAX_UINT)
    supplied = send(
        rpc,
        user,
        s["morpho"]["address"],
        f"supplyCollateral({MARKET_PARAMS},uint256,address,bytes)",
        params,
        10 * 10**18,
        user,
        b"",
    )
    send(
        rpc,
        user,
        s["morpho"]["address"],
        f"borrow({MARKET_PARAMS},uint256,uint256,address,address)",
        params,
        1_000 * 10**6,
        0,
        user,
        user,
    )
    return supplied


async def follow_to_head(sync: PositionSync, stream: BlockStream, rpc: HttpRpc) -> list[BlockUpdate]:
    head = int(await rpc.request("eth_blockNumber"), 16)
    updates = []
    async for update in sync.follow(stream):
        updates.append(update)
        if update.block.number >= head:
            break
    return updates


async def test_backfill_discovers_exactly_the_accounts_that_ever_held_positions(
    large_devnet: Devnet, tmp_path: Path
) -> None:
    seed = large_devnet.summary["seed"]
    aave_borrowers = set(user_addresses("aave", LARGE_BORROWERS, seed))
    morpho_borrowers = set(user_addresses("morpho", LARGE_BORROWERS, seed))
    closed = large_devnet.summary["closed_borrowers"]
    assert len(closed["aave"]) == len(closed["morpho"]) == LARGE_BORROWERS // 50
    async with HttpRpc(large_devnet.summary["rpc_url"]) as rpc:
        with Store.open(tmp_path / "store.sqlite") as store:
            sync = new_sync(large_devnet, rpc, store)
            head = await sync.start()
            aave = {k.user for k in store.positions("aave")}
            morpho = {k.user for k in store.positions("morpho")}
            with_debt = {t.name: {h.user for h in t.adapter.health(head.timestamp)} for t in sync.protocols}
    aave_supplier = dev_account(SUPPLIER_INDEXES[0]).address
    cases = {u for users in large_devnet.summary["aave"]["cases"].values() for u in users}
    assert len(cases) == len(CASES)
    aave_borrowers |= cases  # the v3.6 devnet's case borrowers, seeded after the random ones
    assert aave == aave_borrowers | {aave_supplier}
    assert morpho == morpho_borrowers
    assert set(closed["aave"]) <= aave and not set(closed["aave"]) & with_debt["aave"]
    assert set(closed["morpho"]) <= morpho and not set(closed["morpho"]) & with_debt["morpho"]
    assert with_debt["aave"] == aave_borrowers - set(closed["aave"])
    assert with_debt["morpho"] == morpho_borrowers - set(closed["morpho"])
    assert sync.events_backfilled > 4 * LARGE_BORROWERS


async def test_new_borrowers_are_tracked_in_the_block_that_reveals_them(
    large_chain: Devnet, tmp_path: Path
) -> None:
    async with HttpRpc(large_chain.summary["rpc_url"]) as rpc:
        with Store.open(tmp_path / "store.sqlite") as store:
            sync = new_sync(large_chain, rpc, store)
            await sync.start()
            aave_user, morpho_user = fresh_account("live-aave"), fresh_account("live-morpho")
            aave_block = int(open_aave_position(large_chain, aave_user)["blockNumber"], 16)
            morpho_block = int(open_morpho_position(large_chain, morpho_user)["blockNumber"], 16)
            stream = BlockStream(rpc, PollingHeads(rpc, 0.02), lambda: combined_filter(sync.protocols))
            updates = {u.block.number: u for u in await follow_to_head(sync, stream, rpc)}
            pool = large_chain.summary["aave"]["pool"]
            assert PositionKey(pool, aave_user) in updates[aave_block].touched["aave"]
            market = large_chain.summary["morpho"]["market_params"][0]["id"]
            assert PositionKey(market, morpho_user) in updates[morpho_block].touched["morpho"]
            followed = book(sync)
    debtors = {name: {h[1] for h in healths} for name, healths in followed.health.items()}
    assert aave_user in debtors["aave"] and morpho_user in debtors["morpho"]
    assert followed == await fresh_book(large_chain, tmp_path / "fresh.sqlite")


async def until(condition: Callable[[], bool]) -> None:
    while not condition():  # noqa: ASYNC110 -- the heads expose counters, not an event
        await asyncio.sleep(0.02)


async def test_websocket_loss_skips_no_block_and_loses_no_log(large_chain: Devnet, tmp_path: Path) -> None:
    s = large_chain.summary
    keeper, pool, usdc = s["keeper_address"], s["aave"]["pool"], s["aave"]["reserves"]["USDC"]
    send(large_chain.rpc, keeper, usdc, "approve(address,uint256)", pool, MAX_UINT)

    def supply_once() -> None:  # one block with pool logs
        send(large_chain.rpc, keeper, pool, "supply(address,uint256,address,uint16)", usdc, 10**6, keeper, 0)

    async with HttpRpc(s["rpc_url"]) as rpc, TcpProxy(large_chain.port) as proxy:
        with Store.open(tmp_path / "store.sqlite") as store:
            sync = new_sync(large_chain, rpc, store)
            start = await sync.start()
            heads = WebSocketHeads(
                f"ws://127.0.0.1:{proxy.port}",
                rpc,
                poll_interval_s=0.2,
                reconnect_initial_s=0.1,
                reconnect_max_s=0.2,  # a retry every 0.2 s at most: it is back soon after the cut
            )
            stream = BlockStream(rpc, heads, lambda: combined_filter(sync.protocols))
            seen: list[BlockUpdate] = []

            async def produce() -> None:
                for index in range(30):
                    if index == 10:
                        await proxy.cut(down_s=1.0)
                    await asyncio.to_thread(supply_once)
                    await asyncio.sleep(0.03)

            async def consume(last: asyncio.Future[int]) -> None:
                async for update in sync.follow(stream):
                    seen.append(update)
                    if last.done() and update.block.number >= last.result():
                        return

            async with asyncio.timeout(60), asyncio.TaskGroup() as group:
                listener = group.create_task(heads.run())
                last: asyncio.Future[int] = asyncio.get_running_loop().create_future()
                consumer = group.create_task(consume(last))
                await until(lambda: heads.connected)  # the cut must hit a live socket
                await produce()
                await until(lambda: heads.connections >= 2)  # the reconnect, however late it came
                last.set_result(large_chain.rpc.block_number())
                large_chain.rpc.call("evm_mine")  # in case the consumer already waits past the last block
                await consumer
                listener.cancel()
            log_filter = combined_filter(sync.protocols)
    numbers = [u.block.number for u in seen]
    assert numbers == list(range(start.number + 1, numbers[-1] + 1))
    assert numbers[-1] >= last.result()
    assert heads.disconnects >= 1 and heads.connections >= 2
    expected = large_chain.rpc.call(
        "eth_getLogs",
        [
            {
                "address": list(log_filter.addresses),
                "topics": [list(log_filter.topics)],
                "fromBlock": hex(start.number + 1),
                "toBlock": hex(numbers[-1]),
            }
        ],
    )
    got = [(log["blockHash"], log["logIndex"]) for u in seen for log in u.block.logs]
    assert got == [(log["blockHash"], log["logIndex"]) for log in expected]
    assert len(got) >= 30


def _tx(sender: str, to: str, signature: str, *args: Any) -> Tx:
    return Tx(sender, to, encode_call(signature, *args), signature.split("(", maxsplit=1)[0])


@pytest.mark.parametrize("kind", ["reorg-1", "reorg-5", "rollback-3"])
async def test_reorg_leaves_the_book_equal_to_a_fresh_resync(
    large_chain: Devnet, tmp_path: Path, kind: str
) -> None:
    """The abandoned branch, oldest first: [doomed account appears, 3 empty blocks, a borrower repays]."""
    rpc_sync = large_chain.rpc
    s = large_chain.summary
    pool, weth, usdc = s["aave"]["pool"], s["aave"]["reserves"]["WETH"], s["aave"]["reserves"]["USDC"]
    survivor, doomed = fresh_account(f"{kind}-survivor"), fresh_account(f"{kind}-doomed")
    async with HttpRpc(s["rpc_url"]) as rpc:
        with Store.open(tmp_path / "store.sqlite") as store:
            sync = new_sync(large_chain, rpc, store)
            await sync.start()
            aave = sync.protocols[0].adapter
            assert isinstance(aave, AaveV3Adapter) and aave.pool_state is not None
            repayer = next(
                u
                for u, state in aave.users.items()
                if state.is_borrowing(aave.pool_state.reserve_by_asset(usdc).id)
            )
            rpc_sync.batch([("anvil_setBalance", [a, hex(10**20)]) for a in (survivor, doomed)])
            execute(  # preparation, below the fork point
                large_chain,
                [_tx(account, weth, "mint(uint256)", 10**19) for account in (survivor, doomed)]
                + [
                    _tx(account, weth, "approve(address,uint256)", pool, MAX_UINT)
                    for account in (survivor, doomed)
                ]
                + [_tx(repayer, usdc, "approve(address,uint256)", pool, MAX_UINT)],
            )
            stream = BlockStream(rpc, PollingHeads(rpc, 0.02), lambda: combined_filter(sync.protocols))
            execute(
                large_chain,
                [
                    _tx(doomed, pool, "supply(address,uint256,address,uint16)", weth, 10**19, doomed, 0),
                    _tx(
                        doomed,
                        pool,
                        "borrow(address,uint256,uint256,uint16,address)",
                        usdc,
                        10**9,
                        2,
                        0,
                        doomed,
                    ),
                ],
            )
            for _ in range(3):
                execute(large_chain, [])
            execute(
                large_chain,
                [_tx(repayer, pool, "repay(address,uint256,uint256,address)", usdc, 10**8, 2, repayer)],
            )
            await follow_to_head(sync, stream, rpc)
            assert PositionKey(pool, doomed) in set(store.positions("aave"))
            supply = {
                "from": survivor,
                "to": pool,
                "data": "0x"
                + encode_call("supply(address,uint256,address,uint16)", weth, 10**18, survivor, 0).hex(),
                "gas": hex(1_000_000),
            }
            depth = int(kind.split("-")[1])
            if kind.startswith("reorg"):
                rpc_sync.call("anvil_reorg", [depth, [[supply, 0]]])
            else:
                rpc_sync.call("anvil_rollback", [depth])
                execute(
                    large_chain,
                    [
                        _tx(
                            survivor,
                            pool,
                            "supply(address,uint256,address,uint16)",
                            weth,
                            10**18,
                            survivor,
                            0,
                        )
                    ],
                )
            for _ in range(depth + 1):  # the new branch must outgrow the old head for a follower to notice
                execute(large_chain, [])
            await follow_to_head(sync, stream, rpc)
            followed = book(sync)
            assert sync.reorgs == 1
    assert followed == await fresh_book(large_chain, tmp_path / "fresh.sqlite")
    assert PositionKey(pool, survivor) in followed.positions["aave"]
    assert (PositionKey(pool, doomed) in followed.positions["aave"]) == (depth < 5)
