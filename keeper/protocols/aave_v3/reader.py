"""Read Aave V3 state at one block in a fixed number of batched round trips.

Once, at start-up, one round tells which Aave version the pool runs (`version`). Then per block,
round 1: the reserve list, every reserve's data, every price, and each requested user's
configuration bitmap. Round 2: eMode categories, and for users with a position their eMode and the
balances their bitmap says matter. A new reserve, eMode category or price source costs one extra
round, once. The number of round trips never depends on the number of users; the number of calls
inside them does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from keeper.chain.abi import Binding, Function, contract
from keeper.chain.multicall import Call, Result, aggregate3
from keeper.chain.rpc import BlockTag, Rpc
from keeper.errors import KeeperError

from .state import EModeCategory, PoolState, Reserve, ReserveConfig, StableDebt, UserReserve, UserState
from .version import DetectedVersion, Probes

ZERO_ADDRESS = "0x" + "00" * 20

PROVIDER = contract("aave_v3_0/IPoolAddressesProvider")
POOL = contract("aave_v3_0/IPool")
POOL_V3_6 = contract("aave_v3_6/IPool")
ORACLE = contract("aave_v3_0/IAaveOracle")
A_TOKEN = contract("aave_v3_0/IAToken")
VARIABLE_DEBT_TOKEN = contract("aave_v3_0/IVariableDebtToken")
STABLE_DEBT_TOKEN = contract("aave_v3_0/IStableDebtToken")
ERC20 = contract("common/IERC20")
FEED = contract("common/AggregatorV3Interface")

GET_POOL = PROVIDER.fn("getPool")
GET_PRICE_ORACLE = PROVIDER.fn("getPriceOracle")
GET_POOL_CONFIGURATOR = PROVIDER.fn("getPoolConfigurator")
GET_RESERVES_LIST = POOL.fn("getReservesList")
GET_RESERVE_DATA = POOL.fn("getReserveData")
GET_USER_CONFIGURATION = POOL.fn("getUserConfiguration")
GET_USER_EMODE = POOL.fn("getUserEMode")
GET_EMODE_CATEGORY = POOL.fn("getEModeCategoryData")
POOL_REVISION = POOL.fn("POOL_REVISION")
VERSION_PROBES = {  # Probes field -> the view whose existence it records (any argument will do)
    "liquidation_grace_period": (POOL_V3_6.fn("getLiquidationGracePeriod"), (ZERO_ADDRESS,)),
    "emode_collateral_bitmap": (POOL_V3_6.fn("getEModeCategoryCollateralBitmap"), (1,)),
    "reserve_deficit": (POOL_V3_6.fn("getReserveDeficit"), (ZERO_ADDRESS,)),
    "rate_strategy_immutable": (POOL_V3_6.fn("RESERVE_INTEREST_RATE_STRATEGY"), ()),
    "emode_ltvzero_bitmap": (POOL_V3_6.fn("getEModeCategoryLtvzeroBitmap"), (1,)),
}
GET_ASSET_PRICE = ORACLE.fn("getAssetPrice")
GET_SOURCE_OF_ASSET = ORACLE.fn("getSourceOfAsset")
LATEST_ROUND_DATA = FEED.fn("latestRoundData")
TOTAL_SUPPLY = ERC20.fn("totalSupply")
BALANCE_OF = ERC20.fn("balanceOf")
A_TOKEN_SCALED_BALANCE_OF = A_TOKEN.fn("scaledBalanceOf")
VARIABLE_SCALED_BALANCE_OF = VARIABLE_DEBT_TOKEN.fn("scaledBalanceOf")
PRINCIPAL_BALANCE_OF = STABLE_DEBT_TOKEN.fn("principalBalanceOf")
GET_USER_STABLE_RATE = STABLE_DEBT_TOKEN.fn("getUserStableRate")
GET_USER_LAST_UPDATED = STABLE_DEBT_TOKEN.fn("getUserLastUpdated")

RESERVE = Binding(
    Reserve,
    GET_RESERVE_DATA.fields,
    renames={
        "a_token": "aTokenAddress",
        "stable_debt_token": "stableDebtTokenAddress",
        "variable_debt_token": "variableDebtTokenAddress",
    },
    given=(
        "asset",
        "config",
        "stable_debt_supply",
        "cash",
        "price_source",
        "price_updated_at",
        "virtual_underlying_balance",
        "deficit",
        "liquidation_grace_period_until",
    ),
    source="IPool.getReserveData",
)
EMODE_CATEGORY = Binding(
    EModeCategory,
    GET_EMODE_CATEGORY.fields,
    given=("id", "collateral_bitmap", "borrowable_bitmap", "ltvzero_bitmap"),
    source="IPool.getEModeCategoryData",
)


@dataclass(frozen=True, slots=True)
class ExtraViews:
    """Pool views one Aave version adds to the shared rounds: (dataclass field, view) pairs.

    ``reserve`` views take the asset and fill a `Reserve` field (round one); ``category`` views take
    the eMode category id and fill an `EModeCategory` field (round two). They ride in the batches
    the reader sends anyway, so a version's extra state costs calls, never round trips.
    """

    reserve: tuple[tuple[str, Function], ...] = ()
    category: tuple[tuple[str, Function], ...] = ()


NO_EXTRA_VIEWS = ExtraViews()


@dataclass(frozen=True, slots=True)
class PoolAddresses:
    provider: str
    pool: str
    oracle: str
    configurator: str = ""
    """The PoolConfigurator, whose events say why liquidation rules changed ("" when unknown)."""


async def read_addresses(rpc: Rpc, provider: str, block: BlockTag) -> PoolAddresses:
    calls = [
        Call(provider, GET_POOL.call()),
        Call(provider, GET_PRICE_ORACLE.call()),
        Call(provider, GET_POOL_CONFIGURATOR.call(), allow_failure=True),
    ]
    pool, oracle, configurator = await aggregate3(rpc, calls, block)
    return PoolAddresses(
        provider,
        GET_POOL.value(pool.data),
        GET_PRICE_ORACLE.value(oracle.data),
        GET_POOL_CONFIGURATOR.value(configurator.data) if _answered(configurator) else "",
    )


async def read_version(rpc: Rpc, pool: str, block: BlockTag) -> DetectedVersion:
    """``POOL_REVISION()`` and the version-only views, in one round; a view that reverts is absent."""
    probes = list(VERSION_PROBES.values())
    calls = [Call(pool, POOL_REVISION.call(), allow_failure=True)]
    calls += [Call(pool, fn.call(*args), allow_failure=True) for fn, args in probes]
    revision, *answers = await aggregate3(rpc, calls, block)
    found = {name: _answered(r) for name, r in zip(VERSION_PROBES, answers, strict=True)}
    return DetectedVersion.of(
        POOL_REVISION.value(revision.data) if _answered(revision) else None, Probes(**found)
    )


def _answered(result: Result) -> bool:
    return result.success and len(result.data) >= 32


def _is_zero(address: str) -> bool:
    return int(address, 16) == 0


def _decode_reserve(asset: str, raw: bytes, stable_supply: int, cash: int = 0) -> Reserve:
    fields = GET_RESERVE_DATA.decode(raw)
    config = ReserveConfig.decode(fields["configuration"]["data"])
    return RESERVE.fill_named(fields, asset=asset, config=config, stable_debt_supply=stable_supply, cash=cash)


def _listed(data: bytes) -> list[str]:
    listed: list[str] = GET_RESERVES_LIST.value(data)
    return listed


async def _reserve_tokens(rpc: Rpc, addresses: PoolAddresses, block: BlockTag) -> dict[str, Reserve]:
    """The reserve list and each reserve's data (token addresses), for a pool seen for the first time."""
    (listed,) = await aggregate3(rpc, [Call(addresses.pool, GET_RESERVES_LIST.call())], block)
    assets = _listed(listed.data)
    results = await aggregate3(rpc, [Call(addresses.pool, GET_RESERVE_DATA.call(a)) for a in assets], block)
    return {a: _decode_reserve(a, r.data, 0) for a, r in zip(assets, results, strict=True)}


