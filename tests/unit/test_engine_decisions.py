"""The engine's per-block decisions, with fakes at the adapter and executor boundary (no chain).

The fake adapter answers the `LendingAdapter` methods the engine calls from plain dicts; the fake
executor records what it was handed and answers `in_flight`. Each test states one decision: what
reaches the executor, and what is logged or counted, given the block and the prices.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, MutableMapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import pytest
import structlog
from prometheus_client import CollectorRegistry

from keeper import engine as engine_module
from keeper.chain.blocks import Block
from keeper.engine import Engine
from keeper.execution.direct_gas import DIRECT_GAS
from keeper.execution.executor import FIRST_WAVE, Attempt, Executor
from keeper.execution.flash import FlashPlan, FlashSetup, Refusal, Route
from keeper.obs.metrics import Metrics
from keeper.protocols.base import (
    ExecutorLeg,
    FeedReading,
    FeedUpdate,
    LiquidationQuote,
    MarketSnapshot,
    PositionKey,
    PriceInput,
    PriceKind,
    TokenPrice,
)
from keeper.protocols.price_feeds import PriceFeeds
from keeper.risk.opportunity import Opportunity
from keeper.risk.prices import PriceGuard
from keeper.state.sync import BlockUpdate, PositionSync
from keeper.state.txstate import SentTx

WETH, USDC, DAI = "0x" + "e1" * 20, "0x" + "c1" * 20, "0x" + "d1" * 20
POOL = "0x" + "90" * 20
ALICE, BOB, CAROL = "0x" + "a1" * 20, "0x" + "b1" * 20, "0x" + "c2" * 20
NOW = 1_700_000_000
GUARD = PriceGuard(max_age_s=3_600, max_jump_bps=2_000)
PRICE = {WETH: 2_000 * 10**8, USDC: 10**8, DAI: 10**8}
"""1e8 USD per whole token, Aave-oracle style; every token has 18 decimals here."""


def key(user: str) -> PositionKey:
    return PositionKey(POOL, user)


def quote(user: str, seized_weth: int, repaid: int, debt: str = USDC) -> LiquidationQuote:
    """Seize whole WETH, repay whole ``debt`` tokens: gross profit is the difference in value."""
    return LiquidationQuote(
        "aave_v3", POOL, user, WETH, debt, repaid * 10**18, seized_weth * 10**18,
        priced_by=frozenset({WETH, debt}),
    )  # fmt: skip


class FakeScreen:
    """Rows are refreshed from the adapter's current health only when touched (or on a rebuild),
    like the real screens: a row keeps its last estimate until its position is touched again."""

    margin = 0.01

    def __init__(self, adapter: FakeAdapter) -> None:
        self.adapter = adapter
        self.rows: list[PositionKey] = []
        self.cached: dict[PositionKey, float] = {}

    def estimates(self, timestamp: int, touched: Collection[PositionKey] | None) -> npt.NDArray[np.float64]:
        fresh = self.adapter.health if touched is None else {k: self.adapter.health[k] for k in touched}
        self.cached.update(fresh)
        self.rows = sorted(self.cached)
        return np.array([self.cached[k] for k in self.rows], dtype=np.float64)

    def key(self, row: int) -> PositionKey:
        return self.rows[row]


@dataclass
class FakeAdapter:
    """A `LendingAdapter` from dicts: health per position, quotes, prices as read at the block."""

    name: str = "aave"
    health: dict[PositionKey, float] = field(default_factory=dict)
    quotes: dict[PositionKey, LiquidationQuote] = field(default_factory=dict)
    prices: dict[str, PriceInput] = field(default_factory=dict)
    share: Callable[[Sequence[LiquidationQuote]], list[LiquidationQuote]] = list
    lends_prices: bool = True
    """False: like Morpho, its prices are not token prices and it lends none for valuing."""
    shared_orders: list[list[str]] = field(default_factory=list)
    """The users of the quotes handed to `share_cash`, in the order handed, per call."""
    quoted: list[str] = field(default_factory=list)
    """The users `quote` was asked for, in order."""
    quoted_at: list[int] = field(default_factory=list)
    raising: set[PositionKey] = field(default_factory=set)
    """Positions whose quote raises, as the exact maths does on a state it cannot price."""

    def __post_init__(self) -> None:
        self._screen = FakeScreen(self)

    def liquidatable(self, q: LiquidationQuote) -> None:
        self.health[PositionKey(q.market, q.user)] = 0.9
        self.quotes[PositionKey(q.market, q.user)] = q

    def snapshot(self) -> MarketSnapshot:
        reference = {t: TokenPrice(p.price, 18) for t, p in self.prices.items() if p.price > 0}
        if not self.lends_prices:
            reference = {}
        return MarketSnapshot(PriceKind.ASSET, self.prices, reference)

    def screen(self) -> FakeScreen:
        return self._screen

    def quote(self, position: PositionKey, timestamp: int) -> LiquidationQuote | None:
        self.quoted.append(position.user)
        self.quoted_at.append(timestamp)
        if position in self.raising:
            raise OverflowError("uint256 arithmetic overflow or underflow")
        return self.quotes.get(position) if self.health.get(position, 2.0) < 1 else None

    def executor_leg(self, q: LiquidationQuote) -> ExecutorLeg:
        return ExecutorLeg("aave", POOL, debt_to_cover=q.debt_repaid, lendable=10**30)

    def share_cash(self, quotes: Sequence[LiquidationQuote]) -> list[LiquidationQuote]:
        self.shared_orders.append([q.user for q in quotes])
        return self.share(quotes)

    def liquidation_call(self, q: LiquidationQuote) -> tuple[str, bytes]:
        return POOL, bytes.fromhex(q.user[2:])

    def feed_updates(self, logs: Sequence[dict[str, Any]]) -> list[FeedUpdate]:
        return []


@dataclass
class FakeTracked:
    adapter: FakeAdapter

    @property
    def name(self) -> str:
        return self.adapter.name


@dataclass
class FakeSync:
    protocols: list[FakeTracked]
    reorgs: int = 0

    def take_reopened(self) -> list[SentTx]:
        return []


class FakeStore:
    def in_flight(self) -> list[SentTx]:
        return []


@dataclass
class FakeExecutor:
    """Sends nothing: records what the engine hands over and which blocks it tracked."""

    busy: set[PositionKey] = field(default_factory=set)
    handed: list[list[Opportunity]] = field(default_factory=list)
    tracked_blocks: list[int] = field(default_factory=list)
    replacements_sent: list[int] = field(default_factory=list)
    last_timings: dict[str, float] = field(
        default_factory=lambda: {"wallet_ms": 0.0, "simulate_ms": 0.0, "sign_and_send_ms": 0.0}
    )
    first_sent_at: float | None = None
    dry_run: bool = False
    rpc: Any = None
    quoted_so_far: Callable[[], list[str]] = list
    """The adapter's quoted users, read at each hand-over (`quoted_when_handed`)."""
    quoted_when_handed: list[int] = field(default_factory=list)
    gas_handed: list[tuple[list[int | None] | None, bool]] = field(default_factory=list)
    """Per hand-over, the gas given per item and whether the calls are to be checked at it."""
    store: Any = field(default_factory=FakeStore)

    def in_flight(self, position: PositionKey) -> bool:
        return position in self.busy

    async def track(
        self,
        block_number: int,
        base_fee: int,
        still: Callable[[Any], bool],
        reopened: Any = (),
        defer_replacements: bool = False,
    ) -> list[Any]:
        self.tracked_blocks.append(block_number)
        return []

    async def send_replacements(self, block_number: int, base_fee: int) -> None:
        self.replacements_sent.append(block_number)

    async def attempt_all(
        self,
        items: Sequence[tuple[Opportunity, tuple[str, bytes]]],
        block_number: int,
        base_fee: int,
        gas: Sequence[int | None] | None = None,
        check_at_gas: bool = False,
    ) -> list[Attempt]:
        self.handed.append([o for o, _ in items])
        self.gas_handed.append((None if gas is None else list(gas), check_at_gas))
        self.first_sent_at = time.perf_counter() if items else None
        self.quoted_when_handed.append(len(self.quoted_so_far()))
        return [Attempt(o, "dry_run") for o, _ in items]

    @property
    def users(self) -> list[str]:
        """Users handed over in the last block that handed anything, in order."""
        return [o.quote.user for o in self.handed[-1]] if self.handed else []


