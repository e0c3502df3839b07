"""Unit tests for keeper.math: hand-checked tables for exact Solidity rounding plus property tests."""

from __future__ import annotations

import ast
from collections.abc import Callable
from fractions import Fraction
from math import ceil, floor
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keeper.math import interest, morpho, wad_ray
from keeper.math.interest import (
    SECONDS_PER_YEAR,
    calculate_compounded_interest,
    calculate_linear_interest,
    compounded_interest_v3_4,
)
from keeper.math.morpho import (
    mul_div_down,
    mul_div_up,
    to_assets_down,
    to_assets_up,
    to_shares_down,
    to_shares_up,
    w_div_down,
    w_div_up,
    w_mul_down,
    w_taylor_compounded,
)
from keeper.math.uint import UINT256_MAX, mul_div_ceil
from keeper.math.wad_ray import (
    HALF_PERCENTAGE_FACTOR,
    HALF_RAY,
    HALF_WAD,
    PERCENTAGE_FACTOR,
    RAY,
    WAD,
    WAD_RAY_RATIO,
    percent_div,
    percent_div_ceil,
    percent_mul,
    percent_mul_ceil,
    percent_mul_floor,
    ray_div,
    ray_div_ceil,
    ray_div_floor,
    ray_mul,
    ray_mul_ceil,
    ray_mul_floor,
    ray_to_wad,
    wad_div,
    wad_mul,
    wad_to_ray,
)

MAX = UINT256_MAX
YEAR = SECONDS_PER_YEAR
uint256s = st.integers(min_value=0, max_value=MAX)
uint128s = st.integers(min_value=0, max_value=2**128 - 1)


def largest_fitting(fits: Callable[[int], bool]) -> int:
    """Bisect for the largest n with fits(n), given fits is monotone, fits(0) and not fits(MAX)."""
    low, high = 0, MAX
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low


def half_up(numerator: int, denominator: int) -> int:
    """Independent reference: the exact quotient rounded to nearest, ties up."""
    return floor(Fraction(numerator, denominator) + Fraction(1, 2))


# --------------------------------------------------------------------------------------------- purity


FORBIDDEN_IMPORTS = {"web3", "asyncio", "sqlite3", "time", "os", "aiohttp", "socket", "random", "datetime"}


@pytest.mark.parametrize("module", sorted(Path(wad_ray.__file__).parent.glob("*.py")), ids=lambda p: p.name)
def test_math_package_does_no_io(module: Path) -> None:
    imported: set[str] = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            imported.add(node.module.split(".")[0])
    assert not imported & FORBIDDEN_IMPORTS
    assert "float(" not in module.read_text()


# ------------------------------------------------------------------------------------------ constants


def test_constants_match_solidity_literals() -> None:
    assert (WAD, HALF_WAD, RAY, HALF_RAY, WAD_RAY_RATIO) == (10**18, 5 * 10**17, 10**27, 5 * 10**26, 10**9)
    assert (PERCENTAGE_FACTOR, HALF_PERCENTAGE_FACTOR) == (10_000, 5_000)
    assert YEAR == 31_536_000
    assert (morpho.WAD, morpho.VIRTUAL_SHARES, morpho.VIRTUAL_ASSETS) == (10**18, 10**6, 1)
    assert MAX == 115792089237316195423570985008687907853269984665640564039457584007913129639935


# ---------------------------------------------------------------------------------- Aave WadRayMath

Binary = Callable[[int, int], int]


