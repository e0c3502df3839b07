"""Aave v3.6 liquidation rules (`keeper.protocols.aave_v3.v3_6.liquidation`) on numbers checkable by hand.

Reserves hold 6-decimal tokens priced at 1 USD (1e8 base) with indexes at 1, bonus 105 % and a
10 % protocol fee unless a case says otherwise, so ``USDC(x)`` is x dollars. Each case pins one rule
of ``executeLiquidationCall`` (``aave-v3.6-notes.md`` §1.5); the contract itself is the judge in
tests/integration/test_liquidation_outcomes.py.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import structlog.testing

from keeper.math.uint import UINT256_MAX, mul_div_ceil
from keeper.math.wad_ray import RAY, WAD
from keeper.protocols.aave_v3.adapter import AaveV3Adapter
from keeper.protocols.aave_v3.reader import PoolAddresses
from keeper.protocols.aave_v3.state import ZERO_ADDRESS, EModeCategory, PoolState, UserReserve, UserState
from keeper.protocols.aave_v3.v3_6.liquidation import (
    DUST_MARGIN_BPS,
    MIN_LEFTOVER_BASE,
    Deficit,
    Outcome,
    dust_free_debt_to_cover,
    liquidation_outcome,
    prepare,
    settle,
)
from keeper.protocols.aave_v3.v3_6.math import reserves_at
from keeper.protocols.aave_v3.version import DetectedVersion, Probes
from keeper.protocols.base import NotLiquidatable, PositionKey
from tests.unit.test_screen import T0, aave_reserve, aave_user, asset

USD = 10**8
POOL = "0x" + "cd" * 20


def usdc(dollars: float) -> int:
    return round(dollars * 10**6)


def pool_of(*thresholds: int, category: EModeCategory | None = None, **reserve: int) -> PoolState:
    reserves = {
        i: replace(
            aave_reserve(i, 6, lt, indexes=(RAY, RAY)), **({"virtual_underlying_balance": 10**15} | reserve)
        )
        for i, lt in enumerate(thresholds)
    }
    return PoolState(
        POOL,
        "0xoracle",
        reserves,
        {category.id: category} if category else {},
        {asset(i): USD for i in reserves},
    )


def user_of(collateral: dict[int, float], debt: dict[int, float], emode: int = 0) -> UserState:
    legs: dict[int, tuple[bool, bool, UserReserve]] = {}
    for i in sorted(set(collateral) | set(debt)):
        legs[i] = (
            i in collateral,
            i in debt,
            UserReserve(usdc(collateral.get(i, 0)), usdc(debt.get(i, 0))),
        )
    return aave_user("0x" + "ab" * 20, emode, legs)


def outcome(
    pool: PoolState, user: UserState, coll: int, debt: int, debt_to_cover: int = UINT256_MAX
) -> Outcome:
    return liquidation_outcome(pool, reserves_at(pool, T0), user, asset(coll), asset(debt), debt_to_cover, T0)


def test_small_positions_are_liquidated_in_full_above_095() -> None:
    # $1,500 at LT 80 % against $1,250: HF 0.96, both sides under $2,000 -> 100 % (3.0.x: 50 %)
    pool, user = pool_of(8_000, 8_000), user_of({0: 1_500}, {1: 1_250})
    result = outcome(pool, user, 0, 1)
    assert result.health_factor == 96 * WAD // 100
    bonus_fee = usdc(1_312.5 - 1_250) // 10  # a tenth of the bonus goes to the treasury
    assert (result.debt_repaid, result.protocol_fee) == (usdc(1_250), bonus_fee)
    assert result.collateral_seized == usdc(1_312.5) - bonus_fee
    assert result.debt_flag_cleared and not result.collateral_flag_cleared and not result.deficits


def test_large_positions_above_095_are_half_of_the_whole_debt() -> None:
    # $3,000 against $2,450: HF 0.9796, both sides >= $2,000 -> half of the position's debt
    pool, user = pool_of(8_000, 8_000), user_of({0: 3_000}, {1: 2_450})
    assert outcome(pool, user, 0, 1).debt_repaid == usdc(1_225)
    # at HF <= 0.95 the same size is liquidated in full
    deep = user_of({0: 3_000}, {1: 2_600})
    assert outcome(pool, deep, 0, 1).debt_repaid == usdc(2_600)


def test_half_is_of_the_position_not_of_the_reserve() -> None:
    # $4,000 at LT 80 % against $2,100 + $1,200: half of $3,300 = $1,650 of the $2,100 reserve
    pool, user = pool_of(8_000, 8_000, 8_000), user_of({0: 4_000}, {1: 2_100, 2: 1_200})
    setup = prepare(pool, reserves_at(pool, T0), user, asset(0), asset(1), T0)
    assert setup.max_debt == usdc(1_650)
    # ... which would leave $450 of it: dust
    with pytest.raises(NotLiquidatable, match=r"MustNotLeaveDust\(\)"):
        settle(setup, UINT256_MAX)
    # the $1,200 reserve is under half ($1,650): no cap, all of it, nothing left
    assert outcome(pool, user, 0, 2).debt_repaid == usdc(1_200)


def test_dust_free_amount_leaves_the_minimum_plus_margin_of_debt() -> None:
    pool, user = pool_of(8_000, 8_000, 8_000), user_of({0: 4_000}, {1: 2_100, 2: 1_200})
    setup = prepare(pool, reserves_at(pool, T0), user, asset(0), asset(1), T0)
    amount, result = dust_free_debt_to_cover(setup)
    leftover = MIN_LEFTOVER_BASE * (10_000 + DUST_MARGIN_BPS) // 10_000  # $1,010
    assert amount == usdc(2_100) - leftover // 100 == result.debt_repaid
    settle(setup, amount + 1)  # the pool itself still takes one unit more ...
    with pytest.raises(NotLiquidatable, match="Dust"):
        settle(setup, amount + 1, dust_margin_bps=DUST_MARGIN_BPS)  # ... but not past the margin


def test_dust_free_amount_leaves_the_minimum_plus_margin_of_collateral() -> None:
    # $2,500 + $3,000 at LT 80 % against $4,500: half ($2,250) would seize $2,362.5 of the $2,500
    pool, user = pool_of(8_000, 8_000, 8_000), user_of({0: 2_500, 1: 3_000}, {2: 4_500})
    setup = prepare(pool, reserves_at(pool, T0), user, asset(0), asset(2), T0)
    with pytest.raises(NotLiquidatable, match="Dust"):
        settle(setup, UINT256_MAX)
    amount, result = dust_free_debt_to_cover(setup)
    left = usdc(2_500) - result.collateral_seized - result.protocol_fee
    assert left * USD // 10**6 >= MIN_LEFTOVER_BASE * (10_000 + DUST_MARGIN_BPS) // 10_000
    with pytest.raises(NotLiquidatable, match="Dust"):
        settle(setup, amount + 1, dust_margin_bps=DUST_MARGIN_BPS)
    assert amount < setup.max_debt


def test_no_collateral_left_burns_every_debt_into_deficits() -> None:
    # $1,000 against $1,100 + $200: seizing everything repays $952.38; the rest of both is deficit
    pool, user = pool_of(8_000, 8_000, 8_000), user_of({0: 1_000}, {1: 1_100, 2: 200})
    result = outcome(pool, user, 0, 1)
    repaid = mul_div_ceil(usdc(1_000), 10_000, 10_500)  # percentDivCeil(collateral, bonus)
    assert result.debt_repaid == repaid
    assert result.collateral_seized + result.protocol_fee == usdc(1_000) and result.collateral_flag_cleared
    assert result.deficits == (Deficit(asset(1), usdc(1_100) - repaid), Deficit(asset(2), usdc(200)))
    # with collateral left elsewhere there is no deficit
    rich = user_of({0: 1_000, 1: 5}, {1: 1_100, 2: 200})
    assert outcome(pool, rich, 0, 1).deficits == ()


def test_grace_period_is_strict_and_pausing_refuses() -> None:
    user = user_of({0: 1_500}, {1: 1_250})
    in_grace = pool_of(8_000, 8_000, liquidation_grace_period_until=T0)
    with pytest.raises(NotLiquidatable, match=r"LiquidationGraceSentinelCheckFailed\(\)"):
        outcome(in_grace, user, 0, 1)
    after = liquidation_outcome(
        in_grace, reserves_at(in_grace, T0 + 1), user, asset(0), asset(1), UINT256_MAX, T0 + 1
    )
    assert after.debt_repaid > 0
    paused = replace(
        in_grace,
        reserves={i: replace(r, config=replace(r.config, paused=True)) for i, r in in_grace.reserves.items()},
    )
    with pytest.raises(NotLiquidatable, match=r"ReservePaused\(\)"):
        outcome(paused, user, 0, 1)


def test_collateral_with_lt_zero_is_liquidatable_and_never_preferred() -> None:
    # reserve 0: LT 0 and bonus 0 (what the configurator requires), counted with weight 0
    base = pool_of(0, 8_000, 8_000)
    zero = base.reserves[0]
    pool = replace(
        base,
        reserves={
            **base.reserves,
            0: replace(zero, config=replace(zero.config, liquidation_bonus=0, liquidation_protocol_fee=0)),
        },
    )
    user = user_of({0: 500, 1: 1_500}, {2: 1_250})
    # 3.0.x: CollateralCannotBeLiquidated; 3.6 takes the whole debt for no collateral at all, which
    # only works as aTokens: burning zero aTokens for the underlying reverts
    at = reserves_at(pool, T0)
    thin = liquidation_outcome(pool, at, user, asset(0), asset(2), UINT256_MAX, T0, receive_a_token=True)
    assert thin.collateral_seized == 0 and thin.debt_repaid == usdc(1_250)
    with pytest.raises(NotLiquidatable, match=r"InvalidBurnAmount\(\)"):
        outcome(pool, user, 0, 2)
    adapter = _adapter(pool, user)
    quote = adapter.quote(PositionKey(POOL, user.user), T0)
    assert quote is not None and quote.collateral_asset == asset(1)


def test_emode_bonus_applies_to_collateral_in_its_bitmap() -> None:
    category = EModeCategory(
        1, 9_000, 9_500, 10_100, ZERO_ADDRESS, collateral_bitmap=0b01, borrowable_bitmap=0b10
    )
    pool = pool_of(8_000, 8_000, category=category)
    user = user_of({0: 1_300}, {1: 1_250}, emode=1)  # HF 0.988 in eMode
    result = outcome(pool, user, 0, 1)
    assert result.collateral_seized + result.protocol_fee == usdc(1_262.5)  # 101 %


def test_underlying_comes_from_the_virtual_balance() -> None:
    pool = pool_of(8_000, 8_000, virtual_underlying_balance=usdc(1_000))
    user = user_of({0: 1_500}, {1: 1_250})
    with pytest.raises(NotLiquidatable, match="Panic"):
        outcome(pool, user, 0, 1)
    assert liquidation_outcome(
        pool, reserves_at(pool, T0), user, asset(0), asset(1), UINT256_MAX, T0, receive_a_token=True
    ).debt_repaid == usdc(1_250)
    quote = _adapter(pool, user).quote(PositionKey(POOL, user.user), T0)
    assert quote is not None and quote.receive_a_token


def test_quote_passes_the_dust_free_amount_and_prefers_the_best_pair() -> None:
    pool, user = pool_of(8_000, 8_000, 8_000), user_of({0: 2_500, 1: 3_000}, {2: 4_500})
    adapter = _adapter(pool, user)
    quote = adapter.quote(PositionKey(POOL, user.user), T0)
    assert quote is not None and quote.debt_to_cover is not None
    setup = prepare(pool, reserves_at(pool, T0), user, quote.collateral_asset, asset(2), T0)
    assert quote.debt_to_cover == dust_free_debt_to_cover(setup)[0]
    # the $3,000 collateral leaves more room than the $2,500 one
    assert quote.collateral_asset == asset(1)
    _, data = adapter.liquidation_call(quote)
    assert int.from_bytes(data[4 + 3 * 32 : 4 + 4 * 32], "big") == quote.debt_to_cover
    # a pair the pool caps by itself passes uint256 max
    small = _adapter(pool_of(8_000, 8_000), user_of({0: 1_500}, {1: 1_250}))
    plain = small.quote(PositionKey(POOL, small.users[user.user].user), T0)
    assert plain is not None and plain.debt_to_cover is None
    assert int.from_bytes(small.liquidation_call(plain)[1][4 + 3 * 32 : 4 + 4 * 32], "big") == UINT256_MAX


def _adapter(pool: PoolState, user: UserState) -> AaveV3Adapter:
    adapter = AaveV3Adapter("aave", "0xprovider")
    adapter.version = DetectedVersion.of(10, Probes(True, True, True, True, True))
    adapter.pool_state = pool
    adapter.users = {user.user: user}
    adapter._addresses = PoolAddresses("0xprovider", POOL, "0xoracle")
    return adapter


def test_a_refused_pair_is_logged_once_per_reason() -> None:
    pool = pool_of(8_000, 8_000, liquidation_grace_period_until=T0 + 100)
    user = user_of({0: 1_500}, {1: 1_250})
    adapter = _adapter(pool, user)
    with structlog.testing.capture_logs() as logs:
        for _ in range(3):
            assert adapter.quote(PositionKey(POOL, user.user), T0) is None
    refusals = [e for e in logs if e["event"] == "aave_pair_refused"]
    assert [e["reason"] for e in refusals] == ["LiquidationGraceSentinelCheckFailed()"]
