"""Drive protocol adapters against a devnet the way the engine will, and read the contracts' own views.

`Follower` syncs an adapter from logs once, then follows new blocks with touched-position refreshes
only. The contract views come from `keeper.devnet.inspect`, which asks the contracts (Aave's
``getUserAccountData``; Morpho's ``market``/``position``/oracle after an on-chain ``accrueInterest``).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from keeper.chain.rpc import HttpRpc
from keeper.devnet.abi import decode_result, encode_call
from keeper.devnet.accounts import DEPLOYER_INDEX, dev_account
from keeper.devnet.inspect import aave_health, morpho_health
from keeper.devnet.morpho import MARKET_PARAMS
from keeper.devnet.rpc import Executor, Tx
from keeper.protocols.aave_v3.adapter import AaveV3Adapter
from keeper.protocols.aave_v3.math import collateral_balance, debt_balances, reserves_at
from keeper.protocols.base import BlockRef, LendingAdapter, PositionHealth, PositionKey
from keeper.protocols.morpho_blue.adapter import MorphoBlueAdapter
from tests.support.devnet import Devnet

AAVE_V36 = "aave_v3"
"""The default devnet's Aave: v3.6."""
AAVE_V30 = "aave_v3_0"
"""Aave v3.0.x, on a devnet of its own (`--aave-version 3.0`)."""
PROTOCOLS = [AAVE_V36, "morpho_blue"]
"""Adapters the shared suites run on the default devnet."""
HEALTH_PROTOCOLS = [*PROTOCOLS, AAVE_V30]
"""Plus Aave v3.0.x: the health and liquidation proofs run on both Aave versions."""
LIQUIDATION_PROTOCOLS = HEALTH_PROTOCOLS
AAVE = (AAVE_V36, AAVE_V30)
MAX_UINT = 2**256 - 1
WAD = 10**18

Values = tuple[int, int, int]
"""(health factor, collateral, debt) in the protocol's units."""


def make_adapter(protocol: str, devnet: Devnet) -> LendingAdapter:
    if protocol in AAVE:
        return AaveV3Adapter("aave", devnet.summary["aave"]["pool_addresses_provider"])
    return MorphoBlueAdapter("morpho", devnet.summary["morpho"]["address"])


async def head(rpc: HttpRpc, tag: str | int = "latest") -> BlockRef:
    block = await rpc.request("eth_getBlockByNumber", [tag if isinstance(tag, str) else hex(tag), False])
    return BlockRef(int(block["number"], 16), block["hash"], int(block["timestamp"], 16))


class Follower:
    def __init__(self, adapter: LendingAdapter, rpc: HttpRpc) -> None:
        self.adapter = adapter
        self.rpc = rpc
        self.block: BlockRef | None = None
        self.touched_total = 0
        self.last_touched: set[PositionKey] = set()
        """The positions the last `follow` re-read."""

    async def _logs(self, from_block: int, to_block: int) -> list[dict[str, Any]]:
        log_filter = self.adapter.log_filter()
        params = {
            "address": list(log_filter.addresses),
            "topics": [list(log_filter.topics)],
            "fromBlock": hex(from_block),
            "toBlock": hex(to_block),
        }
        logs: list[dict[str, Any]] = await self.rpc.request("eth_getLogs", [params])
        return logs

    async def sync(self) -> BlockRef:
        block = await head(self.rpc)
        await self.adapter.refresh(self.rpc, block, [])  # global state first: it names the contracts to watch
        keys = self.adapter.apply_logs(await self._logs(0, block.number))
        await self.adapter.refresh(self.rpc, block, keys)
        self.block = block
        return block

    async def follow(self) -> BlockRef:
        """Only the positions named by logs since the last block are re-read; globals always are."""
        assert self.block is not None
        block = await head(self.rpc)
        logs = (
            await self._logs(self.block.number + 1, block.number) if block.number > self.block.number else []
        )
        keys = self.adapter.apply_logs(logs)
        self.touched_total += len(keys)
        self.last_touched = set(keys)
        await self.adapter.refresh(self.rpc, block, keys)
        self.block = block
        return block


