"""Read Aave V3 state at one block in a fixed number of batched round trips.

Round 1: the reserve list, every reserve's data, every price, and each requested user's
configuration bitmap. Round 2: eMode categories, and for users with a position their eMode and the
balances their bitmap says matter. A new reserve, eMode category or price source costs one extra
round, once. The number of round trips never depends on the number of users; the number of calls
inside them does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from eth_abi.abi import decode
from eth_utils.address import to_checksum_address

from keeper.chain.multicall import Call, address_arg, aggregate3, selector, uint_arg, words
from keeper.chain.rpc import BlockTag, Rpc
from keeper.errors import KeeperError

from .state import EModeCategory, PoolState, Reserve, ReserveConfig, StableDebt, UserReserve, UserState

GET_POOL = selector("getPool()")
GET_PRICE_ORACLE = selector("getPriceOracle()")
GET_RESERVES_LIST = selector("getReservesList()")
GET_RESERVE_DATA = selector("getReserveData(address)")
GET_ASSET_PRICE = selector("getAssetPrice(address)")
GET_SOURCE_OF_ASSET = selector("getSourceOfAsset(address)")
LATEST_ROUND_DATA = selector("latestRoundData()")
TOTAL_SUPPLY = selector("totalSupply()")
BALANCE_OF = selector("balanceOf(address)")
GET_USER_CONFIGURATION = selector("getUserConfiguration(address)")
GET_USER_EMODE = selector("getUserEMode(address)")
GET_EMODE_CATEGORY = selector("getEModeCategoryData(uint8)")
SCALED_BALANCE_OF = selector("scaledBalanceOf(address)")
PRINCIPAL_BALANCE_OF = selector("principalBalanceOf(address)")
GET_USER_STABLE_RATE = selector("getUserStableRate(address)")
GET_USER_LAST_UPDATED = selector("getUserLastUpdated(address)")


@dataclass(frozen=True, slots=True)
class PoolAddresses:
    provider: str
    pool: str
    oracle: str


def _address(word: int) -> str:
    return to_checksum_address(word.to_bytes(20, "big"))


async def read_addresses(rpc: Rpc, provider: str, block: BlockTag) -> PoolAddresses:
    pool, oracle = await aggregate3(rpc, [Call(provider, GET_POOL), Call(provider, GET_PRICE_ORACLE)], block)
    return PoolAddresses(provider, _address(words(pool.data)[0]), _address(words(oracle.data)[0]))


def _decode_reserve(asset: str, raw: bytes, stable_supply: int, cash: int = 0) -> Reserve:
    w = words(raw)
    return Reserve(
        asset=asset,
        id=w[7],
        config=ReserveConfig.decode(w[0]),
        liquidity_index=w[1],
        current_liquidity_rate=w[2],
        variable_borrow_index=w[3],
        current_variable_borrow_rate=w[4],
        last_update_timestamp=w[6],
        a_token=_address(w[8]),
        stable_debt_token=_address(w[9]),
        variable_debt_token=_address(w[10]),
        stable_debt_supply=stable_supply,
        cash=cash,
    )


async def _reserve_tokens(rpc: Rpc, addresses: PoolAddresses, block: BlockTag) -> dict[str, Reserve]:
    """The reserve list and each reserve's data (token addresses), for a pool seen for the first time."""
    (listed,) = await aggregate3(rpc, [Call(addresses.pool, GET_RESERVES_LIST)], block)
    assets = [to_checksum_address(a) for a in decode(["address[]"], listed.data)[0]]
    results = await aggregate3(
        rpc, [Call(addresses.pool, GET_RESERVE_DATA + address_arg(a)) for a in assets], block
    )
    return {a: _decode_reserve(a, r.data, 0) for a, r in zip(assets, results, strict=True)}


async def read_pool_and_users(
    rpc: Rpc,
    addresses: PoolAddresses,
    block: BlockTag,
    users: Sequence[str],
    previous: PoolState | None,
) -> tuple[PoolState, dict[str, UserState]]:
    """Global pool state and the given users' state, all at ``block``."""
    known = {r.asset: r for r in previous.reserves.values()} if previous else {}
    emode_sources = {c.price_source for c in previous.emode_categories.values()} if previous else set()
    for _ in range(3):
        reserves, prices, configs = await _round_one(rpc, addresses, block, known, users)
        if reserves is not None:
            break
        known = await _reserve_tokens(rpc, addresses, block)
    else:
        raise KeeperError(f"pool {addresses.pool}: reserve list keeps changing within block {block}")
    emode_ids = {c.id for c in previous.emode_categories.values()} if previous else set()
    while True:  # one pass unless a user's eMode category or a category's price source is new
        categories, source_prices, emodes, balances = await _round_two(
            rpc, addresses, block, reserves, configs, emode_ids, sorted(emode_sources)
        )
        missing_ids = set(emodes.values()) - set(categories) - {0}
        missing_sources = {c.price_source for c in categories.values() if int(c.price_source, 16)}
        missing_sources -= set(source_prices)
        if not missing_ids and not missing_sources:
            break
        emode_ids |= missing_ids
        emode_sources |= missing_sources
    state = PoolState(addresses.pool, addresses.oracle, reserves, categories, prices | source_prices)
    user_states = {
        user: UserState(user, config, emodes.get(user, 0), balances.get(user, {}))
        for user, config in configs.items()
    }
    return state, user_states


