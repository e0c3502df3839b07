"""Uniswap V3 price and liquidity arithmetic for laying out the devnet's pools (pure).

Two kinds of numbers live here. Pool prices (`sqrt_price_x96`) are exact integers: they are what
the pools are initialised at and what the arbitrageur swaps to, so a pool's price equals the feeds'
ratio to the last unit of Q64.96. Liquidity layout (ticks of each range, the amounts that fund it,
the depth it gives) uses floats: it sizes seed positions and a report, and decides nothing the
keeper acts on; the position manager turns the amounts into liquidity with the pool's own maths.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Q96 = 2**96
MIN_TICK = -887272
MAX_TICK = 887272
MIN_SQRT_RATIO = 4295128739
MAX_SQRT_RATIO = 1461446703485210103287273052203988822378723970342
"""TickMath's bounds: a pool's price, and a swap's price limit, stay strictly inside them."""
FEE_PIPS = 10**6
TICK_SPACINGS = {100: 1, 500: 10, 3000: 60, 10000: 200}
"""The factory's enabled fee tiers (hundredths of a bip) and their tick spacings."""
LOG_TICK = math.log(1.0001)


def sqrt_price_x96(answer0: int, decimals0: int, answer1: int, decimals1: int) -> int:
    """The pool price (token1 units per token0 unit, both raw) that two USD feed answers of the
    same decimals imply, as Uniswap's Q64.96 square root, rounded down and kept inside TickMath's
    bounds so that a pool can be initialised at it or swapped to it."""
    if answer0 <= 0 or answer1 <= 0:
        raise ValueError("feed answers must be positive")
    ratio_x192 = answer0 * 10**decimals1 * 2**192 // (answer1 * 10**decimals0)
    return min(max(math.isqrt(ratio_x192), MIN_SQRT_RATIO + 1), MAX_SQRT_RATIO - 1)


def price_of(sqrt_x96: int) -> float:
    """Token1 raw units per token0 raw unit."""
    return (sqrt_x96 / Q96) ** 2


def tick_of(price: float) -> int:
    """The tick whose price is at or just below ``price`` (float: for laying out ranges)."""
    return math.floor(math.log(price) / LOG_TICK)


def sqrt_at_tick(tick: int) -> float:
    return math.exp(tick * LOG_TICK / 2)


def full_range(spacing: int) -> tuple[int, int]:
    return -(MAX_TICK // spacing) * spacing, (MAX_TICK // spacing) * spacing


def range_ticks(price: float, half_width_bps: int | None, spacing: int) -> tuple[int, int]:
    """Ticks of a range from ``price / (1 + w)`` to ``price * (1 + w)`` widened outward to the
    spacing (symmetric in log price, so the same whichever token sorts first); None: full range."""
    if half_width_bps is None:
        return full_range(spacing)
    widen = 1 + half_width_bps / 10_000
    lower = math.floor(tick_of(price / widen) / spacing) * spacing
    upper = math.ceil(tick_of(price * widen) / spacing) * spacing
    low, high = full_range(spacing)
    return max(lower, low), min(upper, high)


@dataclass(frozen=True)
class Position:
    """A liquidity range as the pool sees it: sqrt prices (not Q96-scaled) and liquidity."""

    sqrt_lower: float
    sqrt_upper: float
    liquidity: float


def amounts_for(liquidity: float, sqrt_p: float, sqrt_lower: float, sqrt_upper: float) -> tuple[float, float]:
    """Token0 and token1 (raw) that ``liquidity`` over the range holds at ``sqrt_p``."""
    s = min(max(sqrt_p, sqrt_lower), sqrt_upper)
    return liquidity * (1 / s - 1 / sqrt_upper), liquidity * (s - sqrt_lower)


def position_worth(value1: float, sqrt_p: float, ticks: tuple[int, int]) -> Position:
    """The position over ``ticks`` worth ``value1`` (token1 raw units) at ``sqrt_p``."""
    sqrt_lower, sqrt_upper = sqrt_at_tick(ticks[0]), sqrt_at_tick(ticks[1])
    amount0, amount1 = amounts_for(1.0, sqrt_p, sqrt_lower, sqrt_upper)
    return Position(sqrt_lower, sqrt_upper, value1 / (amount0 * sqrt_p**2 + amount1))


def swap_to(positions: list[Position], sqrt_p: float, factor: float, fee: int) -> tuple[float, float]:
    """(gross input with the fee, output) of the swap that moves the pool price from ``sqrt_p**2``
    to ``factor`` times it: token0 in and token1 out when ``factor < 1`` (selling token0), the other
    way round above. Each range contributes over the part of the path it covers."""
    target = sqrt_p * math.sqrt(factor)
    amount_in = amount_out = 0.0
    for pos in positions:
        if factor < 1:
            low, high = max(target, pos.sqrt_lower), min(sqrt_p, pos.sqrt_upper)
            if low < high:
                amount_in += pos.liquidity * (1 / low - 1 / high)
                amount_out += pos.liquidity * (high - low)
        else:
            low, high = max(sqrt_p, pos.sqrt_lower), min(target, pos.sqrt_upper)
            if low < high:
                amount_in += pos.liquidity * (high - low)
                amount_out += pos.liquidity * (1 / low - 1 / high)
    return amount_in * FEE_PIPS / (FEE_PIPS - fee), amount_out
