"""Uniswap V3 exact-input swaps computed locally, to the last unit of what the pool's `swap` pays.

The keeper sells seized collateral on Uniswap V3; what a sale returns decides whether a flash
liquidation pays. QuoterV2 answers that by running the pool's own code in an ``eth_call``, which
is exact but costs an EVM swap per quote and a round trip on the way to the first transaction. The
same answer follows from the pool's state (price, in-range liquidity, initialized ticks and their
``liquidityNet``) and the integer maths of v3-core's TickMath, SqrtPriceMath, SwapMath and
TickBitmap, reproduced here with Solidity's rounding: each swap step rounds the input up and the
output down, and steps end where the pool's do (every initialized tick and every bitmap word
boundary), so the local result equals the quoter's (`tests/integration/test_uniswap_v3_math.py`
compares them on the devnet's pools). Pure: no I/O; a pool is a plain `PoolState`.

A state knows the ticks of a window of bitmap words around the price; a swap that would walk out of
it, or that the pool cannot fill before its price limit, has no local answer (None) and the caller
asks the quoter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

Q96 = 1 << 96
MIN_TICK = -887272
MAX_TICK = 887272
MIN_SQRT_RATIO = 4295128739
MAX_SQRT_RATIO = 1461446703485210103287273052203988822378723970342
FEE_UNITS = 1_000_000
UINT256_MAX = (1 << 256) - 1
UINT160_MAX = (1 << 160) - 1

_TICK_FACTORS = (
    (0x2, 0xFFF97272373D413259A46990580E213A),
    (0x4, 0xFFF2E50F5F656932EF12357CF3C7FDCC),
    (0x8, 0xFFE5CACA7E10E4E61C3624EAA0941CD0),
    (0x10, 0xFFCB9843D60F6159C9DB58835C926644),
    (0x20, 0xFF973B41FA98C081472E6896DFB254C0),
    (0x40, 0xFF2EA16466C96A3843EC78B326B52861),
    (0x80, 0xFE5DEE046A99A2A811C461F1969C3053),
    (0x100, 0xFCBE86C7900A88AEDCFFC83B479AA3A4),
    (0x200, 0xF987A7253AC413176F2B074CF7815E54),
    (0x400, 0xF3392B0822B70005940C7A398E4B70F3),
    (0x800, 0xE7159475A2C29B7443B29C7FA6E889D9),
    (0x1000, 0xD097F3BDFD2022B8845AD8F792AA5825),
    (0x2000, 0xA9F746462D870FDF8A65DC1F90E061E5),
    (0x4000, 0x70D869A156D2A1B890BB3DF62BAF32F7),
    (0x8000, 0x31BE135F97D08FD981231505542FCFA6),
    (0x10000, 0x9AA508B5B7A84E1C677DE54F3E99BC9),
    (0x20000, 0x5D6AF8DEDB81196699C329225EE604),
    (0x40000, 0x2216E584F5FA1EA926041BEDFE98),
    (0x80000, 0x48A170391F7DC42444E8FA2),
)
"""TickMath's Q128 factors: sqrt(1.0001) ** -(2 ** i), one per bit of |tick| above the lowest."""


@dataclass(frozen=True, slots=True)
class PoolState:
    """What a swap reads: the pool at one block, with the initialized ticks of bitmap words
    ``word_range[0]..word_range[1]`` (inclusive) and their ``liquidityNet``."""

    sqrt_price_x96: int
    tick: int
    liquidity: int
    fee: int
    """In hundredths of a bip (500 = 0.05 %)."""
    tick_spacing: int
    liquidity_net: Mapping[int, int]
    """Initialized tick -> liquidityNet, for every initialized tick inside ``word_range``."""
    word_range: tuple[int, int]


def sqrt_ratio_at_tick(tick: int) -> int:
    """TickMath.getSqrtRatioAtTick: sqrt(1.0001 ** tick) as Q64.96, rounded up."""
    abs_tick = abs(tick)
    if abs_tick > MAX_TICK:
        raise ValueError(f"tick {tick} out of range")
    ratio = 0xFFFCB933BD6FAD37AA2D162D1A594001 if abs_tick & 1 else 1 << 128
    for bit, factor in _TICK_FACTORS:
        if abs_tick & bit:
            ratio = (ratio * factor) >> 128
    if tick > 0:
        ratio = UINT256_MAX // ratio
    return (ratio >> 32) + (1 if ratio & 0xFFFFFFFF else 0)


def _mul_div(a: int, b: int, denominator: int) -> int:
    result = a * b // denominator
    if result > UINT256_MAX:
        raise ArithmeticError("mulDiv overflow")
    return result