def execute(devnet: Devnet, txs: Sequence[Tx]) -> None:
    """Mine ``txs`` (in blocks of up to 100), or one empty block when there are none."""
    rpc = devnet.rpc
    if not txs:
        rpc.call("evm_mine")
        return
    rpc.call("evm_setAutomine", [False])
    try:
        Executor(rpc).execute(txs)
    finally:
        rpc.call("evm_setAutomine", [True])


def settle(protocol: str, devnet: Devnet) -> None:
    """One block after which the contracts' stored state is current (Morpho accrues only when poked)."""
    txs = []
    if protocol == "morpho_blue":
        deployer = dev_account(DEPLOYER_INDEX).address
        morpho = devnet.summary["morpho"]["address"]
        txs = [
            Tx(deployer, morpho, encode_call(f"accrueInterest({MARKET_PARAMS})", _params(m)), "accrue")
            for m in devnet.summary["morpho"]["market_params"]
        ]
    execute(devnet, txs)


def _params(market: dict[str, Any]) -> tuple[str, str, str, str, int]:
    return (
        market["loan_token"],
        market["collateral_token"],
        market["oracle"],
        market["irm"],
        int(market["lltv"]),
    )


def onchain(protocol: str, devnet: Devnet) -> dict[tuple[str, str], Values]:
    """Every borrower with debt, as the contracts see it at the latest block."""
    if protocol in AAVE:
        pool = devnet.summary["aave"]["pool"]
        healths = aave_health(devnet.rpc, pool)
        return {
            (pool.lower(), h.user): (h.health_factor_wad, h.collateral, h.debt) for h in healths if h.debt
        }
    healths = morpho_health(devnet.rpc, devnet.summary["morpho"]["address"])
    return {
        (h.market.lower(), h.user): (h.health_factor_wad, h.collateral, h.debt) for h in healths if h.debt
    }


def local(healths: Sequence[PositionHealth]) -> dict[tuple[str, str], Values]:
    return {
        (h.market.lower(), h.user): (h.health_factor_wad, h.collateral_base, h.debt_base) for h in healths
    }


def mismatches(mine: dict[tuple[str, str], Values], theirs: dict[tuple[str, str], Values]) -> list[str]:
    problems = [f"only local: {k}" for k in sorted(set(mine) - set(theirs))]
    problems += [f"only on chain: {k}" for k in sorted(set(theirs) - set(mine))]
    problems += [
        f"{k}: local {mine[k]} chain {theirs[k]}"
        for k in sorted(set(mine) & set(theirs))
        if mine[k] != theirs[k]
    ]
    return problems


