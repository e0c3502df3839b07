"""Which oracle prices the keeper refuses to act on this block, and why. Pure.

A liquidation decided on a bad price is a bad liquidation even when the chain accepts it: a price
that is zero or negative, older than the feed should ever be, or that moved further in one block
than the configured bound is refused, and every position that uses the asset is left alone until
the price is good again. The keeper's own ``[[price_feeds]]`` (reference prices for valuing) are
held to the same rules (`feed_prices`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from keeper.protocols.base import FeedReading, TokenPrice


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


FEED_PRICE_DECIMALS = 18
"""Feed answers are rescaled to this many decimals, so feeds of different ``decimals()`` (8 for
Chainlink's X / USD feeds, 18 for some others) value tokens against each other correctly."""


def feed_prices(
    readings: Sequence[FeedReading], previous: Mapping[str, int], now: int, guard: PriceGuard
) -> tuple[dict[str, TokenPrice], dict[str, str]]:
    """``(token -> price, token -> reason refused)`` for the ``[[price_feeds]]`` read at ``now``.

    The same rules as a protocol oracle's price (zero or negative, stale, jumping since the previous
    block's answer in ``previous``), with each feed's own ``max_age_s`` when it has one, and a feed
    that never completed a round (``updatedAt`` 0) or whose scale is unknown refused outright: a price
    without a time or a unit cannot be checked, so it is not used.
    """
    accepted: dict[str, TokenPrice] = {}
    refused: dict[str, str] = {}
    for reading in readings:
        token = reading.token
        own = PriceGuard(reading.max_age_s or guard.max_age_s, guard.max_jump_bps)
        reason = rejected_prices(
            {token: reading.answer}, {token: reading.updated_at}, previous, now, own
        ).get(token)
        if reason is None and reading.updated_at == 0:
            reason = "no completed round (updatedAt is 0)"
        if reason is None and (reading.feed_decimals is None or reading.token_decimals is None):
            reason = "decimals() of the feed or the token did not answer"
        if reason is not None:
            refused[token] = f"feed {reading.feed}: {reason}"
            continue
        assert reading.feed_decimals is not None and reading.token_decimals is not None
        shift = FEED_PRICE_DECIMALS - reading.feed_decimals
        price = reading.answer * 10**shift if shift >= 0 else reading.answer // 10**-shift
        accepted[token] = TokenPrice(price, reading.token_decimals)
    return accepted, refused
