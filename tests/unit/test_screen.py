"""The float screen never misses a position the exact integer maths calls liquidatable.

Hypothesis builds pools and markets with mixed decimals, prices, grown indexes, eMode categories and
stable debt, plus borrowers bisected onto the exact liquidation boundary (the last wei of debt or
collateral that flips the exact health factor) and dust balances where rounding dominates. Every
exact ``HF < 1e18`` must be a candidate at margin 0, and every estimate must sit at or below the
exact health factor.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keeper.math.uint import UINT256_MAX
from keeper.math.wad_ray import RAY, WAD
from keeper.protocols import screening
from keeper.protocols.aave_v3 import screen as aave_screen
from keeper.protocols.aave_v3.math import account_data, reserves_at
from keeper.protocols.aave_v3.screen import AaveScreen
from keeper.protocols.aave_v3.state import (
    ZERO_ADDRESS,
    EModeCategory,
    PoolState,
    Reserve,
    ReserveConfig,
    StableDebt,
    UserReserve,
    UserState,
)
from keeper.protocols.morpho_blue import screen as morpho_screen
from keeper.protocols.morpho_blue.math import health_factor, market_at
from keeper.protocols.morpho_blue.screen import MorphoScreen
from keeper.protocols.morpho_blue.state import Market, MarketParams, MarketState, Position
from keeper.protocols.screening import DEFAULT_MARGIN

T0 = 1_700_000_000
PRICE_SOURCE = "0x" + "ee" * 20
PROPERTY = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
UPDATE_PROPERTY = settings(PROPERTY, max_examples=50)
ELAPSED_S = st.sampled_from([0, 1, 12, 3_600, 30 * 86_400, 365 * 86_400])


def asset(reserve_id: int) -> str:
    return f"0x{reserve_id + 1:040x}"


def aave_reserve(
    reserve_id: int,
    decimals: int,
    threshold: int,
    emode_category: int = 0,
    indexes: tuple[int, int] = (RAY, RAY),
    rates: tuple[int, int] = (0, 0),
    last_update: int = T0,
) -> Reserve:
    config = ReserveConfig(
        ltv=threshold * 9 // 10,
        liquidation_threshold=threshold,
        liquidation_bonus=10_500,
        decimals=decimals,
        active=True,
        frozen=False,
        borrowing_enabled=True,
        stable_borrowing_enabled=True,
        paused=False,
        reserve_factor=1_000,
        liquidation_protocol_fee=1_000,
        emode_category=emode_category,
    )
    return Reserve(
        asset(reserve_id),
        reserve_id,
        config,
        indexes[0],
        rates[0],
        indexes[1],
        rates[1],
        last_update,
        f"0x{reserve_id + 0xA0:040x}",
        f"0x{reserve_id + 0xB0:040x}",
        f"0x{reserve_id + 0xC0:040x}",
    )


def aave_user(name: str, emode: int, legs: dict[int, tuple[bool, bool, UserReserve]]) -> UserState:
    """``legs``: reserve id -> (collateral bit, borrowing bit, balances)."""
    configuration = 0
    for reserve_id, (collateral, borrowing, _) in legs.items():
        configuration |= (int(borrowing) << (reserve_id << 1)) | (int(collateral) << ((reserve_id << 1) + 1))
    return UserState(name, configuration, emode, {i: leg[2] for i, leg in legs.items()})


def with_leg(user: UserState, reserve_id: int, debt: bool, amount: int) -> UserState:
    """The user with its scaled variable debt (or scaled aToken) balance in one reserve set."""
    leg = user.reserves.get(reserve_id, UserReserve())
    leg = replace(leg, scaled_variable_debt=amount) if debt else replace(leg, scaled_a_token=amount)
    return replace(user, reserves={**user.reserves, reserve_id: leg})


def boundary(liquidatable: Callable[[int], bool], low: int, high: int, cap: int) -> tuple[int, int] | None:
    """Adjacent (x, x + 1) on which ``liquidatable`` flips, searching up from ``low`` by doubling.

    ``cap`` keeps amounts where the protocol's own maths stays inside uint256.
    """
    start = liquidatable(low)
    while liquidatable(high) == start:
        if high > cap:
            return None
        high *= 2
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if liquidatable(middle) == start else (low, middle)
    return low, high


# ------------------------------------------------------------------------------------------ Aave


@st.composite
def pools(draw: st.DrawFn) -> tuple[PoolState, int]:
    count = draw(st.integers(2, 4))
    reserves, prices = {}, {}
    for reserve_id in range(count):
        threshold = draw(st.one_of(st.just(0), st.integers(1, 9_800), st.sampled_from([7_500, 8_000, 8_250])))
        reserves[reserve_id] = aave_reserve(
            reserve_id,
            draw(st.sampled_from([6, 8, 18])),
            threshold,
            draw(st.sampled_from([0, 1, 1, 2])),
            (draw(st.integers(RAY, 3 * RAY)), draw(st.integers(RAY, 3 * RAY))),
            (draw(st.integers(0, RAY // 2)), draw(st.integers(0, 2 * RAY))),
            T0 - draw(st.integers(0, 10_000)),
        )
        prices[asset(reserve_id)] = draw(st.integers(1, 10**13))
    categories = {}
    if draw(st.integers(0, 3)):  # usually an eMode category 1; 2 is never defined
        source = draw(st.sampled_from([ZERO_ADDRESS, PRICE_SOURCE]))
        prices[PRICE_SOURCE] = draw(st.integers(1, 10**13))
        threshold = draw(st.integers(1, 9_900))
        categories[1] = EModeCategory(1, threshold * 9 // 10, threshold, 10_100, source)
    return PoolState("0xpool", "0xoracle", reserves, categories, prices), T0 + draw(ELAPSED_S)


def log_uniform(low_exponent: int, high_exponent: int) -> st.SearchStrategy[int]:
    return st.integers(low_exponent, high_exponent - 1).flatmap(lambda e: st.integers(10**e, 10 ** (e + 1)))


def amounts(decimals: int) -> st.SearchStrategy[int]:
    """Zero, dust where rounding dominates, or anything up to ten million whole tokens."""
    return st.one_of(st.just(0), st.integers(1, 1_000), log_uniform(max(decimals - 4, 0), decimals + 7))


@st.composite
def aave_users(draw: st.DrawFn, pool: PoolState, timestamp: int, name: str) -> UserState:
    legs = {}
    for reserve_id in range(len(pool.reserves) + 1):  # the last id is not a pool reserve
        decimals = pool.reserves[reserve_id].config.decimals if reserve_id in pool.reserves else 18
        collateral, borrowing = draw(st.booleans()), draw(st.booleans())
        stable = None
        if borrowing and draw(st.integers(0, 4)) == 0:
            stable = StableDebt(
                draw(amounts(decimals)), draw(st.integers(0, RAY)), timestamp - draw(ELAPSED_S)
            )
        legs[reserve_id] = (
            collateral,
            borrowing,
            UserReserve(draw(amounts(decimals)), draw(amounts(decimals)), stable),
        )
    return aave_user(name, draw(st.sampled_from([0, 1, 1, 2])), legs)


def aave_boundary_users(pool: PoolState, timestamp: int, user: UserState) -> list[UserState]:
    """Per flagged reserve, the two balances a wei apart (variable debt where borrowed, else collateral)
    on which the exact health factor crosses 1."""
    at = reserves_at(pool, timestamp)

    def hf(candidate: UserState) -> int:
        return account_data(pool, at, candidate, timestamp).health_factor

    out = []
    for reserve_id in user.flagged_reserve_ids():
        debt = user.is_borrowing(reserve_id)
        flips = boundary(lambda x: hf(with_leg(user, reserve_id, debt, x)) < WAD, 0, 1, 2**120)  # noqa: B023
        if flips is not None:
            out += [with_leg(user, reserve_id, debt, x) for x in flips]
    return [replace(u, user=f"{user.user}-b{i}") for i, u in enumerate(out)]


@st.composite
def aave_books(draw: st.DrawFn) -> tuple[PoolState, int, list[UserState]]:
    pool, timestamp = draw(pools())
    base = [draw(aave_users(pool, timestamp, f"u{i}")) for i in range(3)]
    return pool, timestamp, base + [b for u in base for b in aave_boundary_users(pool, timestamp, u)]


def exact_aave(pool: PoolState, timestamp: int, users: list[UserState]) -> dict[str, int]:
    at = reserves_at(pool, timestamp)
    return {u.user: account_data(pool, at, u, timestamp).health_factor for u in users}


def assert_screen_is_safe(estimates: dict[str, float], candidates: set[str], exact: dict[str, int]) -> None:
    for name, hf in exact.items():
        if hf < WAD:
            assert name in candidates, (name, hf, estimates[name])
        if hf == UINT256_MAX:
            continue
        assert estimates[name] <= hf / WAD * (1 + 1e-15) + 1e-15, (name, hf, estimates[name])


@given(aave_books())
@PROPERTY
def test_aave_screen_never_misses_a_liquidatable_user(book: tuple[PoolState, int, list[UserState]]) -> None:
    pool, timestamp, users = book
    screen = AaveScreen()
    screen.set_users(users)
    estimates = dict(zip(screen.users, screen.estimates(pool, timestamp).tolist(), strict=True))
    candidates = set(screen.candidates(pool, timestamp, margin=0.0))
    assert_screen_is_safe(estimates, candidates, exact_aave(pool, timestamp, users))


@given(aave_books(), st.data())
@UPDATE_PROPERTY
def test_aave_update_users_matches_a_fresh_build(
    book: tuple[PoolState, int, list[UserState]], data: st.DataObject
) -> None:
    pool, timestamp, users = book
    screen = AaveScreen()
    screen.set_users(users)
    changed = [
        data.draw(aave_users(pool, timestamp, u.user))
        for u in users
        if data.draw(st.booleans(), label="touch")
    ]
    changed.append(data.draw(aave_users(pool, timestamp, "newcomer")))
    screen.update_users(changed)
    final = list({u.user: u for u in [*users, *changed]}.values())
    fresh = AaveScreen()
    fresh.set_users(final)
    updated = dict(zip(screen.users, screen.estimates(pool, timestamp).tolist(), strict=True))
    rebuilt = dict(zip(fresh.users, fresh.estimates(pool, timestamp).tolist(), strict=True))
    assert updated.keys() == rebuilt.keys()
    for name, value in rebuilt.items():
        assert updated[name] == pytest.approx(value, rel=1e-12, abs=1e-300)
    assert set(screen.candidates(pool, timestamp)) == set(fresh.candidates(pool, timestamp))
    assert_screen_is_safe(
        updated, set(screen.candidates(pool, timestamp, 0.0)), exact_aave(pool, timestamp, final)
    )


def devnet_pool(emode_source: str = ZERO_ADDRESS) -> PoolState:
    reserves = {
        0: aave_reserve(0, 18, 8_250),
        1: aave_reserve(1, 6, 8_000, emode_category=1),
        2: aave_reserve(2, 18, 7_700, emode_category=1),
    }
    prices = {asset(0): 2_000 * 10**8, asset(1): 10**8, asset(2): 10**8, PRICE_SOURCE: 9 * 10**7}
    categories = {1: EModeCategory(1, 9_300, 9_500, 10_100, emode_source)}
    return PoolState("0xpool", "0xoracle", reserves, categories, prices)


def legs(collateral: tuple[int, int], debt: tuple[int, int]) -> dict[int, tuple[bool, bool, UserReserve]]:
    """One collateral and one debt leg: (reserve id, scaled balance) each."""
    return {
        collateral[0]: (True, False, UserReserve(collateral[1])),
        debt[0]: (False, True, UserReserve(0, debt[1])),
    }


WETH, USDC, DAI = 0, 1, 2


@pytest.mark.parametrize(
    ("name", "emode", "legs", "expected_hf", "candidate"),
    [
        # 1 WETH (2,000 USD at 82.5 %) against 825 USDC: HF exactly 2
        ("healthy", 0, legs((WETH, 10**18), (USDC, 825 * 10**6)), 2 * WAD, False),
        ("underwater", 0, legs((WETH, 10**18), (USDC, 3_300 * 10**6)), WAD // 2, True),
        # 1,650 USDC is exactly HF 1: not liquidatable, but inside the margin
        ("at-one", 0, legs((WETH, 10**18), (USDC, 1_650 * 10**6)), WAD, True),
        ("micro-usdc-over", 0, legs((WETH, 10**18), (USDC, 1_650 * 10**6 + 1)), WAD - 606_060_606, True),
        # DAI and USDC in the stablecoin eMode: 95 % instead of 77 %
        ("emode", 1, legs((DAI, 1_000 * 10**18), (USDC, 900 * 10**6)), 1_055_555_555_555_555_556, False),
        ("no-emode", 0, legs((DAI, 1_000 * 10**18), (USDC, 900 * 10**6)), 855_555_555_555_555_556, True),
    ],
)
def test_aave_table(
    name: str, emode: int, legs: dict[int, tuple[bool, bool, UserReserve]], expected_hf: int, candidate: bool
) -> None:
    pool, user = devnet_pool(), aave_user(name, emode, legs)
    assert exact_aave(pool, T0, [user])[name] == expected_hf
    screen = AaveScreen()
    screen.set_users([user])
    assert (name in screen.candidates(pool, T0)) is candidate
    assert screen.estimates(pool, T0)[0] == pytest.approx(expected_hf / WAD, rel=1e-6)


@pytest.mark.parametrize(
    ("name", "legs", "expected_hf", "candidate"),
    [
        # 1,000 DAI at the category's 0.90 USD (95 %: 855) against 0.45 WETH at its own 2,000 USD
        ("collateral", legs((DAI, 1_000 * 10**18), (WETH, 45 * 10**16)), 95 * 10**16, True),
        # 0.5 WETH (82.5 %: 825) against 900 USDC at the category's 0.90 USD: 810
        ("debt", legs((WETH, 5 * 10**17), (USDC, 900 * 10**6)), 1_018_518_518_518_518_519, False),
    ],
)
def test_aave_emode_price_source_prices_in_category_assets(
    name: str, legs: dict[int, tuple[bool, bool, UserReserve]], expected_hf: int, candidate: bool
) -> None:
    user, pool = aave_user(name, 1, legs), devnet_pool(PRICE_SOURCE)
    assert exact_aave(pool, T0, [user])[name] == expected_hf
    screen = AaveScreen()
    screen.set_users([user])
    assert (name in screen.candidates(pool, T0)) is candidate
    assert screen.estimates(pool, T0)[0] == pytest.approx(expected_hf / WAD, rel=1e-6)


def test_aave_update_grows_reserves_and_categories() -> None:
    pool = devnet_pool()
    screen = AaveScreen()
    screen.set_users([aave_user("a", 0, {0: (True, False, UserReserve(10**18))})])
    assert screen.candidates(pool, T0) == []
    late = aave_user("b", 1, legs((DAI, 1_000 * 10**18), (USDC, 900 * 10**6)))  # healthy in eMode only
    screen.update_users([late, aave_user("a", 0, {1: (False, True, UserReserve(0, 1))})])
    assert screen.users == ["a", "b"]
    assert screen.candidates(pool, T0) == ["a"]
    assert screen.estimates(pool, T0)[1] == pytest.approx(950 / 900, rel=1e-6)


def test_negative_margin_is_refused() -> None:
    screen = AaveScreen()
    screen.set_users([])
    with pytest.raises(ValueError, match="negative"):
        screen.candidates(devnet_pool(), T0, margin=-1e-9)


# ---------------------------------------------------------------------------------------- Morpho

LLTVS = [385, 625, 770, 860, 915, 945, 965, 980]


@st.composite
def morpho_markets(draw: st.DrawFn, market_id: str) -> MarketState:
    borrowed = draw(st.one_of(st.just(0), st.integers(1, 10**30)))
    market = Market(
        total_supply_assets=borrowed + draw(st.integers(0, 10**30)),
        total_supply_shares=draw(st.integers(0, 10**36)),
        total_borrow_assets=borrowed,
        total_borrow_shares=draw(
            st.one_of(  # shares start at 1e6 per asset; interest makes each worth more
                st.integers(500_000, 1_000_000).map(lambda ratio: borrowed * ratio),
                st.integers(0, 10**36),
            )
        ),
        last_update=T0 - draw(st.integers(0, 10_000)),
        fee=draw(st.sampled_from([0, 10**17, 25 * 10**16])),
    )
    lltv = draw(st.one_of(st.sampled_from(LLTVS).map(lambda x: x * 10**15), st.integers(0, WAD - 1)))
    irm = draw(st.sampled_from([ZERO_ADDRESS, "0x" + "11" * 20]))
    params = MarketParams(market_id, "0xloan", "0xcollateral", "0xoracle", irm, lltv)
    price = draw(st.integers(1, 10**10)) * 10 ** draw(st.integers(14, 36))
    return MarketState(params, market, price, draw(st.integers(0, 10**11)))


def morpho_boundaries(state: MarketState, timestamp: int, position: Position) -> list[Position]:
    market = market_at(state, timestamp)

    def unhealthy(candidate: Position) -> bool:
        return health_factor(candidate, market, state.price, state.params.lltv) < WAD

    out = []
    for field in ("borrow_shares", "collateral"):
        flips = boundary(lambda x: unhealthy(replace(position, **{field: x})), 0, 1, 2**100)  # noqa: B023
        if flips is not None:
            out += [replace(position, **{field: x}) for x in flips]
    return out


@st.composite
def morpho_books(draw: st.DrawFn) -> tuple[dict[str, MarketState], int, dict[tuple[str, str], Position]]:
    markets = {f"0xm{i}": draw(morpho_markets(f"0xm{i}")) for i in range(draw(st.integers(1, 3)))}
    timestamp = T0 + draw(ELAPSED_S)
    positions = {}
    for i in range(6):
        market_id = draw(st.sampled_from([*markets, "0xgone"]))
        amount = st.one_of(st.just(0), st.integers(1, 1_000), log_uniform(0, 30))
        # the last two always hold collateral, so their debt boundary lies near HF 1
        position = Position(0, draw(amount), draw(amount if i < 4 else log_uniform(3, 30)))
        positions[(market_id, f"u{i}")] = position
        if market_id in markets:
            for j, moved in enumerate(morpho_boundaries(markets[market_id], timestamp, position)):
                positions[(market_id, f"u{i}-b{j}")] = moved
    return markets, timestamp, positions


def exact_morpho(
    markets: dict[str, MarketState], timestamp: int, positions: dict[tuple[str, str], Position]
) -> dict[tuple[str, str], int]:
    out = {}
    for (market_id, user), position in positions.items():
        state = markets.get(market_id)
        if state is None:
            out[(market_id, user)] = UINT256_MAX
            continue
        market = market_at(state, timestamp)
        out[(market_id, user)] = health_factor(position, market, state.price, state.params.lltv)
    return out


@given(morpho_books())
@PROPERTY
def test_morpho_screen_never_misses_an_unhealthy_position(
    book: tuple[dict[str, MarketState], int, dict[tuple[str, str], Position]],
) -> None:
    markets, timestamp, positions = book
    screen = MorphoScreen()
    screen.set_positions(positions)
    estimates = dict(zip(screen.keys, screen.estimates(markets, timestamp).tolist(), strict=True))
    exact = exact_morpho(markets, timestamp, positions)
    candidates = set(screen.candidates(markets, timestamp, margin=0.0))
    for key, hf in exact.items():
        if hf < WAD:
            assert key in candidates, (key, hf, estimates[key])
        if hf != UINT256_MAX:
            assert estimates[key] <= hf / WAD * (1 + 1e-15) + 1e-15, (key, hf, estimates[key])


@given(morpho_books(), st.data())
@UPDATE_PROPERTY
def test_morpho_update_positions_matches_a_fresh_build(
    book: tuple[dict[str, MarketState], int, dict[tuple[str, str], Position]], data: st.DataObject
) -> None:
    markets, timestamp, positions = book
    screen = MorphoScreen()
    screen.set_positions(positions)
    amount = st.integers(0, 10**30)
    changed = {
        key: Position(0, data.draw(amount), data.draw(amount))
        for key in positions
        if data.draw(st.booleans(), label="touch")
    }
    changed[(next(iter(markets)), "newcomer")] = Position(0, data.draw(amount), data.draw(amount))
    screen.update_positions(changed)
    fresh = MorphoScreen()
    fresh.set_positions({**positions, **changed})
    updated = dict(zip(screen.keys, screen.estimates(markets, timestamp).tolist(), strict=True))
    rebuilt = dict(zip(fresh.keys, fresh.estimates(markets, timestamp).tolist(), strict=True))
    assert updated == rebuilt
    assert set(screen.candidates(markets, timestamp)) == set(fresh.candidates(markets, timestamp))


def devnet_market(lltv: int = 860 * 10**15) -> MarketState:
    """USDC loan (6 decimals) against WETH collateral (18) at 2,000 USD, no interest since T0."""
    params = MarketParams("0xm", "0xusdc", "0xweth", "0xoracle", ZERO_ADDRESS, lltv)
    market = Market(10**12, 10**18, 10**12, 10**18, T0, 0)
    return MarketState(params, market, 2_000 * 10**36 * 10**6 // 10**18, 0)


@pytest.mark.parametrize(
    ("collateral", "borrow_shares", "expected_hf", "candidate"),
    [
        (10**18, 860 * 10**12, 2 * WAD, False),  # 1 WETH, 860 USDC of 1,720 max: HF 2
        (10**18, 3_440 * 10**12, WAD // 2, True),
        (10**18, 1_720 * 10**12, WAD, True),  # exactly at the limit: healthy, inside the margin
        (10**18, 1_720 * 10**12 + 10**6, WAD - 581_395_349, True),  # one micro-USDC over
        (0, 1, 0, True),  # dust debt, no collateral
        (10**18, 0, UINT256_MAX, False),
    ],
)
def test_morpho_table(collateral: int, borrow_shares: int, expected_hf: int, candidate: bool) -> None:
    state = devnet_market()
    position = Position(0, borrow_shares, collateral)
    assert health_factor(position, market_at(state, T0), state.price, state.params.lltv) == expected_hf
    screen = MorphoScreen()
    screen.set_positions({("0xm", "u"): position})
    assert (("0xm", "u") in screen.candidates({"0xm": state}, T0)) is candidate
    if borrow_shares and collateral:
        assert screen.estimates({"0xm": state}, T0)[0] == pytest.approx(expected_hf / WAD, rel=1e-6)


def test_morpho_position_without_market_state_is_skipped() -> None:
    screen = MorphoScreen()
    screen.set_positions({("0xgone", "u"): Position(0, 10**18, 0)})
    assert screen.candidates({}, T0) == []
    assert np.isinf(screen.estimates({}, T0)[0])


# ------------------------------------------------------------------------------------------ purity


@pytest.mark.parametrize("module", [screening, aave_screen, morpho_screen], ids=lambda m: m.__name__)
def test_screen_imports_no_io_and_reads_no_clock(module: ModuleType) -> None:
    """Transitively no network, database or event loop; directly no clock or randomness."""
    probe = f"import json, sys, {module.__name__}; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = {name.split(".")[0] for name in json.loads(result.stdout)}
    assert not loaded & {"aiohttp", "asyncio", "web3", "sqlite3", "requests"}
    assert not {n for n in json.loads(result.stdout) if n.startswith(("keeper.chain", "keeper.devnet"))}
    source = ast.parse(Path(str(module.__file__)).read_text())
    imported = {
        alias.name for node in ast.walk(source) if isinstance(node, ast.Import) for alias in node.names
    }
    imported |= {node.module or "" for node in ast.walk(source) if isinstance(node, ast.ImportFrom)}
    assert not {name.split(".")[0] for name in imported} & {"time", "datetime", "random", "os"}


def test_margin_is_headroom_above_the_proven_bounds() -> None:
    """HF 1 + 3e-7: outside the bounds at margin 0, inside the default margin of 1e-6."""
    user = aave_user("u", 0, legs((WETH, 10**18), (USDC, 1_649_999_500)))
    pool = devnet_pool()
    assert exact_aave(pool, T0, [user])["u"] == 1_000_000_303_030_394_858
    screen = AaveScreen()
    screen.set_users([user])
    assert screen.candidates(pool, T0, margin=0.0) == []
    assert screen.candidates(pool, T0) == ["u"]
    assert DEFAULT_MARGIN == 1e-6
