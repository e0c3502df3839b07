"""What the devnet deploys: assets, their risk parameters, eMode and Morpho markets (pure data)."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

AAVE_VERSIONS = ("3.0", "3.6")
DEFAULT_AAVE_VERSION = "3.6"
"""The version production markets run; 3.0 keeps the published v3.0.x artifacts."""

FEED_DECIMALS = 8
RAY = 10**27
WAD = 10**18


@dataclass(frozen=True)
class AssetSpec:
    symbol: str
    decimals: int
    price_usd_8: int  # feed answer, 8 decimals
    ltv_bps: int
    liquidation_threshold_bps: int
    liquidation_bonus_bps: int
    reserve_factor_bps: int
    liquidation_protocol_fee_bps: int
    emode_category: int
    optimal_usage_ray: int
    slope1_ray: int
    slope2_ray: int
    borrowable: bool = True


@dataclass(frozen=True)
class EModeSpec:
    category_id: int
    ltv_bps: int
    liquidation_threshold_bps: int
    liquidation_bonus_bps: int
    label: str


@dataclass(frozen=True)
class MorphoMarketSpec:
    loan: str
    collateral: str
    lltv: int  # WAD
    fee: int  # WAD share of interest to the fee recipient


ASSETS: tuple[AssetSpec, ...] = (
    AssetSpec(
        "WETH",
        18,
        2_000 * 10**8,
        8000,
        8250,
        10500,
        1500,
        1000,
        0,
        RAY * 80 // 100,
        RAY * 38 // 1000,
        RAY * 80 // 100,
    ),
    AssetSpec(
        "WBTC",
        8,
        60_000 * 10**8,
        7000,
        7500,
        10650,
        2000,
        1000,
        0,
        RAY * 45 // 100,
        RAY * 4 // 100,
        RAY * 300 // 100,
    ),
    AssetSpec(
        "USDC", 6, 1 * 10**8, 7700, 8000, 10450, 1000, 0, 1, RAY * 90 // 100, RAY * 4 // 100, RAY * 60 // 100
    ),
    AssetSpec(
        "DAI",
        18,
        1 * 10**8,
        6300,
        7700,
        10500,
        1000,
        500,
        1,
        RAY * 80 // 100,
        RAY * 4 // 100,
        RAY * 75 // 100,
    ),
)

EMODE = EModeSpec(1, 9300, 9500, 10100, "Stablecoins")

CASE_ASSETS: tuple[AssetSpec, ...] = (
    # Collateral only inside eMode 2: listed with reserve LTV / LT / bonus 0 (3.6 counts such
    # collateral and lets it be liquidated; 3.0-3.5 ignored it).
    AssetSpec(
        "EMC", 18, 1 * 10**8, 0, 0, 0, 1000, 1000, 2, RAY * 80 // 100, RAY * 4 // 100, RAY * 75 // 100, False
    ),
    # Borrowed only by the grace-period case borrowers: its liquidation grace period blocks
    # nothing the random borrowers hold.
    AssetSpec("GRACE", 18, 25 * 10**8, 0, 0, 0, 1000, 0, 0, RAY * 80 // 100, RAY * 4 // 100, RAY * 75 // 100),
)
"""Listed on the v3.6 devnet only, after `ASSETS` (reserve ids 4, 5), for the case borrowers."""

CASE_EMODE = EModeSpec(2, 7500, 8000, 10500, "LT-0 collateral")
CASE_EMODE_BORROWABLE = ("USDC",)
"""eMode 2 (v3.6 only): EMC is its collateral, USDC what it lends."""

MORPHO_MARKETS: tuple[MorphoMarketSpec, ...] = (
    MorphoMarketSpec("USDC", "WETH", 860 * 10**15, 0),
    MorphoMarketSpec("USDC", "WBTC", 915 * 10**15, 100 * 10**15),
    MorphoMarketSpec("WETH", "WBTC", 770 * 10**15, 0),
)

MORPHO_IRM_APRS = (0, 4 * WAD // 100, 300 * WAD // 100, 90 * WAD // 100)
"""KinkedIrm(baseApr, slope1Apr, slope2Apr, optimalUtilization), WAD."""


@dataclass(frozen=True)
class LiquidityRange:
    half_width_bps: int | None
    """The range runs from price / (1 + w) to price * (1 + w) around the seeded price; None: full range."""
    usd: int
    """What the position is worth at the seeded prices."""


@dataclass(frozen=True)
class UniswapPoolSpec:
    a: str
    b: str
    fee: int  # hundredths of a bip: 100, 500, 3000
    ranges: tuple[LiquidityRange, ...]


def _volatile(scale: Fraction) -> tuple[LiquidityRange, ...]:
    """A full-range floor (depth wherever the price goes), a +-40 % band (still around the price
    after a 25 % crash, when a block sells several $M of seized collateral) and a +-3 % band near
    the price, as LPs place it on mainnet. Depth per `uniswap.sell_to_move` is in the README."""
    return tuple(
        LiquidityRange(w, int(usd * scale))
        for w, usd in ((None, 200_000_000), (4000, 100_000_000), (300, 5_000_000))
    )


UNISWAP_POOLS: tuple[UniswapPoolSpec, ...] = (
    UniswapPoolSpec("WETH", "USDC", 500, _volatile(Fraction(1))),
    UniswapPoolSpec("WETH", "DAI", 3000, _volatile(Fraction(1, 2))),
    UniswapPoolSpec("WBTC", "USDC", 3000, _volatile(Fraction(3, 4))),
    UniswapPoolSpec("WBTC", "WETH", 3000, _volatile(Fraction(1, 2))),
    UniswapPoolSpec("WBTC", "DAI", 3000, _volatile(Fraction(1, 4))),  # the v3.6 dust cases' pair
    UniswapPoolSpec(
        "USDC",
        "DAI",
        100,
        (LiquidityRange(None, 4_000_000), LiquidityRange(200, 6_000_000), LiquidityRange(20, 6_000_000)),
    ),
)
"""A pool for every collateral/debt pair the devnet's borrowers hold: the Aave profiles' collateral x
debt (seed.AAVE_PROFILES) and every Morpho market's (loan, collateral). Fee tiers as on mainnet:
0.05 % for the main ETH/dollar pair, 0.3 % for the rest of the volatile pairs, 0.01 % for the
stable pair. The largest seeded position is ~$2M, so a liquidation selling up to ~$1M of
collateral moves these pools by about 1 % (WETH/USDC) to 2 % (the half-scale pairs)."""


BPS_TO_RAY = 10**23


def interest_rate_data_bps(spec: AssetSpec) -> tuple[int, int, int, int]:
    """v3.6's `InterestRateData` (optimal usage, base, slope 1, slope 2; bps) for the same curve the
    v3.0 strategy gets in ray: the V2 strategy stores bps and scales them by 1e23."""
    rays = (spec.optimal_usage_ray, 0, spec.slope1_ray, spec.slope2_ray)
    if any(r % BPS_TO_RAY for r in rays):
        raise ValueError(f"{spec.symbol}: rate curve is not a whole number of bps")
    optimal, base, slope1, slope2 = (r // BPS_TO_RAY for r in rays)
    return optimal, base, slope1, slope2


def asset(symbol: str) -> AssetSpec:
    for spec in ASSETS + CASE_ASSETS:
        if spec.symbol == symbol:
            return spec
    raise KeyError(symbol)