async def _round_one(
    rpc: Rpc,
    addresses: PoolAddresses,
    block: BlockTag,
    known: dict[str, Reserve],
    users: Sequence[str],
) -> tuple[dict[int, Reserve] | None, dict[str, int], dict[str, int]]:
    """Returns ``None`` reserves when the pool lists assets this reader has not seen yet."""
    assets = list(known)
    calls = [Call(addresses.pool, GET_RESERVES_LIST)]
    for asset in assets:
        calls += [
            Call(addresses.pool, GET_RESERVE_DATA + address_arg(asset)),
            Call(addresses.oracle, GET_ASSET_PRICE + address_arg(asset), allow_failure=True),
            Call(known[asset].stable_debt_token, TOTAL_SUPPLY),
            Call(asset, BALANCE_OF + address_arg(known[asset].a_token)),
            Call(addresses.oracle, GET_SOURCE_OF_ASSET + address_arg(asset), allow_failure=True),
            # the source learnt last block: its updatedAt tells how fresh the price is
            Call(known[asset].price_source or addresses.oracle, LATEST_ROUND_DATA, allow_failure=True),
        ]
    calls += [Call(addresses.pool, GET_USER_CONFIGURATION + address_arg(user)) for user in users]
    results = await aggregate3(rpc, calls, block)
    listed = [to_checksum_address(a) for a in decode(["address[]"], results[0].data)[0]]
    if not known or sorted(listed) != sorted(assets):
        return None, {}, {}
    reserves: dict[int, Reserve] = {}
    prices: dict[str, int] = {}
    for index, asset in enumerate(assets):
        data, price, stable_supply, cash, source, round_data = results[1 + 6 * index : 7 + 6 * index]
        source_word = words(source.data)[0] if source.success and len(source.data) >= 32 else 0
        feed = _address(source_word) if source_word else ""
        fresh = known[asset].price_source and round_data.success and len(round_data.data) >= 160
        reserve = _decode_reserve(asset, data.data, words(stable_supply.data)[0], words(cash.data)[0])
        reserves[reserve.id] = replace(
            reserve, price_source=feed, price_updated_at=words(round_data.data)[3] if fresh else 0
        )
        prices[asset] = words(price.data)[0] if price.success and len(price.data) >= 32 else 0
    offset = 1 + 6 * len(assets)
    configs = {user: words(results[offset + i].data)[0] for i, user in enumerate(users)}
    return reserves, prices, configs


def _balance_calls(reserve: Reserve, user: str, config: int) -> list[Call]:
    calls = []
    arg = address_arg(user)
    if (config >> ((reserve.id << 1) + 1)) & 1:
        calls.append(Call(reserve.a_token, SCALED_BALANCE_OF + arg))
    if (config >> (reserve.id << 1)) & 1:
        calls.append(Call(reserve.variable_debt_token, SCALED_BALANCE_OF + arg))
        if reserve.stable_debt_supply:
            calls += [
                Call(reserve.stable_debt_token, PRINCIPAL_BALANCE_OF + arg),
                Call(reserve.stable_debt_token, GET_USER_STABLE_RATE + arg),
                Call(reserve.stable_debt_token, GET_USER_LAST_UPDATED + arg),
            ]
    return calls


async def _round_two(
    rpc: Rpc,
    addresses: PoolAddresses,
    block: BlockTag,
    reserves: dict[int, Reserve],
    configs: dict[str, int],
    emode_ids: set[int],
    emode_sources: list[str],
) -> tuple[dict[int, EModeCategory], dict[str, int], dict[str, int], dict[str, dict[int, UserReserve]]]:
    """eMode categories, their price sources, and each user's eMode and balances (users with a position)."""
    category_ids = sorted(({r.config.emode_category for r in reserves.values()} | emode_ids) - {0})
    sources = [s for s in emode_sources if int(s, 16)]
    calls = [Call(addresses.pool, GET_EMODE_CATEGORY + uint_arg(c)) for c in category_ids]
    calls += [Call(addresses.oracle, GET_ASSET_PRICE + address_arg(s)) for s in sources]
    plan: list[tuple[str, Reserve | None, int]] = []
    for user, config in configs.items():
        if config == 0:  # no position: nothing else about this user matters
            continue
        plan.append((user, None, 1))
        calls.append(Call(addresses.pool, GET_USER_EMODE + address_arg(user)))
        for reserve in reserves.values():
            user_calls = _balance_calls(reserve, user, config)
            if user_calls:
                plan.append((user, reserve, len(user_calls)))
                calls += user_calls
    results = await aggregate3(rpc, calls, block)
    categories = {}
    for category_id, result in zip(category_ids, results[: len(category_ids)], strict=True):
        ltv, threshold, bonus, source, _ = decode(["(uint16,uint16,uint16,address,string)"], result.data)[0]
        categories[category_id] = EModeCategory(
            category_id, ltv, threshold, bonus, to_checksum_address(source)
        )
    offset = len(category_ids)
    source_prices = {s: words(results[offset + i].data)[0] for i, s in enumerate(sources)}
    offset += len(sources)
    emodes: dict[str, int] = {}
    balances: dict[str, dict[int, UserReserve]] = {}
    for user, target, count in plan:
        values = [words(r.data)[0] for r in results[offset : offset + count]]
        offset += count
        if target is None:
            emodes[user] = values[0]
        else:
            balances.setdefault(user, {})[target.id] = _user_reserve(target, configs[user], values)
    return categories, source_prices, emodes, balances


def _user_reserve(reserve: Reserve, config: int, values: list[int]) -> UserReserve:
    """Inverse of `_balance_calls`: the values come back in the order the calls were made."""
    balances = UserReserve()
    position = 0
    if (config >> ((reserve.id << 1) + 1)) & 1:
        balances = replace(balances, scaled_a_token=values[0])
        position = 1
    if (config >> (reserve.id << 1)) & 1:
        balances = replace(balances, scaled_variable_debt=values[position])
        if reserve.stable_debt_supply:
            principal, rate, updated = values[position + 1 : position + 4]
            balances = replace(balances, stable=StableDebt(principal, rate, updated))
    return balances