def fresh(prices: dict[str, int] | None = None, updated_at: int = NOW) -> dict[str, PriceInput]:
    return {t: PriceInput(p, updated_at) for t, p in (prices or PRICE).items()}


FEED = "0x" + "fe" * 20


@dataclass
class FakeFeeds:
    """The ``[[price_feeds]]`` as the sync read them at the block: 8-decimal USD answers."""

    answers: dict[str, int] = field(default_factory=dict)
    updated_at: int = NOW
    max_age_s: int | None = None

    def readings(self) -> list[FeedReading]:
        return [
            FeedReading(t, FEED, a, self.updated_at, 8, 18, self.max_age_s) for t, a in self.answers.items()
        ]


def make_engine(
    adapter: FakeAdapter,
    executor: FakeExecutor | None = None,
    feeds: FakeFeeds | None = None,
    *others: FakeAdapter,
) -> tuple[Engine, FakeExecutor]:
    executor = executor or FakeExecutor()
    sync = cast(PositionSync, FakeSync([FakeTracked(a) for a in (adapter, *others)]))
    metrics = Metrics(CollectorRegistry())
    engine = Engine(sync, cast(Executor, executor), WETH, metrics, GUARD, cast(PriceFeeds, feeds))
    return engine, executor


def update(
    number: int, touched: set[PositionKey] | None = None, name: str = "aave", timestamp: int | None = None
) -> BlockUpdate:
    at = NOW + 12 * number if timestamp is None else timestamp
    block = Block(number, f"0x{number:064x}", f"0x{number - 1:064x}", at, 10**9, ())
    return BlockUpdate(block, {name: touched or set()})


