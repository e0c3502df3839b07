"""The devnet's Uniswap layout is pure: pool prices from feed answers, ranges, depth (no chain)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keeper.devnet.seed import AAVE_PROFILES
from keeper.devnet.spec import MORPHO_MARKETS, UNISWAP_POOLS, UniswapPoolSpec, asset
from keeper.devnet.uniswap import pool_layout, sell_to_move
from keeper.devnet.uniswap_math import (
    MAX_SQRT_RATIO,
    MIN_SQRT_RATIO,
    TICK_SPACINGS,
    Position,
    full_range,
    price_of,
    range_ticks,
    sqrt_price_x96,
    swap_to,
)

ANSWERS = st.integers(min_value=1, max_value=10**15)
DECIMALS = st.sampled_from([6, 8, 18])


@given(ANSWERS, DECIMALS, ANSWERS, DECIMALS)
def test_the_pool_price_is_the_feed_ratio_rounded_down_to_the_last_q96_unit(
    answer0: int, decimals0: int, answer1: int, decimals1: int
) -> None:
    sqrt_x96 = sqrt_price_x96(answer0, decimals0, answer1, decimals1)
    assert MIN_SQRT_RATIO < sqrt_x96 < MAX_SQRT_RATIO
    ratio_x192 = answer0 * 10**decimals1 * 2**192 // (answer1 * 10**decimals0)
    if MIN_SQRT_RATIO < math.isqrt(ratio_x192) < MAX_SQRT_RATIO - 1:
        assert sqrt_x96**2 <= ratio_x192 < (sqrt_x96 + 1) ** 2


def test_weth_at_2000_usdc_in_raw_units() -> None:
    weth, usdc = asset("WETH"), asset("USDC")
    sqrt_x96 = sqrt_price_x96(weth.price_usd_8, 18, usdc.price_usd_8, 6)
    assert price_of(sqrt_x96) == pytest.approx(2000 * 10**6 / 10**18, rel=1e-12)
    inverse = sqrt_price_x96(usdc.price_usd_8, 6, weth.price_usd_8, 18)
    assert price_of(inverse) == pytest.approx(10**18 / (2000 * 10**6), rel=1e-12)


@pytest.mark.parametrize("fee", sorted(TICK_SPACINGS))
def test_ranges_sit_on_the_spacing_and_contain_the_price(fee: int) -> None:
    spacing = TICK_SPACINGS[fee]
    low, high = full_range(spacing)
    assert low % spacing == high % spacing == 0 and low == -high and high <= 887272 < high + spacing
    for price in (2e-9, 1.0, 5e8):
        for half_width_bps in (20, 300, 4000):
            lower, upper = range_ticks(price, half_width_bps, spacing)
            assert lower % spacing == upper % spacing == 0
            assert 1.0001**lower <= price / (1 + half_width_bps / 10_000) * 1.0001
            assert 1.0001**upper >= price * (1 + half_width_bps / 10_000) / 1.0001


def test_a_swap_within_one_range_matches_the_constant_product_closed_form() -> None:
    """Inside one range liquidity L behaves as x * y = L**2 on virtual reserves."""
    liquidity, sqrt_p = 10**20, 1.5
    pos = Position(0.5, 3.0, float(liquidity))
    amount_in, amount_out = swap_to([pos], sqrt_p, 0.81, fee=0)  # price -19 %, sqrt -10 %
    x, y = liquidity / sqrt_p, liquidity * sqrt_p
    assert (x + amount_in) * (y - amount_out) == pytest.approx(liquidity**2, rel=1e-12)
    assert amount_out / amount_in == pytest.approx(sqrt_p * sqrt_p * 0.9, rel=1e-12)
    gross, _ = swap_to([pos], sqrt_p, 0.81, fee=3000)
    assert gross == pytest.approx(amount_in / 0.997, rel=1e-12)


def test_every_pair_a_borrower_can_hold_has_a_pool() -> None:
    pairs = {frozenset((c, d)) for _, cs, ds, _ in AAVE_PROFILES for c in cs for d in ds if c != d}
    pairs |= {frozenset((m.loan, m.collateral)) for m in MORPHO_MARKETS}
    pairs |= {frozenset(("WBTC", "DAI"))}  # the v3.6 dust cases' collateral and debt
    pools = [frozenset((p.a, p.b)) for p in UNISWAP_POOLS]
    assert set(pools) == pairs and len(pools) == len(set(pools))
    assert all(p.fee in TICK_SPACINGS for p in UNISWAP_POOLS)


@pytest.mark.parametrize("spec", UNISWAP_POOLS, ids=lambda s: f"{s.a}-{s.b}")
def test_the_largest_liquidation_pays_real_slippage_but_finds_a_market(spec: UniswapPoolSpec) -> None:
    """A liquidation sells up to ~$1M of collateral (half the largest ~$2M position): in a volatile
    pair that moves the pool 0.3-1 %, never 5 %, and a crash block's several $M of sales together
    a few %; the stable pair is deep near the peg."""
    for symbol0, symbol1 in ((spec.a, spec.b), (spec.b, spec.a)):  # whichever sorts first
        layout = pool_layout(spec, symbol0, symbol1)
        for sell in (spec.a, spec.b):
            usd_per_unit = asset(sell).price_usd_8 / 10**8 / 10 ** asset(sell).decimals
            one_pct, five_pct = (sell_to_move(spec, layout, sell, p)[0] * usd_per_unit for p in (1, 5))
            assert five_pct > 1.5e6
            if spec.fee == 100:
                assert one_pct > 4e6
            else:
                assert 0.7e6 < one_pct < 3.5e6
