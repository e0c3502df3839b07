"""What the devnet deploys: assets, their risk parameters, eMode and Morpho markets (pure data)."""

from __future__ import annotations

from dataclasses import dataclass

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
