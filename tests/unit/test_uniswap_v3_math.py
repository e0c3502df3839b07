"""Pure checks of the local Uniswap V3 maths; `tests/integration/test_uniswap_v3_math.py` compares
whole swaps with QuoterV2 on the devnet's pools."""

from __future__ import annotations

import pytest

from keeper.math.uniswap_v3 import (
    MAX_SQRT_RATIO,
    MAX_TICK,
    MIN_SQRT_RATIO,
    MIN_TICK,
    PoolState,
    exact_input,
    sqrt_ratio_at_tick,
)


@pytest.mark.parametrize(
    ("tick", "expected"),
    [(MIN_TICK, MIN_SQRT_RATIO), (MAX_TICK, MAX_SQRT_RATIO), (0, 2**96), (1, 79232123823359799118286999568)],
)
def test_sqrt_ratio_at_tick_matches_tickmath_bounds(tick: int, expected: int) -> None:
    """TickMath's published bounds use every factor: a wrong constant moves them."""
    assert sqrt_ratio_at_tick(tick) == expected


def test_a_tick_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="out of range"):
        sqrt_ratio_at_tick(MAX_TICK + 1)


def pool(liquidity: int, nets: dict[int, int], words: tuple[int, int] = (-2, 2)) -> PoolState:
    return PoolState(2**96, 0, liquidity, 3000, 60, nets, words)


def test_a_swap_leaving_the_known_words_has_no_local_answer() -> None:
    # one range [-60, 60]: selling beyond it walks into words the state does not know
    state = pool(10**18, {-60: 10**18, 60: -(10**18)}, words=(-1, 0))
    assert exact_input(state, True, 10**15) is not None
    assert exact_input(state, True, 10**30) is None


def test_an_empty_pool_pays_nothing_and_a_zero_sale_is_no_sale() -> None:
    assert exact_input(pool(10**18, {}), False, 0) is None
    assert (
        exact_input(pool(0, {}, words=(-3465, 3465)), True, 10**18) is None
    )  # no liquidity down to the limit


def test_crossing_a_tick_uses_its_liquidity_net() -> None:
    """Selling token0 from the middle of [-60, 60] and across -60, where a second range [-600, -60]
    takes over with 9x the liquidity: past the tick the deep pool still pays; the thin one runs dry
    and walks out of the words it knows."""
    thin = pool(10**18, {-60: 10**18, 60: -(10**18)}, words=(-1, 0))
    deep = pool(10**18, {-600: 9 * 10**18, -60: 10**18 - 9 * 10**18, 60: -(10**18)}, words=(-1, 0))
    within = exact_input(thin, True, 10**15)
    assert within is not None and within == exact_input(deep, True, 10**15)  # before -60: the same pool
    assert exact_input(thin, True, 10**16) is None
    crossed = exact_input(deep, True, 10**16)
    assert crossed is not None and crossed > within