async def read_pool_and_users(
    rpc: Rpc,
    addresses: PoolAddresses,
    block: BlockTag,
    users: Sequence[str],
    previous: PoolState | None,
    extra: ExtraViews = NO_EXTRA_VIEWS,
) -> tuple[PoolState, dict[str, UserState]]:
    """Global pool state and the given users' state, all at ``block``; ``extra``: the version's views."""
    known = {r.asset: r for r in previous.reserves.values()} if previous else None
    emode_sources = {c.price_source for c in previous.emode_categories.values()} if previous else set()
    for _ in range(3):
        reserves, prices, configs = await _round_one(rpc, addresses, block, known, users, extra)
        if reserves is not None:
            break
        known = await _reserve_tokens(rpc, addresses, block)
    else:
        raise KeeperError(f"pool {addresses.pool}: reserve list keeps changing within block {block}")
    emode_ids = {c.id for c in previous.emode_categories.values()} if previous else set()
    while True:  # one pass unless a user's eMode category or a category's price source is new
        categories, source_prices, emodes, balances = await _round_two(
            rpc, addresses, block, reserves, configs, emode_ids, sorted(emode_sources), extra
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
    known: dict[str, Reserve] | None,
    users: Sequence[str],
    extra: ExtraViews = NO_EXTRA_VIEWS,
) -> tuple[dict[int, Reserve] | None, dict[str, int], dict[str, int]]:
    """Returns ``None`` reserves when the pool lists assets this reader has not seen yet."""
    assets = list(known or {})
    calls = [Call(addresses.pool, GET_RESERVES_LIST.call())]
    starts = []
    for asset in assets:
        reserve = (known or {})[asset]
        starts.append(len(calls))
        calls += [
            Call(addresses.pool, GET_RESERVE_DATA.call(asset)),
            Call(addresses.oracle, GET_ASSET_PRICE.call(asset), allow_failure=True),
            Call(asset, BALANCE_OF.call(reserve.a_token)),
            Call(addresses.oracle, GET_SOURCE_OF_ASSET.call(asset), allow_failure=True),
            # the source learnt last block: its updatedAt tells how fresh the price is
            Call(reserve.price_source or addresses.oracle, LATEST_ROUND_DATA.call(), allow_failure=True),
        ]
        if not _is_zero(reserve.stable_debt_token):  # v3.2+ pools report no stable-debt token
            calls.append(Call(reserve.stable_debt_token, TOTAL_SUPPLY.call()))
        calls += [Call(addresses.pool, fn.call(asset)) for _, fn in extra.reserve]
    users_at = len(calls)
    calls += [Call(addresses.pool, GET_USER_CONFIGURATION.call(user)) for user in users]
    results = await aggregate3(rpc, calls, block)
    listed = _listed(results[0].data)
    if known is None or sorted(listed) != sorted(assets):
        return None, {}, {}
    reserves: dict[int, Reserve] = {}
    prices: dict[str, int] = {}
    for asset, start in zip(assets, starts, strict=True):
        data, price, cash, source, round_data = results[start : start + 5]
        has_stable = not _is_zero(known[asset].stable_debt_token)
        feed = GET_SOURCE_OF_ASSET.value(source.data) if source.success and len(source.data) >= 32 else ""
        fresh = known[asset].price_source and round_data.success and len(round_data.data) >= 160
        stable = TOTAL_SUPPLY.value(results[start + 5].data) if has_stable else 0
        reserve = _decode_reserve(asset, data.data, stable, BALANCE_OF.value(cash.data))
        extra_at = start + 5 + int(has_stable)
        extras = {
            name: fn.value(result.data)
            for (name, fn), result in zip(
                extra.reserve, results[extra_at : extra_at + len(extra.reserve)], strict=True
            )
        }
        reserves[reserve.id] = replace(
            reserve,
            price_source=feed if feed and int(feed, 16) else "",
            price_updated_at=LATEST_ROUND_DATA.decode(round_data.data)["updatedAt"] if fresh else 0,
            **extras,
        )
        prices[asset] = GET_ASSET_PRICE.value(price.data) if price.success and len(price.data) >= 32 else 0
    configs = {user: GET_USER_CONFIGURATION.value(results[users_at + i].data) for i, user in enumerate(users)}
    return reserves, prices, configs