async def on_block(
    engine: Engine, number: int, at_head: bool = True, **kw: Any
) -> list[MutableMapping[str, Any]]:
    with structlog.testing.capture_logs() as events:
        await engine.on_block(update(number, **kw), at_head=at_head)
    return events


def rejected_total(engine: Engine, asset: str) -> float:
    value = engine.metrics.registry.get_sample_value(
        "keeper_prices_rejected_total", {"protocol": "aave", "asset": asset}
    )
    return value or 0.0


@pytest.fixture
def adapter() -> FakeAdapter:
    adapter = FakeAdapter(prices=fresh())
    adapter.liquidatable(quote(ALICE, 1, 1_000))  # WETH/USDC: ~0.5 WETH gross
    adapter.liquidatable(quote(BOB, 1, 1_500, debt=DAI))  # WETH/DAI: ~0.25 WETH gross
    return adapter


async def test_every_liquidatable_position_goes_out_best_first(adapter: FakeAdapter) -> None:
    engine, executor = make_engine(adapter)
    await on_block(engine, 1)
    assert executor.users == [ALICE, BOB]
    assert [o.gross_profit_wei for o in executor.handed[0]] == [5 * 10**17, 25 * 10**16]


async def test_inventory_calls_go_with_their_path_gas_to_be_checked_at_it(adapter: FakeAdapter) -> None:
    engine, executor = make_engine(adapter)
    await on_block(engine, 1)
    assert executor.gas_handed == [([DIRECT_GAS["aave"]] * 2, True)]


@pytest.mark.parametrize(
    ("refused", "price", "updated_at", "reason"),
    [
        (DAI, 0, NOW, "zero or negative"),
        (DAI, 10**8, NOW + 12 - 7_200, "stale: updated 7200 s ago"),
    ],
)
async def test_a_refused_price_keeps_its_positions_from_the_executor(
    adapter: FakeAdapter, refused: str, price: int, updated_at: int, reason: str
) -> None:
    adapter.prices[refused] = PriceInput(price, updated_at)
    engine, executor = make_engine(adapter)
    events = await on_block(engine, 1)
    assert executor.users == [ALICE]  # BOB's quote is priced by DAI
    assert engine.rejected[refused].startswith(reason)
    (logged,) = [e for e in events if e["event"] == "price_rejected"]
    assert logged["asset"] == refused and logged["reason"].startswith(reason)
    assert rejected_total(engine, refused) == 1


