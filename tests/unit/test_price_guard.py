"""The price guard: zero, stale and jumping prices are refused; good ones pass."""

from __future__ import annotations

import pytest

from keeper.risk.prices import PriceGuard, rejected_prices

GUARD = PriceGuard(max_age_s=3_600, max_jump_bps=3_000)
NOW = 1_000_000


@pytest.mark.parametrize(
    ("price", "updated_at", "previous", "reason"),
    [
        (100, NOW - 10, 100, None),
        (0, NOW, 100, "zero or negative"),
        (-5, NOW, 100, "zero or negative"),
        (100, NOW - 3_601, 100, "stale: updated 3601 s ago"),
        (100, NOW - 3_600, 100, None),
        (100, 0, 100, None),  # no updatedAt known: no age check
        (131, NOW, 100, "moved +31.00 % in one block"),
        (130, NOW, 100, None),
        (69, NOW, 100, "moved -31.00 % in one block"),
        (70, NOW, 100, None),
        (500, NOW, 0, None),  # no previous price: nothing to compare with
    ],
)
def test_each_rule(price: int, updated_at: int, previous: int, reason: str | None) -> None:
    found = rejected_prices({"A": price}, {"A": updated_at}, {"A": previous}, NOW, GUARD)
    if reason is None:
        assert found == {}
    else:
        assert found["A"].startswith(reason)


def test_zero_bounds_disable_the_checks() -> None:
    off = PriceGuard(max_age_s=0, max_jump_bps=0)
    assert rejected_prices({"A": 1_000}, {"A": 1}, {"A": 1}, NOW, off) == {}
    assert rejected_prices({"A": 0}, {}, {}, NOW, off) == {"A": "zero or negative (or the oracle reverted)"}