def position_change_txs(
    protocol: str, devnet: Devnet, adapter: LendingAdapter, timestamp: int, rng: random.Random
) -> list[Tx]:
    """Partial repays on 60 borrowers and small collateral withdrawals on 20 comfortable ones."""
    healths = {h.user: h for h in adapter.health(timestamp)}
    users = sorted(healths)
    repayers = rng.sample(users, 60)
    comfortable = [u for u in users if u not in repayers and healths[u].health_factor_wad > 3 * WAD // 2]
    withdrawers = rng.sample(comfortable, min(20, len(comfortable)))
    if protocol in AAVE:
        assert isinstance(adapter, AaveV3Adapter)
        return _aave_change_txs(adapter, timestamp, repayers, withdrawers)
    assert isinstance(adapter, MorphoBlueAdapter)
    return _morpho_change_txs(adapter, {h.user: h.market for h in healths.values()}, repayers, withdrawers)


def emode_change_txs(devnet: Devnet, adapter: AaveV3Adapter) -> list[Tx]:
    """v3.6 eMode reconfiguration, as a risk admin would: the category's collateral most held by its
    users leaves the collateral bitmap (they fall back to its reserve LT), another gets LTV 0."""
    pool_state = adapter.pool_state
    assert pool_state is not None
    category = pool_state.emode_categories[1]
    ids = [i for i in sorted(pool_state.reserves) if (category.collateral_bitmap >> i) & 1]
    assert len(ids) >= 2, f"the devnet's eMode category has collateral ids {ids}"
    in_emode = [u for u in adapter.users.values() if u.emode_category == 1]
    held = {i: sum(u.is_using_as_collateral(i) for u in in_emode) for i in ids}
    leaving = max(ids, key=lambda i: held[i])
    assert held[leaving] > 0, "no eMode user holds eMode collateral: the change would prove nothing"
    last = pool_state.reserves[leaving].asset
    first = pool_state.reserves[next(i for i in ids if i != leaving)].asset
    provider = devnet.summary["aave"]["pool_addresses_provider"]
    (configurator,) = decode_result(
        ["address"], devnet.rpc.eth_call(provider, encode_call("getPoolConfigurator()"))
    )
    admin = dev_account(DEPLOYER_INDEX).address
    return [
        Tx(
            admin,
            configurator,
            encode_call("setAssetLtvzeroInEMode(address,uint8,bool)", first, 1, True),
            "ltv zero in eMode",
        ),
        Tx(
            admin,
            configurator,
            encode_call("setAssetCollateralInEMode(address,uint8,bool)", last, 1, False),
            "leave eMode collateral",
        ),
    ]


def _aave_change_txs(
    adapter: AaveV3Adapter, timestamp: int, repayers: list[str], withdrawers: list[str]
) -> list[Tx]:
    pool_state = adapter.pool_state
    assert pool_state is not None
    at = reserves_at(pool_state, timestamp)
    txs = []
    for user in repayers:
        state = adapter.users[user]
        reserve_id = next(i for i in state.flagged_reserve_ids() if state.is_borrowing(i))
        asset = at[reserve_id].reserve.asset
        _, variable = debt_balances(at[reserve_id], state.reserves[reserve_id], timestamp)
        amount = variable * 3 // 10
        txs += [
            Tx(user, asset, encode_call("approve(address,uint256)", adapter.pool, amount), "approve"),
            Tx(
                user,
                adapter.pool,
                encode_call("repay(address,uint256,uint256,address)", asset, amount, 2, user),
                "repay",
            ),
        ]
    for user in withdrawers:
        state = adapter.users[user]
        reserve_id = next(i for i in state.flagged_reserve_ids() if state.is_using_as_collateral(i))
        amount = collateral_balance(at[reserve_id], state.reserves[reserve_id]) * 5 // 100
        asset = at[reserve_id].reserve.asset
        txs.append(
            Tx(
                user,
                adapter.pool,
                encode_call("withdraw(address,uint256,address)", asset, amount, user),
                "withdraw",
            )
        )
    return txs


def _morpho_change_txs(
    adapter: MorphoBlueAdapter, market_of: dict[str, str], repayers: list[str], withdrawers: list[str]
) -> list[Tx]:
    txs = []
    for user in repayers:
        params = adapter.params[market_of[user]]
        tuple_params = (params.loan_token, params.collateral_token, params.oracle, params.irm, params.lltv)
        shares = adapter.positions[(params.id, user)].borrow_shares // 2
        txs += [
            Tx(
                user,
                params.loan_token,
                encode_call("approve(address,uint256)", adapter.morpho, MAX_UINT),
                "approve",
            ),
            Tx(
                user,
                adapter.morpho,
                encode_call(
                    f"repay({MARKET_PARAMS},uint256,uint256,address,bytes)",
                    tuple_params,
                    0,
                    shares,
                    user,
                    b"",
                ),
                "repay",
            ),
        ]
    for user in withdrawers:
        params = adapter.params[market_of[user]]
        tuple_params = (params.loan_token, params.collateral_token, params.oracle, params.irm, params.lltv)
        amount = adapter.positions[(params.id, user)].collateral * 2 // 100
        txs.append(
            Tx(
                user,
                adapter.morpho,
                encode_call(
                    f"withdrawCollateral({MARKET_PARAMS},uint256,address,address)",
                    tuple_params,
                    amount,
                    user,
                    user,
                ),
                "withdraw collateral",
            )
        )
    return txs
