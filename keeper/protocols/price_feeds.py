"""The keeper's own reference prices: the ``[[price_feeds]]`` Chainlink-compatible feeds, read per block.

Protocol oracles do not always price what an opportunity needs valued: Morpho Blue's oracles price a
market (collateral per loan token), not a token, so a keeper without Aave has no price for the
native asset at all. These feeds fill that gap. They are global state like a protocol's rates, so
the position sync reads them at each block it applies, in one ``aggregate3`` at the block's hash (run
alongside the adapters' reads, not after them): the feed's ``latestRoundData``, its ``decimals`` and
the token's ERC-20 ``decimals``, 3 calls per feed, one ``eth_call`` per block for every feed.
Whether a reading is usable (fresh, positive, scaled) is decided by the pure
`keeper.risk.prices.feed_prices`; this module only reads.
"""

from __future__ import annotations

from collections.abc import Sequence

from keeper.chain.abi import Function, contract
from keeper.chain.multicall import Call, Result, aggregate3
from keeper.chain.rpc import BlockTag, Rpc, block_param
from keeper.config import PriceFeedConfig

from .base import BlockRef, FeedReading

FEED = contract("common/AggregatorV3Interface")
ERC20 = contract("common/IERC20")
LATEST_ROUND_DATA = FEED.fn("latestRoundData")
FEED_DECIMALS = FEED.fn("decimals")
TOKEN_DECIMALS = ERC20.fn("decimals")
CALLS_PER_FEED = 3
ROUND_DATA_BYTES = 5 * 32
"""A call to an address without code "succeeds" with no data: short answers count as no answer."""


def _decimals(fn: Function, result: Result) -> int | None:
    if not result.success or len(result.data) < 32:
        return None
    value = int(fn.value(result.data))
    return value if value <= 77 else None  # uint8 in the ABI; anything else is not a scale


def reading_of(
    feed: PriceFeedConfig, round_data: Result, feed_decimals: Result, token_decimals: Result
) -> FeedReading:
    """One feed's results (allowed to fail) as a `FeedReading`; a revert reads as answer 0, time 0."""
    answer = updated_at = 0
    if round_data.success and len(round_data.data) >= ROUND_DATA_BYTES:
        fields = LATEST_ROUND_DATA.decode(round_data.data)
        answer, updated_at = int(fields["answer"]), int(fields["updatedAt"])
    return FeedReading(
        token=feed.token,
        feed=feed.feed,
        answer=answer,
        updated_at=updated_at,
        feed_decimals=_decimals(FEED_DECIMALS, feed_decimals),
        token_decimals=_decimals(TOKEN_DECIMALS, token_decimals),
        max_age_s=feed.max_age_s,
    )


async def read_feeds(rpc: Rpc, feeds: Sequence[PriceFeedConfig], block: BlockTag) -> list[FeedReading]:
    """Every feed at ``block`` (a hash pins it) in one ``aggregate3``; nothing here raises on a bad feed."""
    calls = []
    for feed in feeds:
        calls += [
            Call(feed.feed, LATEST_ROUND_DATA.call(), allow_failure=True),
            Call(feed.feed, FEED_DECIMALS.call(), allow_failure=True),
            Call(feed.token, TOKEN_DECIMALS.call(), allow_failure=True),
        ]
    results = await aggregate3(rpc, calls, block)
    return [
        reading_of(feed, *results[CALLS_PER_FEED * i : CALLS_PER_FEED * (i + 1)])
        for i, feed in enumerate(feeds)
    ]


class PriceFeeds:
    """The configured feeds and their readings at the last block read (empty before the first)."""

    def __init__(self, feeds: Sequence[PriceFeedConfig]) -> None:
        self.feeds = tuple(feeds)
        self._readings: list[FeedReading] = []

    async def refresh(self, rpc: Rpc, block: BlockRef) -> None:
        if self.feeds:
            self._readings = await read_feeds(rpc, self.feeds, block.hash)

    def readings(self) -> list[FeedReading]:
        return list(self._readings)


def _has_code(code: str | None) -> bool:
    return code not in ("0x", "0x0", None)


async def feed_problems(rpc: Rpc, feeds: Sequence[PriceFeedConfig], block: BlockRef) -> list[str]:
    """`keeper check-config`: one line per feed that could not price its token, naming the key."""
    codes = await rpc.batch(
        [("eth_getCode", [address, block_param(block.hash)]) for f in feeds for address in (f.feed, f.token)]
    )
    readings = await read_feeds(rpc, feeds, block.hash)
    problems = []
    for index, (feed, reading) in enumerate(zip(feeds, readings, strict=True)):
        key = f"price_feeds.{index}"
        feed_code, token_code = codes[2 * index], codes[2 * index + 1]
        if not _has_code(feed_code):
            problems.append(f"{key}.feed: {feed.feed} has no contract code on this chain")
            continue
        if not _has_code(token_code):
            problems.append(f"{key}.token: {feed.token} has no contract code on this chain")
        elif reading.token_decimals is None:
            problems.append(f"{key}.token: {feed.token} does not answer decimals() (not an ERC-20?)")
        if reading.feed_decimals is None:
            problems.append(f"{key}.feed: {feed.feed} does not answer decimals() (not a Chainlink feed?)")
        if reading.updated_at == 0 and reading.answer == 0:
            problems.append(f"{key}.feed: {feed.feed} latestRoundData() reverted or did not answer")
        elif reading.answer <= 0:
            problems.append(f"{key}.feed: {feed.feed} answers {reading.answer}, not a price above 0")
    return problems
