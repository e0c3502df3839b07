"""What-if price shocks over the tracked positions, with the protocols' own maths. Pure.

A shock multiplies an asset's oracle price (Aave: the asset's price; Morpho: each market's
collateral/loan price ratio moves with both tokens' shocks). The shocked state is then fed to the
same functions the keeper uses every block: exact health, and for each liquidatable position the
liquidation the contract would execute. The second round estimates, in base-currency terms, which
positions stay liquidatable after their first liquidation (Aave's 50 % close factor leaves some).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction

from keeper.math.wad_ray import WAD
from keeper.protocols.base import (
    ExecutorLeg,
    LendingAdapter,
    LiquidationQuote,
    PositionHealth,
    PositionKey,
    TokenPrice,
)


@dataclass
class StressResult:
    name: str
    liquidatable_before: int = 0
    liquidatable_after: set[PositionKey] = field(default_factory=set)
    debt_to_cover: dict[str, int] = field(default_factory=dict)
    collateral_seized: dict[str, int] = field(default_factory=dict)
    second_round: int = 0
    quotes: list[LiquidationQuote] = field(default_factory=list)
    legs: list[ExecutorLeg | None] = field(default_factory=list)
    """Per quote, what the flash executor would be asked to do (`LendingAdapter.executor_leg`)."""
    prices: dict[str, TokenPrice] = field(default_factory=dict)
    """The shocked oracle's reference prices (empty for a protocol whose oracle prices no token)."""


def stress(
    name: str, adapter: LendingAdapter, shocks: Mapping[str, Fraction], timestamp: int
) -> StressResult:
    result = StressResult(name)
    result.liquidatable_before = sum(h.liquidatable for h in adapter.health(timestamp))
    shocked = adapter.shocked(shocks)
    result.prices = dict(shocked.snapshot().reference_prices)
    for health in shocked.health(timestamp):
        if not health.liquidatable:
            continue
        key = PositionKey(health.market, health.user)
        result.liquidatable_after.add(key)
        quote = shocked.quote(key, timestamp)
        if quote is None:
            continue
        result.quotes.append(quote)
        result.legs.append(shocked.executor_leg(quote))
        result.debt_to_cover[quote.debt_asset] = (
            result.debt_to_cover.get(quote.debt_asset, 0) + quote.debt_repaid
        )
        seized = quote.collateral_seized + quote.protocol_fee
        result.collateral_seized[quote.collateral_asset] = (
            result.collateral_seized.get(quote.collateral_asset, 0) + seized
        )
        if _still_below_one(health, quote):
            result.second_round += 1
    return result


def _still_below_one(health: PositionHealth, quote: LiquidationQuote) -> bool:
    """Estimate: health after the first liquidation, scaling collateral and debt by what it moves."""
    if health.debt_base == 0 or quote.debt_value_base >= health.debt_base or quote.bad_debt:
        return False  # repaid in full, or Morpho wrote the rest off as bad debt
    left_debt = health.debt_base - quote.debt_value_base
    left_collateral = health.collateral_base - quote.collateral_value_base
    if left_collateral <= 0:
        return False  # nothing left to seize: a second liquidation is impossible
    # health = collateral x average threshold / debt: keep the same average threshold
    threshold = Fraction(health.health_factor_wad, WAD) * health.debt_base / max(health.collateral_base, 1)
    return left_collateral * threshold < left_debt