STABLE_VIEWS = (PRINCIPAL_BALANCE_OF, GET_USER_STABLE_RATE, GET_USER_LAST_UPDATED)


def _balance_calls(reserve: Reserve, user: str, config: int, calls: list[Call], fns: list[Function]) -> None:
    """Appends the balance views this user's configuration bits make relevant, and the functions they call."""
    if (config >> ((reserve.id << 1) + 1)) & 1:
        calls.append(Call(reserve.a_token, A_TOKEN_SCALED_BALANCE_OF.call(user)))
        fns.append(A_TOKEN_SCALED_BALANCE_OF)
    if (config >> (reserve.id << 1)) & 1:
        calls.append(Call(reserve.variable_debt_token, VARIABLE_SCALED_BALANCE_OF.call(user)))
        fns.append(VARIABLE_SCALED_BALANCE_OF)
        if reserve.stable_debt_supply:
            calls += [Call(reserve.stable_debt_token, fn.call(user)) for fn in STABLE_VIEWS]
            fns += STABLE_VIEWS


async def _round_two(
    rpc: Rpc,
    addresses: PoolAddresses,
    block: BlockTag,
    reserves: dict[int, Reserve],
    configs: dict[str, int],
    emode_ids: set[int],
    emode_sources: list[str],
    extra: ExtraViews = NO_EXTRA_VIEWS,
) -> tuple[dict[int, EModeCategory], dict[str, int], dict[str, int], dict[str, dict[int, UserReserve]]]:
    """eMode categories, their price sources, and each user's eMode and balances (users with a position)."""
    category_ids = sorted(({r.config.emode_category for r in reserves.values()} | emode_ids) - {0})
    sources = [s for s in emode_sources if int(s, 16)]
    calls = [Call(addresses.pool, GET_EMODE_CATEGORY.call(c)) for c in category_ids]
    calls += [Call(addresses.pool, fn.call(c)) for c in category_ids for _, fn in extra.category]
    calls += [Call(addresses.oracle, GET_ASSET_PRICE.call(s)) for s in sources]
    plan: list[tuple[str, Reserve | None, list[Function]]] = []
    for user, config in configs.items():
        if config == 0:  # no position: nothing else about this user matters
            continue
        plan.append((user, None, [GET_USER_EMODE]))
        calls.append(Call(addresses.pool, GET_USER_EMODE.call(user)))
        for reserve in reserves.values():
            fns: list[Function] = []
            _balance_calls(reserve, user, config, calls, fns)
            if fns:
                plan.append((user, reserve, fns))
    results = await aggregate3(rpc, calls, block)
    offset = len(category_ids)
    per_category = len(extra.category)
    categories = {}
    for i, (category_id, result) in enumerate(zip(category_ids, results[:offset], strict=True)):
        views = results[offset + i * per_category : offset + (i + 1) * per_category]
        extras = {name: fn.value(r.data) for (name, fn), r in zip(extra.category, views, strict=True)}
        categories[category_id] = EMODE_CATEGORY.fill_named(
            GET_EMODE_CATEGORY.decode(result.data), id=category_id, **extras
        )
    offset += len(category_ids) * per_category
    source_prices = {s: GET_ASSET_PRICE.value(results[offset + i].data) for i, s in enumerate(sources)}
    offset += len(sources)
    emodes: dict[str, int] = {}
    balances: dict[str, dict[int, UserReserve]] = {}
    for user, target, fns in plan:
        values = [fn.value(r.data) for fn, r in zip(fns, results[offset : offset + len(fns)], strict=True)]
        offset += len(fns)
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