async def test_a_jump_is_refused_for_the_block_it_happens_in_only(adapter: FakeAdapter) -> None:
    engine, executor = make_engine(adapter)
    await on_block(engine, 1)
    adapter.prices[DAI] = PriceInput(PRICE[DAI] * 3 // 2, NOW)  # +50 %, bound 20 %
    await on_block(engine, 2)
    assert executor.users == [ALICE] and engine.rejected[DAI].startswith("moved +50.00 % in one block")
    await on_block(engine, 3)
    assert engine.rejected == {} and executor.users == [ALICE, BOB]


async def test_a_jump_across_a_skipped_block_is_still_refused(adapter: FakeAdapter) -> None:
    """The bound compares with the last block whose prices were *checked*: a move that lands in a
    block skipped as behind head is refused at the next block the engine acts on."""
    engine, executor = make_engine(adapter)
    await on_block(engine, 1)
    adapter.prices[DAI] = PriceInput(PRICE[DAI] * 3 // 2, NOW)
    await on_block(engine, 2, at_head=False)
    await on_block(engine, 3)
    assert engine.rejected.keys() == {DAI} and executor.users == [ALICE]


async def test_a_jump_in_the_first_block_after_start_up_is_refused(adapter: FakeAdapter) -> None:
    engine, executor = make_engine(adapter)  # the sync has read the head at PRICE (start-up)
    adapter.prices[DAI] = PriceInput(PRICE[DAI] * 3 // 2, NOW)
    await on_block(engine, 1)
    assert DAI in engine.rejected and executor.users == [ALICE]


async def test_a_block_behind_head_only_settles_receipts(adapter: FakeAdapter) -> None:
    engine, executor = make_engine(adapter)
    events = await on_block(engine, 7, at_head=False)
    assert executor.tracked_blocks == [7]
    assert executor.handed == [] and adapter.shared_orders == []
    assert [e["event"] for e in events] == ["block_skipped_behind_head"]


async def test_a_quote_whose_maths_raises_is_an_error_for_that_position_only(adapter: FakeAdapter) -> None:
    adapter.liquidatable(quote(CAROL, 2, 1_000))
    adapter.raising.add(key(CAROL))
    engine, executor = make_engine(adapter)
    events = await on_block(engine, 1)
    assert executor.users == [ALICE, BOB]
    (failed,) = [e for e in events if e["event"] == "quote_failed"]
    assert failed["user"] == CAROL and "overflow" in failed["error"] and failed["log_level"] == "error"
    tx = SentTx(5, "0x" + "ab" * 32, "aave", POOL, CAROL, "0x", 1, 1, 1, 1, 1)
    assert engine.still_liquidatable(tx, NOW)  # unknown counts as liquidatable: no cancel, no "lost race"


async def test_a_block_whose_timestamp_went_back_is_quoted_no_earlier_than_the_last(
    adapter: FakeAdapter,
) -> None:
    engine, _ = make_engine(adapter)
    await on_block(engine, 1, timestamp=NOW + 100)
    adapter.quoted_at.clear()
    events = await on_block(engine, 2, timestamp=NOW + 90)
    assert set(adapter.quoted_at) == {NOW + 101}
    assert [e["event"] for e in events if e["event"] == "block_timestamp_went_back"] == [
        "block_timestamp_went_back"
    ]


async def test_after_shutdown_nothing_new_is_taken(adapter: FakeAdapter) -> None:
    engine, executor = make_engine(adapter)
    engine.accepting = False
    events = await on_block(engine, 1)
    assert executor.tracked_blocks == [1] and executor.handed == []
    assert not [e for e in events if e["event"] == "block_handled"]


async def test_cash_is_shared_best_first_and_the_shared_quotes_are_what_goes_out(
    adapter: FakeAdapter,
) -> None:
    adapter.liquidatable(quote(CAROL, 2, 1_000))  # the best: ~1.5 WETH gross

    def cash_for_one(quotes: Sequence[LiquidationQuote]) -> list[LiquidationQuote]:
        """The first quote takes the reserve's cash: later ones are paid in aTokens."""
        return [quotes[0], *(replace(q, receive_a_token=True) for q in quotes[1:])]

    adapter.share = cash_for_one
    engine, executor = make_engine(adapter)
    await on_block(engine, 1)
    assert adapter.shared_orders == [[CAROL, ALICE, BOB]]
    assert executor.users == [CAROL, ALICE, BOB]
    assert [o.quote.receive_a_token for o in executor.handed[0]] == [False, True, True]


async def test_a_position_in_flight_is_not_quoted_again(adapter: FakeAdapter) -> None:
    engine, executor = make_engine(adapter, FakeExecutor(busy={key(ALICE)}))
    await on_block(engine, 1)
    assert executor.users == [BOB]


async def test_a_quote_that_names_no_prices_fails_closed(adapter: FakeAdapter) -> None:
    """Prices it never named could not be checked: never acted on, and said as an error."""
    adapter.liquidatable(replace(quote(CAROL, 2, 1_000), priced_by=frozenset()))
    engine, executor = make_engine(adapter)
    events = await on_block(engine, 1)
    assert CAROL not in executor.users and executor.users == [ALICE, BOB]
    assert [e["user"] for e in events if e["event"] == "quote_without_prices"] == [CAROL]


async def test_an_opportunity_without_a_reference_price_is_dropped(adapter: FakeAdapter) -> None:
    other = "0x" + "0f" * 20  # a debt token no protocol prices: the quote cannot be weighed
    adapter.liquidatable(replace(quote(CAROL, 2, 1_000), debt_asset=other))
    engine, executor = make_engine(adapter)
    events = await on_block(engine, 1)
    assert executor.users == [ALICE, BOB]
    assert [e["user"] for e in events if e["event"] == "opportunity_unpriced"] == [CAROL]


async def test_a_position_the_exact_check_calls_healthy_is_not_handed_over(adapter: FakeAdapter) -> None:
    adapter.quotes[key(CAROL)] = quote(CAROL, 2, 1_000)
    adapter.health[key(CAROL)] = 1.005  # a screen candidate (within its margin), but healthy
    engine, executor = make_engine(adapter)
    await on_block(engine, 1)
    assert executor.users == [ALICE, BOB]


async def test_a_position_touched_in_a_skipped_block_is_screened_at_its_new_state(
    adapter: FakeAdapter,
) -> None:
    dave = "0x" + "da" * 20
    adapter.quotes[key(dave)] = quote(dave, 2, 1_000)
    adapter.health[key(dave)] = 1.5  # healthy when the screen is built
    engine, executor = make_engine(adapter)
    await on_block(engine, 1)
    adapter.health[key(dave)] = 0.8  # borrows more in block 2, which the engine skips
    await on_block(engine, 2, at_head=False, touched={key(dave)})
    await on_block(engine, 3)  # touches nobody
    assert dave in executor.users


MARKET = "0x" + "4d" * 32
"""A Morpho-style price key: a market id, not a token."""


@pytest.fixture
def morpho() -> FakeAdapter:
    """Priced by market oracles only: no reference price for any token (a Morpho-only keeper)."""
    adapter = FakeAdapter(name="morpho", prices={MARKET: PriceInput(2_000 * 10**36)}, lends_prices=False)
    for q in (quote(ALICE, 1, 1_000), quote(BOB, 1, 1_500, debt=DAI)):
        adapter.liquidatable(replace(q, protocol="morpho_blue", priced_by=frozenset({MARKET})))
    return adapter


async def test_without_feeds_a_protocol_that_lends_no_prices_values_nothing(morpho: FakeAdapter) -> None:
    engine, executor = make_engine(morpho)
    events = await on_block(engine, 1, name="morpho")
    assert executor.users == []
    unpriced = [e for e in events if e["event"] == "opportunity_unpriced"]
    assert sorted(e["user"] for e in unpriced) == [ALICE, BOB]
    debt = {ALICE: USDC, BOB: DAI}
    assert all(set(e["unpriced"]) == {WETH, debt[e["user"]]} for e in unpriced)
    assert {reason for e in unpriced for reason in e["unpriced"].values()} == {
        "no price source (no protocol oracle, no [[price_feeds]] entry)"
    }


async def test_feeds_value_what_no_protocol_oracle_prices(morpho: FakeAdapter) -> None:
    engine, executor = make_engine(morpho, None, FakeFeeds(PRICE))
    await on_block(engine, 1, name="morpho")
    assert executor.users == [ALICE, BOB]
    assert [o.gross_profit_wei for o in executor.handed[0]] == [5 * 10**17, 25 * 10**16]


async def test_a_protocol_oracle_comes_before_the_feeds(adapter: FakeAdapter) -> None:
    """Aave's own prices value its quotes even when a feed says otherwise (WETH at 4,000 here)."""
    engine, executor = make_engine(adapter, None, FakeFeeds({**PRICE, WETH: 4_000 * 10**8}))
    await on_block(engine, 1)
    assert [o.gross_profit_wei for o in executor.handed[0]] == [5 * 10**17, 25 * 10**16]


async def test_the_feeds_price_the_whole_opportunity_when_the_oracle_misses_one_token(
    adapter: FakeAdapter,
) -> None:
    """A collateral Aave does not list: the feeds value all three tokens (never a mix of the two)."""
    other = "0x" + "0f" * 20
    adapter.liquidatable(replace(quote(CAROL, 1, 1_000), collateral_asset=other))
    feeds = FakeFeeds({WETH: 4_000 * 10**8, USDC: 10**8, other: 3_000 * 10**8})
    engine, executor = make_engine(adapter, None, feeds)
    await on_block(engine, 1)
    valued = {o.quote.user: o.gross_profit_wei for o in executor.handed[0]}
    assert valued[CAROL] == 5 * 10**17  # (3,000 - 1,000) / 4,000 WETH, all at the feeds' prices
    assert valued[ALICE] == 5 * 10**17  # (2,000 - 1,000) / 2,000 WETH, all at Aave's


async def test_a_stale_feed_leaves_its_token_unpriced_and_says_why(morpho: FakeAdapter) -> None:
    feeds = FakeFeeds(PRICE, updated_at=NOW + 12 - 601, max_age_s=600)
    engine, executor = make_engine(morpho, None, feeds)
    events = await on_block(engine, 1, name="morpho")
    assert executor.users == []
    (alice,) = [e for e in events if e["event"] == "opportunity_unpriced" and e["user"] == ALICE]
    assert alice["unpriced"][WETH] == f"feed {FEED}: stale: updated 601 s ago (max 600 s)"
    rejected = [e for e in events if e["event"] == "price_rejected"]
    assert {e["asset"] for e in rejected} == set(PRICE) and {e["protocol"] for e in rejected} == {
        "price_feeds"
    }
    assert (
        engine.metrics.registry.get_sample_value(
            "keeper_prices_rejected_total", {"protocol": "price_feeds", "asset": WETH}
        )
        == 1
    )


async def test_a_feed_is_checked_again_every_block(morpho: FakeAdapter) -> None:
    feeds = FakeFeeds(PRICE)
    engine, executor = make_engine(morpho, None, feeds)
    feeds.answers = {**PRICE, DAI: PRICE[DAI] * 3 // 2}  # +50 % (bound 20 %): refused for one block
    await on_block(engine, 1, name="morpho")
    assert executor.users == [ALICE] and engine.feed_refused.keys() == {DAI}
    await on_block(engine, 2, name="morpho")
    assert engine.feed_refused == {} and executor.users == [ALICE, BOB]


async def test_a_token_the_protocol_oracle_refuses_is_not_priced_by_a_feed(
    adapter: FakeAdapter, morpho: FakeAdapter
) -> None:
    """Fail closed: Aave's DAI price is dead, so a Morpho quote owing DAI is not valued with DAI's feed."""
    adapter.prices[DAI] = PriceInput(0, NOW)
    engine, executor = make_engine(adapter, None, FakeFeeds(PRICE), morpho)
    events = await on_block(engine, 1)
    assert sorted((o.name, o.quote.user) for o in executor.handed[0]) == [("aave", ALICE), ("morpho", ALICE)]
    (bob,) = [e for e in events if e["event"] == "opportunity_unpriced"]
    assert (bob["protocol"], bob["user"]) == ("morpho", BOB)
    assert bob["unpriced"] == {DAI: "zero or negative (or the oracle reverted)"}


FLASH = FlashSetup("0x" + "ee" * 20, "0x" + "01" * 20, "0x" + "02" * 20, (500,), None, 100)


def under_water(count: int) -> tuple[FakeAdapter, list[str]]:
    """``count`` liquidatable positions, each less under water than the one before it."""
    adapter = FakeAdapter(prices=fresh())
    users = [f"0x{i + 1:040x}" for i in range(count)]
    for i, user in enumerate(users):
        adapter.liquidatable(quote(user, 1, 1_000))
        adapter.health[key(user)] = 0.5 + i / 1_000
    return adapter, users


def planner_paying(paying: set[str]) -> Callable[..., Any]:
    """`plan_flash` with every swap known: the ``paying`` users' liquidations pay, the others not."""

    async def plan(
        rpc: Any, setup: FlashSetup, legs: Sequence[tuple[Opportunity, Any]], *args: Any, **kw: Any
    ) -> tuple[list[FlashPlan], list[Refusal]]:
        plans, refused = [], []
        for o, _ in legs:
            if o.quote.user in paying:
                plans.append(FlashPlan(o, (setup.executor, b""), Route.MORPHO_CALLBACK, 500, 0, 1, 1))
            else:
                refused.append(Refusal(o, "flash: not profitable within 100 bps slippage"))
        return plans, refused

    return plan


def flash_engine(adapter: FakeAdapter) -> tuple[Engine, FakeExecutor]:
    engine, executor = make_engine(adapter, FakeExecutor(quoted_so_far=lambda: adapter.quoted))
    engine.flash = FLASH
    return engine, executor


async def test_flash_sends_its_first_wave_before_quoting_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    adapter, users = under_water(30)
    monkeypatch.setattr(engine_module, "plan_flash", planner_paying(set(users)))
    engine, executor = flash_engine(adapter)
    await on_block(engine, 1)
    handed = [[o.quote.user for o in wave] for wave in executor.handed if wave]
    assert handed == [users[:FIRST_WAVE], users[FIRST_WAVE:]]
    assert {check for _, check in executor.gas_handed} == {False}  # the plans' route gas, unchecked
    assert executor.quoted_when_handed[0] == FIRST_WAVE  # nothing else quoted before it left


async def test_flash_keeps_quoting_in_growing_waves_until_a_liquidation_pays(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The 8 most under water do not pay (their pools drained, say): the next 16 are quoted and
    planned, and the one of them that pays leaves before the last 6 are even quoted."""
    adapter, users = under_water(30)
    monkeypatch.setattr(engine_module, "plan_flash", planner_paying({users[19]}))
    engine, executor = flash_engine(adapter)
    events = await on_block(engine, 1)
    pairs = zip(executor.handed, executor.quoted_when_handed, strict=True)
    handed = [([o.quote.user for o in wave], quoted) for wave, quoted in pairs if wave]
    assert handed == [([users[19]], FIRST_WAVE * 3)]  # after 8 + 16 quotes, not 30
    skipped = {e["user"] for e in events if e["event"] == "opportunity_skipped"}
    assert skipped == set(users) - {users[19]}  # every other one planned and refused, once
    assert adapter.quoted == users


async def test_positions_that_did_not_pay_last_block_are_quoted_after_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The 10 most under water would not pay (no pool takes them at a profit): the block after, the
    first wave is made of the others, and it leaves after 8 quotes, not 24."""
    adapter, users = under_water(30)
    monkeypatch.setattr(engine_module, "plan_flash", planner_paying(set(users[10:])))
    engine, executor = flash_engine(adapter)
    await on_block(engine, 1)
    assert executor.quoted_when_handed[:2] == [FIRST_WAVE, FIRST_WAVE * 3]  # nothing, then 10..23
    adapter.quoted.clear()
    executor.handed.clear()
    executor.quoted_when_handed.clear()
    await on_block(engine, 2)
    first = next(wave for wave in executor.handed if wave)
    assert [o.quote.user for o in first] == users[10:18] and executor.quoted_when_handed[0] == FIRST_WAVE
    assert adapter.quoted == users[10:] + users[:10]  # the ten still quoted, last