@pytest.mark.parametrize(
    ("fn", "a", "b", "expected"),
    [
        (wad_mul, 15 * 10**17, 2 * 10**18, 3 * 10**18),
        (wad_mul, 1, 5 * 10**17, 1),  # exactly half a wei rounds up
        (wad_mul, 1, 5 * 10**17 - 1, 0),  # just under half rounds down
        (wad_mul, 0, MAX, 0),
        (wad_mul, MAX, 0, 0),  # b == 0 skips the overflow check entirely
        (wad_div, 3 * 10**18, 2 * 10**18, 15 * 10**17),
        (wad_div, 1, 2 * 10**18, 1),  # 0.5 wei -> 1
        (wad_div, 1, 2 * 10**18 + 2, 0),  # just under 0.5 wei -> 0
        (wad_div, 0, 7, 0),
        (ray_mul, RAY, RAY, RAY),
        (ray_mul, 25 * 10**26, 11 * 10**26, 275 * 10**25),
        (ray_mul, 1, HALF_RAY, 1),
        (ray_mul, 1, HALF_RAY - 1, 0),
        (ray_div, RAY, 3 * RAY, 333333333333333333333333333),
        (ray_div, 2 * RAY, 3 * RAY, 666666666666666666666666667),
        (ray_div, 1, 2 * RAY, 1),
        (ray_div, 1, 2 * RAY + 2, 0),
        (percent_mul, 10_000, 5_000, 5_000),
        (percent_mul, 12_345, 10_500, 12_962),  # 12962.25 -> 12962
        (percent_mul, 1, 5_000, 1),
        (percent_mul, 1, 4_999, 0),
        (percent_mul, MAX, 0, 0),
        (percent_div, 5_000, 10_000, 5_000),
        (percent_div, 1, 20_000, 1),
        (percent_div, 1, 20_001, 0),
        (percent_div, 10_000, 8_500, 11_765),  # 11764.705... -> 11765
    ],
)
def test_half_up_operations(fn: Binary, a: int, b: int, expected: int) -> None:
    assert fn(a, b) == expected


@pytest.mark.parametrize(
    ("fn", "half", "unit"),
    [(wad_mul, HALF_WAD, WAD), (ray_mul, HALF_RAY, RAY), (percent_mul, HALF_PERCENTAGE_FACTOR, 10_000)],
)
@pytest.mark.parametrize("b", [1, 3, WAD, RAY, 2**128])
def test_mul_overflow_boundary(fn: Binary, half: int, unit: int, b: int) -> None:
    largest_a = (MAX - half) // b
    assert fn(largest_a, b) == (largest_a * b + half) // unit
    with pytest.raises(OverflowError):
        fn(largest_a + 1, b)


