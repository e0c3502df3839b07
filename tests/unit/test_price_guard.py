"""The price guard: zero, stale and jumping prices are refused; good ones pass. The same for the
keeper's own feeds, and which price book values an opportunity."""

from __future__ import annotations

import pytest

from keeper.protocols.base import FeedReading, TokenPrice
from keeper.risk.opportunity import first_complete, value_wei
from keeper.risk.prices import PriceGuard, feed_prices, rejected_prices

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


FEED = "0x" + "fe" * 20


def reading(
    answer: int = 2_000 * 10**8,
    updated_at: int = NOW - 10,
    feed_decimals: int | None = 8,
    token_decimals: int | None = 18,
    max_age_s: int | None = None,
) -> FeedReading:
    return FeedReading("T", FEED, answer, updated_at, feed_decimals, token_decimals, max_age_s)


@pytest.mark.parametrize(
    ("feed", "previous", "reason"),
    [
        (reading(), 0, None),
        (reading(answer=0), 0, "zero or negative"),
        (reading(answer=-1), 0, "zero or negative"),
        (reading(answer=0, updated_at=0), 0, "zero or negative"),  # latestRoundData reverted
        (reading(updated_at=0), 0, "no completed round"),  # an answer without a time cannot be aged
        (
            reading(updated_at=NOW - 3_601),
            0,
            "stale: updated 3601 s ago (max 3600 s)",
        ),  # the keeper-wide bound
        (reading(updated_at=NOW - 3_600), 0, None),
        (reading(updated_at=NOW - 601, max_age_s=600), 0, "stale: updated 601 s ago (max 600 s)"),  # its own
        (reading(updated_at=NOW - 7_200, max_age_s=86_400), 0, None),  # its own, longer than the keeper's
        (reading(feed_decimals=None), 0, "decimals() of the feed or the token did not answer"),
        (reading(token_decimals=None), 0, "decimals() of the feed or the token did not answer"),
        (reading(answer=2_000 * 10**8), 1_000 * 10**8, "moved +100.00 % in one block"),
        (reading(answer=2_000 * 10**8), 1_800 * 10**8, None),
    ],
)
def test_each_feed_rule(feed: FeedReading, previous: int, reason: str | None) -> None:
    accepted, refused = feed_prices([feed], {"T": previous}, NOW, GUARD)
    if reason is None:
        assert refused == {} and "T" in accepted
    else:
        assert accepted == {} and refused["T"].startswith(f"feed {FEED}: {reason}")


@pytest.mark.parametrize(
    ("answer", "feed_decimals", "price"),
    [
        (2_000 * 10**8, 8, 2_000 * 10**18),  # Chainlink's X / USD feeds
        (2_000 * 10**18, 18, 2_000 * 10**18),
        (2_000 * 10**20, 20, 2_000 * 10**18),
        (1, 0, 10**18),
    ],
)
def test_feed_answers_are_rescaled_to_one_unit_whatever_their_decimals(
    answer: int, feed_decimals: int, price: int
) -> None:
    accepted, _ = feed_prices([reading(answer=answer, feed_decimals=feed_decimals)], {}, NOW, GUARD)
    assert accepted["T"] == TokenPrice(price, 18)


def test_feeds_of_different_decimals_value_tokens_against_each_other() -> None:
    """1 WBTC (8 decimals, feed of 8) against WETH (18, feed of 18): 30,000 / 2,000 = 15 WETH."""
    wbtc = FeedReading("WBTC", FEED, 30_000 * 10**8, NOW, 8, 8)
    weth = FeedReading("WETH", FEED, 2_000 * 10**18, NOW, 18, 18)
    accepted, _ = feed_prices([wbtc, weth], {}, NOW, GUARD)
    assert value_wei(10**8, accepted["WBTC"], accepted["WETH"]) == 15 * 10**18


A, B, C = "A", "B", "C"


@pytest.mark.parametrize(
    ("books", "picked"),
    [
        ([{A: 1, B: 1, C: 1}, {A: 2, B: 2, C: 2}], 0),  # the protocol oracle's book first
        ([{A: 1, B: 1}, {A: 2, B: 2, C: 2}], 1),  # it lacks one token: the feeds', whole
        ([{A: 1, B: 1, C: 0}, {A: 2, B: 2, C: 2}], 1),  # a zero price is no price
        ([{A: 1, B: 1}, {C: 2}], None),  # never mixed: no book prices all three
        ([{}, {}], None),
    ],
)
def test_one_opportunity_is_valued_from_the_first_book_that_prices_all_its_tokens(
    books: list[dict[str, int]], picked: int | None
) -> None:
    typed = [{t: TokenPrice(p, 18) for t, p in book.items()} for book in books]
    found = first_complete(typed, (A, B, C))
    assert found is (None if picked is None else typed[picked])
