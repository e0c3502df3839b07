"""Which oracle prices the keeper refuses to act on this block, and why. Pure.

A liquidation decided on a bad price is a bad liquidation even when the chain accepts it: a price
that is zero or negative, older than the feed should ever be, or that moved further in one block
than the configured bound is refused, and every position that uses the asset is left alone until
the price is good again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PriceGuard:
    max_age_s: int
    """0 disables the age check."""
    max_jump_bps: int
    """Largest move from the previous block's price; 0 disables the jump check."""


def rejected_prices(
    prices: Mapping[str, int],
    updated_at: Mapping[str, int],
    previous: Mapping[str, int],
    now: int,
    guard: PriceGuard,
) -> dict[str, str]:
    """asset -> reason, for every price that must not be acted on at ``now``."""
    reasons: dict[str, str] = {}
    for asset, price in prices.items():
        if price <= 0:
            reasons[asset] = "zero or negative (or the oracle reverted)"
            continue
        stamp = updated_at.get(asset, 0)
        if guard.max_age_s and stamp and now - stamp > guard.max_age_s:
            reasons[asset] = f"stale: updated {now - stamp} s ago (max {guard.max_age_s} s)"
            continue
        before = previous.get(asset, 0)
        if guard.max_jump_bps and before > 0 and abs(price - before) * 10_000 > guard.max_jump_bps * before:
            move = (price - before) * 10_000 // before
            reasons[asset] = f"moved {move / 100:+.2f} % in one block (max {guard.max_jump_bps / 100:.2f} %)"
    return reasons