@pytest.mark.parametrize(("fn", "unit"), [(wad_div, WAD), (ray_div, RAY), (percent_div, 10_000)])
@pytest.mark.parametrize("b", [1, 2, 7, RAY, MAX])
def test_div_overflow_boundary(fn: Binary, unit: int, b: int) -> None:
    largest_a = (MAX - b // 2) // unit
    assert fn(largest_a, b) == (largest_a * unit + b // 2) // b
    with pytest.raises(OverflowError):
        fn(largest_a + 1, b)


@pytest.mark.parametrize("fn", [wad_div, ray_div, percent_div])
def test_div_by_zero_reverts(fn: Binary) -> None:
    with pytest.raises(ZeroDivisionError):
        fn(1, 0)


@pytest.mark.parametrize("fn", [wad_mul, wad_div, ray_mul, ray_div, percent_mul, percent_div])
@pytest.mark.parametrize(("a", "b"), [(-1, 1), (1, -1), (MAX + 1, 1)])
def test_arguments_outside_uint256_are_rejected(fn: Binary, a: int, b: int) -> None:
    with pytest.raises(ValueError, match="uint256"):
        fn(a, b)


@pytest.mark.parametrize(
    ("ray", "wad"),
    [
        (0, 0),
        (10**9, 1),
        (5 * 10**8, 1),  # exactly half rounds up
        (5 * 10**8 - 1, 0),
        (15 * 10**8, 2),
        (15 * 10**8 - 1, 1),
        (RAY, WAD),
        # MAX % 1e9 == 129639935 < 5e8, so no round-up (and no overflow is possible)
        (MAX, 115792089237316195423570985008687907853269984665640564039457584007913),
    ],
)
def test_ray_to_wad(ray: int, wad: int) -> None:
    assert ray_to_wad(ray) == wad


def test_wad_to_ray_and_its_overflow_boundary() -> None:
    assert wad_to_ray(0) == 0
    assert wad_to_ray(WAD) == RAY
    largest = MAX // WAD_RAY_RATIO
    assert wad_to_ray(largest) == largest * 10**9
    with pytest.raises(OverflowError):
        wad_to_ray(largest + 1)


@given(a=uint256s, b=uint256s)
def test_ray_mul_matches_fraction_reference(a: int, b: int) -> None:
    if a * b + HALF_RAY > MAX:
        with pytest.raises(OverflowError):
            ray_mul(a, b)
    else:
        assert ray_mul(a, b) == half_up(a * b, RAY)


@given(b=st.integers(min_value=1, max_value=MAX), delta=st.integers(min_value=-3, max_value=3))
def test_mul_reverts_exactly_when_the_intermediate_exceeds_uint256(b: int, delta: int) -> None:
    a = max(0, (MAX - HALF_WAD) // b + delta)
    reverts = a * b + HALF_WAD > MAX
    try:
        wad_mul(a, b)
    except OverflowError:
        assert reverts
    else:
        assert not reverts


@given(a=uint128s, b=st.integers(min_value=1, max_value=MAX))
def test_ray_div_and_wad_div_match_fraction_reference(a: int, b: int) -> None:
    assert wad_div(a, b) == half_up(a * WAD, b)
    assert ray_div(a, b) == half_up(a * RAY, b)


@given(value=uint128s, percentage=st.integers(min_value=1, max_value=2**64))
def test_percent_ops_match_fraction_reference(value: int, percentage: int) -> None:
    assert percent_mul(value, percentage) == half_up(value * percentage, PERCENTAGE_FACTOR)
    assert percent_div(value, percentage) == half_up(value * PERCENTAGE_FACTOR, percentage)


@given(ray=uint256s, wad=st.integers(min_value=0, max_value=MAX // WAD_RAY_RATIO))
def test_ray_wad_conversions(ray: int, wad: int) -> None:
    assert ray_to_wad(ray) == half_up(ray, WAD_RAY_RATIO)
    assert ray_to_wad(wad_to_ray(wad)) == wad


# ------------------------------------------------------------------------------------ Aave MathUtils


@pytest.mark.parametrize(
    ("rate_ray", "elapsed_s", "expected"),
    [
        (5 * 10**25, 0, RAY),
        (5 * 10**25, YEAR, 105 * 10**25),  # 5% APR for a year
        (5 * 10**25, YEAR // 2, 1025 * 10**24),
        (YEAR - 1, 1, RAY),  # rate * dt / year truncates
        (YEAR, 1, RAY + 1),
        (0, 10**9, RAY),
    ],
)
def test_linear_interest(rate_ray: int, elapsed_s: int, expected: int) -> None:
    last = 1_700_000_000
    assert calculate_linear_interest(rate_ray, last, last + elapsed_s) == expected


@pytest.mark.parametrize(
    ("rate_ray", "elapsed_s", "expected"),
    [
        (RAY, 0, RAY),
        # one second: only the linear term; RAY / YEAR = 31709791983764586504 (floor)
        (RAY, 1, RAY + 31709791983764586504),
        # two seconds: third term vanishes (exp - 2 == 0); second = 2*1*bp2/2 = bp2 where
        # bp2 = rayMul(RAY, RAY) / YEAR**2 = 1e27 // 994519296000000 = 1005510907653
        (RAY, 2, RAY + 63419583967529173008 + 1005510907653),
        # 100% APR for a year: 1 + 1 + ~1/2 + ~1/6, each binomial term slightly below the Taylor one
        (RAY, YEAR, 2666663803286306996604104000),
        # 5% APR: one day and one year (e**0.05 = 1.0512711, the approximation undercharges slightly)
        (5 * 10**25, 86_400, 1000136995684207123907444230),
        (5 * 10**25, YEAR, 1051265681539063650421944000),
    ],
)
def test_compounded_interest(rate_ray: int, elapsed_s: int, expected: int) -> None:
    last = 1_700_000_000
    assert calculate_compounded_interest(rate_ray, last, last + elapsed_s) == expected


@pytest.mark.parametrize("fn", [calculate_linear_interest, calculate_compounded_interest])
def test_interest_reverts_when_time_runs_backwards(fn: Callable[[int, int, int], int]) -> None:
    with pytest.raises(OverflowError):
        fn(RAY, 1_700_000_001, 1_700_000_000)


@pytest.mark.parametrize("fn", [calculate_linear_interest, calculate_compounded_interest])
def test_interest_rejects_a_timestamp_aave_cannot_store(fn: Callable[[int, int, int], int]) -> None:
    with pytest.raises(ValueError, match="uint40"):
        fn(RAY, interest.UINT40_MAX + 1, interest.UINT40_MAX + 2)


def test_linear_interest_overflow_boundary() -> None:
    rate = MAX // 1000
    assert calculate_linear_interest(rate, 0, 1000) == RAY + rate * 1000 // YEAR
    with pytest.raises(OverflowError):
        calculate_linear_interest(rate + 1, 0, 1000)


def test_compounded_interest_checks_intermediate_products_even_with_a_zero_factor() -> None:
    """With rate 0 every term is zero, yet Solidity still reverts once exp * (exp-1) * (exp-2) overflows."""
    largest_exp = largest_fitting(lambda n: n * (n - 1) * (n - 2) <= MAX)
    assert 2**85 < largest_exp < 2**86
    assert calculate_compounded_interest(0, 0, largest_exp) == RAY
    with pytest.raises(OverflowError):
        calculate_compounded_interest(0, 0, largest_exp + 1)


rates = st.integers(min_value=0, max_value=10 * RAY)  # up to 1000% APR
elapsed = st.integers(min_value=0, max_value=5 * YEAR)


@given(rate=rates, dt=elapsed)
def test_compounded_is_at_least_linear_and_equal_for_one_second(rate: int, dt: int) -> None:
    compounded = calculate_compounded_interest(rate, 0, dt)
    linear = calculate_linear_interest(rate, 0, dt)
    assert compounded >= linear
    if dt <= 1:
        assert compounded == linear


@given(rate=rates, dt=elapsed)
def test_compounded_stays_below_the_three_term_exponential(rate: int, dt: int) -> None:
    """The binomial terms are below the Taylor terms of e**x; only rounding slack may exceed them."""
    x = Fraction(rate * dt, YEAR * RAY)
    taylor = RAY * (1 + x + x**2 / 2 + x**3 / 6)
    rounding_slack = Fraction(dt**3, 12 * YEAR) + 100
    assert calculate_compounded_interest(rate, 0, dt) <= taylor + rounding_slack


@given(rate=rates, dt=elapsed, extra_s=st.integers(min_value=0, max_value=YEAR), extra_rate=rates)
def test_compounded_is_monotonic_in_time_and_rate(rate: int, dt: int, extra_s: int, extra_rate: int) -> None:
    base = calculate_compounded_interest(rate, 0, dt)
    assert calculate_compounded_interest(rate, 0, dt + extra_s) >= base
    assert calculate_compounded_interest(rate + extra_rate, 0, dt) >= base


# --------------------------------------------------------------------------------- Morpho MathLib


@pytest.mark.parametrize(
    ("x", "y", "d", "down", "up"),
    [
        (7, 3, 2, 10, 11),
        (4, 3, 2, 6, 6),  # exact: no round-up
        (0, 5, 7, 0, 0),
        (1, 1, 3, 0, 1),
        (MAX, 1, 1, MAX, MAX),  # d - 1 == 0 pads nothing, so no overflow at MAX
        (2**128, 2**128 - 1, 2**128, 2**128 - 1, 2**128 - 1),
    ],
)
def test_mul_div(x: int, y: int, d: int, down: int, up: int) -> None:
    assert mul_div_down(x, y, d) == down
    assert mul_div_up(x, y, d) == up


def test_mul_div_overflow_boundaries() -> None:
    with pytest.raises(OverflowError):
        mul_div_down(2**128, 2**128, 2**200)  # the product overflows even though the quotient fits
    with pytest.raises(OverflowError):
        mul_div_up(2**128, 2**128, 2**200)
    # mulDivUp pads the numerator with d - 1 under checked arithmetic, so MAX * 1 / 2 reverts
    assert mul_div_down(MAX, 1, 2) == MAX // 2
    with pytest.raises(OverflowError):
        mul_div_up(MAX, 1, 2)
    assert mul_div_up(MAX - 1, 1, 2) == (MAX - 1) // 2  # padded numerator is exactly MAX


@pytest.mark.parametrize("fn", [mul_div_down, mul_div_up])
def test_mul_div_by_zero_reverts(fn: Callable[[int, int, int], int]) -> None:
    with pytest.raises(ZeroDivisionError):
        fn(1, 1, 0)


@pytest.mark.parametrize(
    ("fn", "x", "y", "expected"),
    [
        (w_mul_down, 15 * 10**17, 15 * 10**17, 225 * 10**16),
        (w_mul_down, 1, 1, 0),
        (w_mul_down, 10**9, 10**9, 1),
        (w_div_down, 2 * WAD, 3 * WAD, 666666666666666666),
        (w_div_up, 2 * WAD, 3 * WAD, 666666666666666667),
        (w_div_down, 1, 3 * WAD, 0),
        (w_div_up, 1, 3 * WAD, 1),
        (w_div_up, 3 * WAD, 2 * WAD, 15 * 10**17),
    ],
)
def test_wad_helpers(fn: Binary, x: int, y: int, expected: int) -> None:
    assert fn(x, y) == expected


@pytest.mark.parametrize(
    ("x", "n", "expected"),
    [
        (0, 10**6, 0),
        (10**9, 0, 0),
        # x*n = 1.0: 1 + 1/2 + floor(0.5 * 1 / 3) = 1.5 + 0.166666666666666666
        (WAD, 1, 1666666666666666666),
        # x*n = 0.1: 0.1 + 0.005 + 0.005*0.1/3 = 0.000166666666666666 (floored)
        (10**12, 10**5, 105166666666666666),
        (1, 1, 1),  # second and third terms floor to zero
    ],
)
def test_w_taylor_compounded(x: int, n: int, expected: int) -> None:
    assert w_taylor_compounded(x, n) == expected


def test_w_taylor_compounded_overflow_boundary() -> None:
    """secondTerm * firstTerm overflows first, long before firstTerm**2 does (at 2**128)."""
    largest_first = largest_fitting(lambda f: f * f // (2 * WAD) * f <= MAX)
    assert 2**105 < largest_first < 2**106
    assert w_taylor_compounded(largest_first, 1) > largest_first
    with pytest.raises(OverflowError):
        w_taylor_compounded(largest_first + 1, 1)
    with pytest.raises(OverflowError):
        w_taylor_compounded(MAX, 2)


# ---------------------------------------------------------------------------- Morpho SharesMathLib


@pytest.mark.parametrize(
    ("amount", "total_assets", "total_shares", "shares_down", "shares_up"),
    [
        (100, 0, 0, 100 * 10**6, 100 * 10**6),  # empty market: 1 asset = 1e6 virtual shares
        (0, 10**18, 10**24, 0, 0),
        (1, 1000, 10**9, 1_000_000, 1_000_000),  # (1e9 + 1e6) / 1001 is exact
        (1, 1002, 10**9, 998_005, 998_006),  # 1001000000 / 1003 = 998005 remainder 985
    ],
)
def test_to_shares(
    amount: int, total_assets: int, total_shares: int, shares_down: int, shares_up: int
) -> None:
    assert to_shares_down(amount, total_assets, total_shares) == shares_down
    assert to_shares_up(amount, total_assets, total_shares) == shares_up


@pytest.mark.parametrize(
    ("shares", "total_assets", "total_shares", "assets_down", "assets_up"),
    [
        (100 * 10**6, 0, 0, 100, 100),
        (10**6 - 1, 0, 0, 0, 1),  # less than one virtual share's worth
        # 998005 * 1003 = 1000999015 < 1001000000: rounds to nothing down, one wei up
        (998_005, 1002, 10**9, 0, 1),
        # virtual totals 1000 assets / 1e9 shares: 1e6 shares is exactly 1 asset, 1.5e6 is 1.5
        (10**6, 999, 999_000_000, 1, 1),
        (1_500_000, 999, 999_000_000, 1, 2),
    ],
)
def test_to_assets(
    shares: int, total_assets: int, total_shares: int, assets_down: int, assets_up: int
) -> None:
    assert to_assets_down(shares, total_assets, total_shares) == assets_down
    assert to_assets_up(shares, total_assets, total_shares) == assets_up


@pytest.mark.parametrize("fn", [to_shares_down, to_shares_up, to_assets_down, to_assets_up])
def test_virtual_offsets_overflow_even_for_zero_amounts(fn: Callable[[int, int, int], int]) -> None:
    assert fn(0, MAX - 1, MAX - 10**6) == 0
    with pytest.raises(OverflowError):
        fn(0, MAX, 0)  # totalAssets + VIRTUAL_ASSETS
    with pytest.raises(OverflowError):
        fn(0, 0, MAX - 10**6 + 1)  # totalShares + VIRTUAL_SHARES


@given(x=uint128s, y=uint128s, d=st.integers(min_value=1, max_value=2**128))
def test_mul_div_up_exceeds_down_by_at_most_one(x: int, y: int, d: int) -> None:
    down, up = mul_div_down(x, y, d), mul_div_up(x, y, d)
    assert down == x * y // d
    assert up - down == (1 if x * y % d else 0)


totals = st.integers(min_value=0, max_value=2**100)


@given(amount=totals, total_assets=totals, total_shares=totals)
def test_share_round_trips_never_favour_the_user(amount: int, total_assets: int, total_shares: int) -> None:
    shares = to_shares_down(amount, total_assets, total_shares)
    assert to_assets_down(shares, total_assets, total_shares) <= amount
    owed = to_shares_up(amount, total_assets, total_shares)
    assert to_assets_up(owed, total_assets, total_shares) >= amount
    assert 0 <= owed - shares <= 1


@given(x=st.integers(min_value=0, max_value=10**11), n=st.integers(min_value=0, max_value=YEAR))
def test_w_taylor_compounded_tracks_the_exact_three_term_series(x: int, n: int) -> None:
    """Two floors lose under 1 wei each, and the first also shrinks the third term by firstTerm / 3 WAD."""
    xn = Fraction(x * n, WAD)
    exact = WAD * (xn + xn**2 / 2 + xn**3 / 6)
    result = w_taylor_compounded(x, n)
    assert exact - 2 - Fraction(x * n, 3 * WAD) < result <= exact


# ------------------------------------------------------------- Aave v3.5+ directed rounding (3.6.0)

THIRD_RAY_FLOOR = int("3" * 27)  # floor(RAY / 3): 27 threes


@pytest.mark.parametrize(
    ("fn", "a", "b", "expected"),
    [
        # 1 * 0.25 ray: floor 0, ceil 1, while half-up rayMul gives 0
        (ray_mul_floor, 1, RAY // 4, 0),
        (ray_mul_ceil, 1, RAY // 4, 1),
        # 5 * 0.5 = 2.5: floor 2, ceil 3 (half-up also 3)
        (ray_mul_floor, 5, RAY // 2, 2),
        (ray_mul_ceil, 5, RAY // 2, 3),
        (ray_mul_floor, 2 * RAY, 3 * RAY, 6 * RAY),  # exact: no round-up
        (ray_mul_ceil, 2 * RAY, 3 * RAY, 6 * RAY),
        (ray_mul_ceil, 0, MAX, 0),
        (ray_div_floor, 1, 3, THIRD_RAY_FLOOR),
        (ray_div_ceil, 1, 3, THIRD_RAY_FLOOR + 1),
        (ray_div_floor, 2, 3 * RAY, 0),  # 2/3 wei
        (ray_div_ceil, 2, 3 * RAY, 1),
        (ray_div_ceil, 6 * RAY, 2 * RAY, 3 * RAY),  # exact
        (percent_mul_floor, 10_001, 5_000, 5_000),  # 5000.5
        (percent_mul_ceil, 10_001, 5_000, 5_001),
        (percent_mul_floor, 1, 1, 0),
        (percent_mul_ceil, 1, 1, 1),
        (percent_mul_ceil, 20_000, 5_000, 10_000),  # exact
        (percent_div_ceil, 1, 3, 3_334),  # 10000 / 3
        (percent_div_ceil, 5_000, 5_000, 10_000),  # exact
        (percent_div_ceil, 1, 10_500, 1),  # 0.95 -> 1
    ],
)
def test_directed_rounding_by_hand(fn: Binary, a: int, b: int, expected: int) -> None:
    assert fn(a, b) == expected


@pytest.mark.parametrize("fn", [ray_mul_floor, ray_mul_ceil, percent_mul_floor, percent_mul_ceil])
@pytest.mark.parametrize("b", [3, PERCENTAGE_FACTOR, RAY, MAX])
def test_directed_mul_reverts_exactly_when_the_product_overflows(fn: Binary, b: int) -> None:
    """The pre-check is ``a > MAX / b`` (no half term), so MAX // b passes where half-up may not."""
    fn(MAX // b, b)
    with pytest.raises(OverflowError):
        fn(MAX // b + 1, b)


def test_floor_mul_accepts_what_half_up_rejects() -> None:
    a = MAX // 3
    assert ray_mul_floor(a, 3) == a * 3 // RAY
    with pytest.raises(OverflowError):
        ray_mul(a, 3)


@pytest.mark.parametrize(
    ("fn", "unit"), [(ray_div_floor, RAY), (ray_div_ceil, RAY), (percent_div_ceil, PERCENTAGE_FACTOR)]
)
def test_directed_div_overflow_boundary_and_zero_divisor(fn: Binary, unit: int) -> None:
    assert fn(MAX // unit, unit) == MAX // unit
    with pytest.raises(OverflowError):
        fn(MAX // unit + 1, MAX)
    with pytest.raises(ZeroDivisionError):
        fn(1, 0)
    with pytest.raises(ZeroDivisionError):  # the zero divisor is what reverts, whatever a is
        fn(MAX, 0)


@pytest.mark.parametrize(
    ("floor_fn", "ceil_fn", "reference"),
    [
        (ray_mul_floor, ray_mul_ceil, lambda a, b: Fraction(a * b, RAY)),
        (ray_div_floor, ray_div_ceil, lambda a, b: Fraction(a * RAY, b)),
        (percent_mul_floor, percent_mul_ceil, lambda a, b: Fraction(a * b, PERCENTAGE_FACTOR)),
    ],
)
@given(a=uint128s, b=uint128s.filter(bool))
def test_directed_rounding_matches_fraction_reference(
    floor_fn: Binary, ceil_fn: Binary, reference: Callable[[int, int], Fraction], a: int, b: int
) -> None:
    exact = reference(a, b)
    assert floor_fn(a, b) == floor(exact)
    assert ceil_fn(a, b) == ceil(exact)


@given(value=uint128s, percentage=st.integers(min_value=1, max_value=2**16))
def test_percent_div_ceil_matches_fraction_reference(value: int, percentage: int) -> None:
    assert percent_div_ceil(value, percentage) == ceil(Fraction(value * PERCENTAGE_FACTOR, percentage))


@pytest.mark.parametrize(
    ("a", "b", "c", "expected"),
    [
        (7, 3, 2, 11),
        (4, 3, 2, 6),  # exact
        (1, 1, 3, 1),
        (0, 5, 7, 0),
        (MAX, 1, 1, MAX),
        (MAX, 1, 2, 2**255),  # no d - 1 padding: unlike Morpho's mulDivUp this does not revert
        (2**128, 2**128 - 1, 2**128, 2**128 - 1),
    ],
)
def test_mul_div_ceil(a: int, b: int, c: int, expected: int) -> None:
    assert mul_div_ceil(a, b, c) == expected


def test_mul_div_ceil_reverts() -> None:
    with pytest.raises(ZeroDivisionError):
        mul_div_ceil(MAX, MAX, 0)  # c == 0 is checked before the product
    with pytest.raises(OverflowError):
        mul_div_ceil(2**128, 2**128, 2**200)
    assert mul_div_ceil(MAX // 3, 3, 3) == MAX // 3
    with pytest.raises(OverflowError):
        mul_div_ceil(MAX // 3 + 1, 3, 3)


@pytest.mark.parametrize(
    ("rate_ray", "elapsed_s", "expected"),
    [
        (5 * 10**25, 0, RAY),
        # 100 % for a year: x = RAY, x/6 * 1 + x/2 = 0.666.. ray, so RAY + RAY + 0.666.. ray
        (RAY, YEAR, 2 * RAY + int("6" * 27)),
        # 5 % for 1 s: x = 1585489599188229325, rayMul(x, x/6) = 0, rayMul(x, x/2) = 1256888635
        (5 * 10**25, 1, RAY + 1585489599188229325 + 1256888635),
        (5 * 10**25, 12, 1000000019025875371250716427),
        (5 * 10**25, 24 * 3600, 1000136995684421674802557900),
        (3 * 10**25, 30 * 24 * 3600, 1002468795893238598827300606),
        (0, YEAR, RAY),
    ],
)
def test_compounded_interest_v3_4(rate_ray: int, elapsed_s: int, expected: int) -> None:
    assert compounded_interest_v3_4(rate_ray, 1_000, 1_000 + elapsed_s) == expected


@pytest.mark.parametrize(("elapsed_s", "difference"), [(12, 15082664111), (24 * 3600, 214550895113670)])
def test_compounded_v3_4_is_not_the_v3_0_formula(elapsed_s: int, difference: int) -> None:
    """The notes' figures at 5 % APR: 1.5e10 ray larger at 12 s, 2.1e14 at one day."""
    rate = 5 * 10**25
    new, old = compounded_interest_v3_4(rate, 0, elapsed_s), calculate_compounded_interest(rate, 0, elapsed_s)
    assert new - old == difference


def test_compounded_v3_4_reverts_like_the_library() -> None:
    with pytest.raises(OverflowError):
        compounded_interest_v3_4(RAY, 10, 9)  # the subtraction is checked
    with pytest.raises(ValueError):
        compounded_interest_v3_4(RAY, 2**40, 2**41)  # uint40 argument
    with pytest.raises(OverflowError):
        compounded_interest_v3_4(MAX // YEAR, 0, YEAR)  # x ~ MAX: rayMul(x, x/6) reverts


@given(rate=st.integers(min_value=0, max_value=1_000 * RAY), dt=st.integers(min_value=0, max_value=10 * YEAR))
def test_compounded_v3_4_is_at_least_linear(rate: int, dt: int) -> None:
    """Up to 100,000 % a year for ten years (far past MAX_BORROW_RATE); beyond, rayMul(x, x/6) reverts."""
    assert compounded_interest_v3_4(rate, 0, dt) >= calculate_linear_interest(rate, 0, dt)