def _mul_div_up(a: int, b: int, denominator: int) -> int:
    result = -(-(a * b) // denominator)
    if result > UINT256_MAX:
        raise ArithmeticError("mulDivRoundingUp overflow")
    return result


def _div_up(a: int, b: int) -> int:
    return -(-a // b)


def amount0_delta(sqrt_a: int, sqrt_b: int, liquidity: int, round_up: bool) -> int:
    """SqrtPriceMath.getAmount0Delta: token0 between two prices for ``liquidity``."""
    if sqrt_a > sqrt_b:
        sqrt_a, sqrt_b = sqrt_b, sqrt_a
    numerator1, numerator2 = liquidity << 96, sqrt_b - sqrt_a
    if round_up:
        return _div_up(_mul_div_up(numerator1, numerator2, sqrt_b), sqrt_a)
    return _mul_div(numerator1, numerator2, sqrt_b) // sqrt_a


def amount1_delta(sqrt_a: int, sqrt_b: int, liquidity: int, round_up: bool) -> int:
    """SqrtPriceMath.getAmount1Delta: token1 between two prices for ``liquidity``."""
    if sqrt_a > sqrt_b:
        sqrt_a, sqrt_b = sqrt_b, sqrt_a
    if round_up:
        return _mul_div_up(liquidity, sqrt_b - sqrt_a, Q96)
    return _mul_div(liquidity, sqrt_b - sqrt_a, Q96)


def next_sqrt_price_from_input(sqrt_p: int, liquidity: int, amount_in: int, zero_for_one: bool) -> int:
    """SqrtPriceMath.getNextSqrtPriceFromInput, rounded so the target price is never passed."""
    if zero_for_one:  # getNextSqrtPriceFromAmount0RoundingUp, adding
        if amount_in == 0:
            return sqrt_p
        numerator1 = liquidity << 96
        product = amount_in * sqrt_p
        if product <= UINT256_MAX and numerator1 + product <= UINT256_MAX:
            return _mul_div_up(numerator1, sqrt_p, numerator1 + product)
        return _div_up(numerator1, numerator1 // sqrt_p + amount_in)
    # getNextSqrtPriceFromAmount1RoundingDown, adding
    quotient = (
        (amount_in << 96) // liquidity if amount_in <= UINT160_MAX else _mul_div(amount_in, Q96, liquidity)
    )
    result = sqrt_p + quotient
    if result > UINT160_MAX:
        raise ArithmeticError("price overflows uint160")
    return result


def swap_step(
    sqrt_current: int, sqrt_target: int, liquidity: int, remaining: int, fee: int
) -> tuple[int, int, int, int]:
    """SwapMath.computeSwapStep for an exact input: (next price, amount in, amount out, fee)."""
    zero_for_one = sqrt_current >= sqrt_target
    less_fee = _mul_div(remaining, FEE_UNITS - fee, FEE_UNITS)
    if zero_for_one:
        amount_in = amount0_delta(sqrt_target, sqrt_current, liquidity, True)
    else:
        amount_in = amount1_delta(sqrt_current, sqrt_target, liquidity, True)
    if less_fee >= amount_in:
        sqrt_next = sqrt_target
    else:
        sqrt_next = next_sqrt_price_from_input(sqrt_current, liquidity, less_fee, zero_for_one)
    reached = sqrt_next == sqrt_target
    if zero_for_one:
        if not reached:
            amount_in = amount0_delta(sqrt_next, sqrt_current, liquidity, True)
        amount_out = amount1_delta(sqrt_next, sqrt_current, liquidity, False)
    else:
        if not reached:
            amount_in = amount1_delta(sqrt_current, sqrt_next, liquidity, True)
        amount_out = amount0_delta(sqrt_current, sqrt_next, liquidity, False)
    # the target not reached, the rest of the input is the fee
    fee_amount = _mul_div_up(amount_in, fee, FEE_UNITS - fee) if reached else remaining - amount_in
    return sqrt_next, amount_in, amount_out, fee_amount


def _next_initialized_tick(pool: PoolState, tick: int, lte: bool) -> tuple[int, bool] | None:
    """TickBitmap.nextInitializedTickWithinOneWord over the known ticks; None outside the window."""
    spacing = pool.tick_spacing
    compressed = tick // spacing  # Python floors: Solidity's rounding toward negative infinity
    if not lte:
        compressed += 1
    word, bit = compressed >> 8, compressed % 256
    if not pool.word_range[0] <= word <= pool.word_range[1]:
        return None
    if lte:
        lowest = (compressed - bit) * spacing
        found = [t for t in pool.liquidity_net if lowest <= t <= compressed * spacing]
        return (max(found), True) if found else (lowest, False)
    highest = (compressed + 255 - bit) * spacing
    found = [t for t in pool.liquidity_net if compressed * spacing <= t <= highest]
    return (min(found), True) if found else (highest, False)


def exact_input(pool: PoolState, zero_for_one: bool, amount_in: int) -> int | None:
    """What ``swap(zeroForOne, +amount_in, no price limit)`` pays out, or None when the pool
    cannot fill it within its price limit, the swap leaves the known ticks, or the pool would revert."""
    if amount_in <= 0 or pool.liquidity < 0:
        return None
    try:
        return _exact_input(pool, zero_for_one, amount_in)
    except ArithmeticError:  # where the pool's own arithmetic would revert
        return None


def _exact_input(pool: PoolState, zero_for_one: bool, amount_in: int) -> int | None:
    limit = MIN_SQRT_RATIO + 1 if zero_for_one else MAX_SQRT_RATIO - 1
    sqrt_p, tick, liquidity = pool.sqrt_price_x96, pool.tick, pool.liquidity
    remaining, out = amount_in, 0
    while remaining != 0 and sqrt_p != limit:
        found = _next_initialized_tick(pool, tick, zero_for_one)
        if found is None:
            return None
        tick_next, initialized = found
        tick_next = min(max(tick_next, MIN_TICK), MAX_TICK)
        sqrt_next = sqrt_ratio_at_tick(tick_next)
        beyond = sqrt_next < limit if zero_for_one else sqrt_next > limit
        start = sqrt_p
        sqrt_p, step_in, step_out, step_fee = swap_step(
            sqrt_p, limit if beyond else sqrt_next, liquidity, remaining, pool.fee
        )
        remaining -= step_in + step_fee
        out += step_out
        if sqrt_p == sqrt_next:
            if initialized:
                net = pool.liquidity_net[tick_next]
                liquidity += -net if zero_for_one else net
                if liquidity < 0:
                    raise ArithmeticError("liquidity underflow: the known ticks are inconsistent")
            tick = tick_next - 1 if zero_for_one else tick_next
        elif sqrt_p != start:
            return out if remaining == 0 else None  # the step ended inside a range: the swap is done
    return out if remaining == 0 else None
