"""Per block: find every liquidatable position, value it, and hand the best to the executor.

Runs after the position sync applied the block (global state and touched positions re-read), so
every quote below is computed locally from state pinned to that block, at the timestamp the
liquidation can land at (the next second). Positions whose exact health is at or above 1 are
never attempted.

Valuing (gross profit in the native asset) uses two price books, in this order: the protocol
oracles' reference prices (Aave's), then the keeper's ``[[price_feeds]]``. The protocol's oracle
comes first because it is what the protocol sized the liquidation with, so an Aave quote valued with
it is exactly its bonus; the feeds price what no protocol oracle does (Morpho's tokens, the native
asset of a keeper without Aave). One opportunity is valued with one book, never a mix (their units
may differ), and a token whose price any source refused this block is priced by neither.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt
import structlog

from keeper.chain.blocks import Block
from keeper.execution.direct_gas import direct_gas
from keeper.execution.executor import FIRST_WAVE, Attempt, Executor
from keeper.execution.flash import FlashPlan, FlashSetup, plan_flash
from keeper.execution.venues import VenueBook, discover_pools, refresh_venue_book
from keeper.obs.metrics import HEALTH_THRESHOLDS, Metrics
from keeper.protocols.base import LiquidationQuote, PositionKey, TokenPrice
from keeper.protocols.price_feeds import PriceFeeds
from keeper.risk.opportunity import Opportunity, first_complete, gross_profit_wei, ranked
from keeper.risk.prices import PriceGuard, feed_prices, rejected_prices
from keeper.state.sync import BlockUpdate, PositionSync, Tracked
from keeper.state.txstate import SentTx

log = structlog.get_logger(__name__)

DEFAULT_GUARD = PriceGuard(max_age_s=90_000, max_jump_bps=5_000)
UNPAID_REASONS = ("not profitable after gas", "flash: not profitable")
"""Skip reasons that say a liquidation would not pay (`Engine._screened` puts those positions last)."""
FEEDS_LABEL = "price_feeds"
"""The ``protocol`` of logs and metrics about the ``[[price_feeds]]``."""


@dataclass
class EngineStats:
    opportunities: int = 0
    attempts: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    feed_updates: int = 0


class Engine:
    def __init__(
        self,
        sync: PositionSync,
        executor: Executor,
        native_asset: str,
        metrics: Metrics,
        guard: PriceGuard = DEFAULT_GUARD,
        feeds: PriceFeeds | None = None,
        flash: FlashSetup | None = None,
    ) -> None:
        self.sync = sync
        self.feeds = feeds or PriceFeeds(())
        """Read by the sync at each block (pass the sync's own); the engine only checks and uses them."""
        self.flash = flash
        """Set: liquidations go through the executor contract (`keeper.execution.flash`)."""
        self._venues: VenueBook | None = None
        """The flash strategy's followed pools and lender state, read each block (`_read_venues`)."""
        self._plans: dict[tuple[str, str], FlashPlan] = {}
        self._sales_in_flight: dict[tuple[str, str], tuple[tuple[str, str], int]] = {}
        """(market, user) of a flash liquidation in flight -> ((collateral, debt), collateral it sells)."""
        """This block's flash plans by (market, user), for the log."""
        self.executor = executor
        self.native_asset = native_asset
        self.metrics = metrics
        self.guard = guard
        self.rejected: dict[str, str] = {}
        """Price key (Aave: asset; Morpho: market id) -> why its price is refused at this block."""
        self.feed_book: dict[str, TokenPrice] = {}
        self.feed_refused: dict[str, str] = {}
        """Token -> why its ``[[price_feeds]]`` answer is refused at this block."""
        self._last_answers = {r.token: r.answer for r in self.feeds.readings()}
        self._last_prices: dict[str, int] = {
            key: price.price for t in sync.protocols for key, price in t.adapter.snapshot().prices.items()
        }
        """The previous checked block's prices; at first the head the sync read at start-up, so a jump
        in the first block handled is refused too."""
        self._touched_unscreened: dict[str, set[PositionKey]] = {}
        """Positions re-read in blocks that were not screened (behind head, shutting down): the next
        screened block refreshes their rows too, so none is screened on its old state."""
        self.stats = EngineStats()
        metrics.zero(
            {t.name: t.adapter.snapshot().prices.keys() for t in sync.protocols},
            [r.token for r in self.feeds.readings()],
            FEEDS_LABEL,
        )
        self._quoting_at = 0
        """The timestamp the last handled block was quoted at: a later block is never quoted earlier
        (a clock that goes back would otherwise put the quote before the reserves' last update)."""
        self._unpaid_last_block: set[tuple[str, PositionKey]] = set()
        """(protocol, position) of the last handled block's liquidations that would not pay."""
        self._screened_reorgs: int | None = None
        """The sync's reorg count when the screens were last built: None rebuilds them."""
        self.accepting = True
        """Cleared on shutdown: no new opportunities, in-flight ones still tracked."""

    def check_prices(self, timestamp: int) -> None:
        """Refuse this block's bad prices (zero, stale, jumping): their positions are left alone."""
        prices: dict[str, int] = {}
        updated_at: dict[str, int] = {}
        labels: dict[str, tuple[str, str]] = {}
        for tracked in self.sync.protocols:
            snapshot = tracked.adapter.snapshot()
            for key, price in snapshot.prices.items():
                prices[key], updated_at[key] = price.price, price.updated_at
                labels[key] = (tracked.name, snapshot.price_kind)
        self.rejected = rejected_prices(prices, updated_at, self._last_prices, timestamp, self.guard)
        self._last_prices = prices
        for key, reason in self.rejected.items():
            name, kind = labels[key]
            self.metrics.prices_rejected.labels(name, key).inc()
            log.warning("price_rejected", protocol=name, reason=reason, **{kind: key})
        readings = self.feeds.readings()
        self.feed_book, self.feed_refused = feed_prices(readings, self._last_answers, timestamp, self.guard)
        self._last_answers = {r.token: r.answer for r in readings}
        for token, reason in self.feed_refused.items():
            self.metrics.prices_rejected.labels(FEEDS_LABEL, token).inc()
            log.warning("price_rejected", protocol=FEEDS_LABEL, reason=reason, asset=token)

    def prices(self) -> list[dict[str, TokenPrice]]:
        """The price books for valuing, in order: the protocol oracles' (the first protocol to price a
        token wins), then the feeds'; a token refused by any source this block is in neither."""
        refused = self.rejected.keys() | self.feed_refused.keys()
        book: dict[str, TokenPrice] = {}
        for tracked in self.sync.protocols:
            for token, price in tracked.adapter.snapshot().reference_prices.items():
                if token not in refused:
                    book.setdefault(token, price)
        return [book, {t: p for t, p in self.feed_book.items() if t not in refused}]

    def _unpriced(self, quote: LiquidationQuote, books: list[dict[str, TokenPrice]]) -> dict[str, str]:
        """Token -> why no book prices it, for the log; empty when each is priced, but by different books."""
        reasons = {}
        for token in (quote.collateral_asset, quote.debt_asset, self.native_asset):
            if any(token in book for book in books):
                continue
            refused = self.feed_refused.get(token) or self.rejected.get(token)
            reasons[token] = refused or "no price source (no protocol oracle, no [[price_feeds]] entry)"
        return reasons

    def opportunities(
        self, timestamp: int, touched: Mapping[str, set[PositionKey]] | None = None
    ) -> list[Opportunity]:
        """Liquidatable positions, quoted exactly, best first; the float screen picks which to check."""
        found, _ = self._quoted(self._screened(timestamp, touched), timestamp)
        return found

    def _screened(
        self, timestamp: int, touched: Mapping[str, set[PositionKey]] | None
    ) -> list[tuple[Tracked, PositionKey]]:
        """Every protocol's candidates, the most under water by the screen's estimate first, except
        that those that would not pay in the last block handled come after all the others: after a
        staircase of shocks the most under water are often positions no pool can take at a profit,
        and a first wave of them would hold back the first transaction (they are still quoted)."""
        rows = []
        for tracked in self.sync.protocols:
            mine = None if touched is None else touched.get(tracked.name, set())
            rows += [
                (estimate, i, tracked, key)
                for i, (key, estimate) in enumerate(self._candidates(tracked, timestamp, mine))
            ]
        unpaid = self._unpaid_last_block
        rows.sort(key=lambda row: ((row[2].name, row[3]) in unpaid, row[0], row[1]))
        return [(tracked, key) for _, _, tracked, key in rows]

    def _quoted(
        self, candidates: list[tuple[Tracked, PositionKey]], timestamp: int, limit: int | None = None
    ) -> tuple[list[Opportunity], int]:
        """The candidates' exact quotes, valued, best first, and how many candidates were used: with
        ``limit``, quoting stops once that many opportunities are found (the first wave)."""
        books = self.prices()
        found: list[Opportunity] = []
        for used, (tracked, key) in enumerate(candidates, 1):
            opportunity = self._opportunity(tracked, key, timestamp, books)
            if opportunity is not None:
                found.append(opportunity)
                if limit is not None and len(found) >= limit:
                    return ranked(found), used
        return ranked(found), len(candidates)

    def _opportunity(
        self, tracked: Tracked, key: PositionKey, timestamp: int, books: list[dict[str, TokenPrice]]
    ) -> Opportunity | None:
        if self.executor.in_flight(key):
            return None  # a transaction for it is already out: nothing to decide this block
        try:
            quote = tracked.adapter.quote(key, timestamp)
        except (ArithmeticError, ValueError) as exc:
            _quote_failed(tracked, key, timestamp, exc)
            return None
        if quote is None:
            return None
        if not quote.priced_by:  # an adapter bug: its prices could not be checked, so fail closed
            log.error("quote_without_prices", protocol=tracked.name, market=quote.market, user=quote.user)
            return None
        if quote.priced_by & self.rejected.keys():
            return None
        tokens = (quote.collateral_asset, quote.debt_asset, self.native_asset)
        book = first_complete(books, tokens)
        gross = None if book is None else gross_profit_wei(quote, book, self.native_asset)
        if gross is None:
            unpriced = self._unpriced(quote, books) or {"*": "no one source prices all its tokens"}
            log.warning(
                "opportunity_unpriced",
                protocol=tracked.name,
                market=quote.market,
                user=quote.user,
                unpriced=unpriced,
            )
            return None
        return Opportunity(tracked.name, quote, gross)

    def _candidates(
        self, tracked: Tracked, timestamp: int, touched: set[PositionKey] | None
    ) -> list[tuple[PositionKey, float]]:
        """The adapter's screen, kept in step with it: rebuilt at first and after a reorg, else only
        the rows of the positions this block touched are refreshed. (key, estimate) per candidate."""
        rebuild = touched is None or self._screened_reorgs != self.sync.reorgs
        screen = tracked.adapter.screen()
        estimates = screen.estimates(timestamp, None if rebuild else touched)
        self._record_estimates(tracked.name, estimates)
        rows = np.flatnonzero(estimates < 1 + screen.margin)
        return [
            (screen.key(row), estimate)
            for row, estimate in zip(rows.tolist(), estimates[rows].tolist(), strict=True)
        ]

    def _record_estimates(self, name: str, estimates: npt.NDArray[np.float64]) -> None:
        """Gauges from the screen's conservative estimates (display, not decisions)."""
        finite = estimates[np.isfinite(estimates)]
        self.metrics.positions.labels(name).set(len(finite))
        for threshold in HEALTH_THRESHOLDS:
            self.metrics.positions_below.labels(name, threshold).set(int((finite < float(threshold)).sum()))

    def still_liquidatable(self, tx: SentTx, timestamp: int) -> bool:
        """Whether ``tx``'s position can still be liquidated; a quote the maths cannot compute counts
        as yes (a revert is then not called a lost race, and nothing is cancelled for it)."""
        key = PositionKey(tx.market, tx.user)
        for tracked in self.sync.protocols:
            if tracked.name == tx.protocol:
                try:
                    return tracked.adapter.quote(key, timestamp) is not None
                except (ArithmeticError, ValueError) as exc:
                    _quote_failed(tracked, key, timestamp, exc)
                    return True
        return False

    async def on_block(self, update: BlockUpdate, at_head: bool = True) -> list[Attempt]:
        """``at_head`` False: newer blocks are already out, so only settle receipts and move on: acting
        on a stale block would be slower and likelier to lose than acting on the newest."""
        block = update.block
        at = max(block.timestamp + 1, self._quoting_at)
        if at > block.timestamp + 1:  # the chain's clock went back: never quote before state it showed
            log.warning("block_timestamp_went_back", timestamp=block.timestamp, quoting_at=at)
        self._quoting_at = at
        started_s = time.perf_counter()
        tracking = self.executor.track(
            block.number,
            block.base_fee_wei,
            lambda tx: self.still_liquidatable(tx, at),
            self.sync.take_reopened(),
            defer_replacements=True,  # sent after this block's new liquidations, below
        )
        if self.flash is not None and self.flash.factory is not None and at_head and self.accepting:
            await asyncio.gather(tracking, self._read_venues(block.hash))
        else:
            await tracking
        self.metrics.head_block.set(block.number)
        self.metrics.head_timestamp.set(block.timestamp)
        for name, keys in update.touched.items():
            self._touched_unscreened.setdefault(name, set()).update(keys)
        if not self.accepting or not at_head:
            if not at_head:
                log.info("block_skipped_behind_head", block=block.number)
            await self.executor.send_replacements(block.number, block.base_fee_wei)
            return []
        tracked_s = time.perf_counter()
        self._report_feeds(update)
        self.check_prices(block.timestamp)
        touched, self._touched_unscreened = self._touched_unscreened, {}
        candidates = self._screened(at, touched)
        live_flash = self.flash is not None and not self.flash.simulate and not self.executor.dry_run
        first, used = self._quoted(candidates, at, FIRST_WAVE if live_flash else None)
        first = self._with_cash(first)
        self._screened_reorgs = self.sync.reorgs
        screened_s = time.perf_counter()
        attempts, sent_at, planned_s, opportunities = await self._execute(first, candidates[used:], at, block)
        self._remember_sales(attempts)
        self._unpaid_last_block = {
            (a.opportunity.name, PositionKey(a.opportunity.quote.market, a.opportunity.quote.user))
            for a in attempts
            if a.outcome == "skipped" and a.reason.startswith(UNPAID_REASONS)
        }
        await self.executor.send_replacements(block.number, block.base_fee_wei)
        self.stats.opportunities += len(opportunities)
        done_s = time.perf_counter()
        reaction = {} if sent_at is None else {"reaction_ms": round((sent_at - started_s) * 1000, 1)}
        for attempt in attempts:
            self._report(attempt, block.number)
        self.metrics.stage_latency.labels("received_to_screened").observe(screened_s - started_s)
        if opportunities:
            timings = self.executor.last_timings
            # a block whose liquidations all waited (behind the keeper's own, after a restart) has no timings
            self.metrics.stage_latency.labels("screened_to_simulated").observe(
                (timings.get("wallet_ms", 0.0) + timings.get("simulate_ms", 0.0)) / 1000
            )
            self.metrics.stage_latency.labels("simulated_to_sent").observe(
                timings.get("sign_and_send_ms", 0.0) / 1000
            )
        log.info(
            "block_handled",
            block=block.number,
            opportunities=len(opportunities),
            track_ms=round((tracked_s - started_s) * 1000, 1),
            screen_ms=round((screened_s - tracked_s) * 1000, 1),
            execute_ms=round((done_s - screened_s) * 1000, 1),
            plan_ms=round((planned_s - screened_s) * 1000, 1),
            **(self.executor.last_timings if opportunities else {}),
            **reaction,
        )
        return attempts

    async def _read_venues(self, block_hash: str) -> None:
        """The flash planner's pools, lender balances and premiums at this block, beside the receipts:
        sales on followed pools are then computed locally, with no round trip after screening."""
        assert self.flash is not None and self.flash.factory is not None
        snapshots = [t.adapter.snapshot() for t in self.sync.protocols]
        tokens = {token for s in snapshots for token in s.tokens}
        rpc = self.executor.rpc
        if self._venues is None:
            pools = await discover_pools(rpc, self.flash.factory, tokens, self.flash.fee_tiers)
            self._venues = VenueBook(pools)
            log.info("venue_pools_followed", pools=len(pools.pools), tokens=len(tokens))
        spenders = {spender for s in snapshots for spender in s.spenders.values()}
        await refresh_venue_book(rpc, self._venues, self.flash.morpho, tokens, spenders, block_hash)

    async def _execute(
        self, first: list[Opportunity], remaining: list[tuple[Tracked, PositionKey]], at: int, block: Block
    ) -> tuple[list[Attempt], float | None, float, list[Opportunity]]:
        """Plan and hand the block's opportunities to the executor: (attempts, when the first
        transaction went to the RPC, when the first plan was ready, every opportunity planned).

        Live flash: the exact maths, the swap and the contract's guards decide, so nothing is
        simulated on the way out, and the first wave (the first `FIRST_WAVE` opportunities found, the
        most under water first) is quoted, planned and sent before the other candidates are quoted.
        While no plan of it pays (pools drained by earlier sales, say), the next candidates are
        quoted and planned in waves twice as large, each sent as soon as it is planned; once one
        transaction is out, the rest are ranked, planned with running totals that count the earlier
        waves' sales, and sent. Otherwise (inventory, dry run, simulate_flash) ``first`` is every
        opportunity."""
        live_flash = self.flash is not None and not self.flash.simulate and not self.executor.dry_run
        first, deferred = self._defer_behind_own_swaps(first, block.number)
        if deferred:  # the rest are not even quoted: they wait with these
            return deferred, None, time.perf_counter(), []
        planned: list[Opportunity] = []
        attempts: list[Attempt] = []
        sent_at: float | None = None
        planned_s: float | None = None
        timings: dict[str, float] = {}
        wave, limit = first, FIRST_WAVE
        while True:
            calls, refused = await self._calls(planned + wave, block.hash, already=len(planned))
            planned_s = planned_s or time.perf_counter()
            planned += wave
            attempts += refused + await self._attempt(calls, block, live_flash)
            if calls and sent_at is None:
                sent_at = self.executor.first_sent_at
                timings |= {k: v for k, v in self.executor.last_timings.items() if k.startswith("first_")}
            timings = _summed(timings, self.executor.last_timings)
            if not remaining:
                break
            limit = limit * 2 if sent_at is None else len(remaining)  # then all the rest, ranked
            found, used = self._quoted(remaining, at, limit)
            remaining = remaining[used:]
            wave = self._with_cash(planned + found)[len(planned) :]
            if not wave:
                break
        self.executor.last_timings = timings
        return attempts, sent_at, planned_s, planned

    def _remember_sales(self, attempts: list[Attempt]) -> None:
        """Flash sales sent this block: until mined, the next blocks' plans sell after them."""
        for attempt in attempts:
            q = attempt.opportunity.quote
            if attempt.outcome == "sent" and (q.market, q.user) in self._plans:
                self._sales_in_flight[(q.market, q.user)] = (
                    (q.collateral_asset, q.debt_asset),
                    q.collateral_seized,
                )

    def _pending_sales(self) -> dict[tuple[str, str], int]:
        """(collateral, debt) -> collateral still to be sold by flash liquidations in flight."""
        for market, user in list(self._sales_in_flight):
            if not self.executor.in_flight(PositionKey(market, user)):
                del self._sales_in_flight[(market, user)]
        pending: dict[tuple[str, str], int] = {}
        for pair, seized in self._sales_in_flight.values():
            pending[pair] = pending.get(pair, 0) + seized
        return pending

    async def _attempt(
        self, calls: list[tuple[Opportunity, tuple[str, bytes]]], block: Block, live_flash: bool
    ) -> list[Attempt]:
        """Live flash: each plan's route gas, unsimulated (the contract's guards stop a loss). Inventory:
        each direct call's path gas, checked with one ``eth_call`` at its limit. Otherwise (dry run
        or simulate_flash with the flash strategy) every call is estimated."""
        if live_flash:
            gas: list[int | None] | None = [self._plans[(o.quote.market, o.quote.user)].gas for o, _ in calls]
        elif self.flash is None:
            adapters = {t.name: t.adapter for t in self.sync.protocols}
            gas = [direct_gas(adapters[o.name].executor_leg(o.quote)) for o, _ in calls]
        else:
            gas = None
        check = self.flash is None
        return await self.executor.attempt_all(calls, block.number, block.base_fee_wei, gas, check)

    def _defer_behind_own_swaps(
        self, opportunities: list[Opportunity], block_number: int
    ) -> tuple[list[Opportunity], list[Attempt]]:
        """Flash: while liquidations the keeper sent in an earlier block are still unmined, new ones
        are mined after them (nonce order), so their swaps sell into pools the earlier ones move
        first. The sales this process sent are known and counted (`_pending_sales`); in flight
        liquidations whose sales it does not know (sent before a restart) make new ones wait."""
        if self.flash is None or not opportunities:
            return opportunities, []
        self._pending_sales()  # forgets what was mined since
        known = self._sales_in_flight
        waiting = [
            tx
            for tx in self.executor.store.in_flight()
            if tx.holds_position
            and not tx.is_approval
            and tx.sent_block < block_number
            and (tx.market, tx.user) not in known
        ]
        if not waiting:
            return opportunities, []
        reason = f"flash: {len(waiting)} own liquidations from before a restart still pending"
        return [], [Attempt(o, "skipped", reason) for o in opportunities]

    async def _calls(
        self, opportunities: list[Opportunity], block_hash: str, already: int = 0
    ) -> tuple[list[tuple[Opportunity, tuple[str, bytes]]], list[Attempt]]:
        """Each opportunity's transaction: the protocol call (inventory), or an executor call whose
        value comes from the swap (flash; those that would not pay are skipped here). The first
        ``already`` were handed over before: they are planned again only so that the others' swaps
        count their sales, and left out of the result."""
        adapters = {t.name: t.adapter for t in self.sync.protocols}
        if self.flash is None:
            return [(o, adapters[o.name].liquidation_call(o.quote)) for o in opportunities[already:]], []
        legs = [(o, adapters[o.name].executor_leg(o.quote)) for o in opportunities]
        if not legs:
            return [], []
        plans, refusals = await plan_flash(
            self.executor.rpc,
            self.flash,
            legs,
            self.prices(),
            self.native_asset,
            block_hash,
            book=self._venues,
            pending=self._pending_sales(),
        )
        done = {(o.quote.market, o.quote.user) for o in opportunities[:already]}
        plans = [p for p in plans if (p.opportunity.quote.market, p.opportunity.quote.user) not in done]
        refusals = [r for r in refusals if (r.opportunity.quote.market, r.opportunity.quote.user) not in done]
        new = {(p.opportunity.quote.market, p.opportunity.quote.user): p for p in plans}
        self._plans = self._plans | new if already else new
        skipped = [Attempt(r.opportunity, "skipped", r.reason) for r in refusals]
        return [(p.opportunity, p.call) for p in plans], skipped

    def _report_feeds(self, update: BlockUpdate) -> None:
        """Price feed updates in this block: every position is re-screened at the new prices below
        (they were re-read at this block), so this only says what moved."""
        for tracked in self.sync.protocols:
            for feed_update in tracked.adapter.feed_updates(update.block.logs):
                self.stats.feed_updates += 1
                self.metrics.feed_updates.labels(tracked.name, feed_update.price_key).inc()
                log.info(
                    "feed_updated",
                    block=update.block.number,
                    protocol=tracked.name,
                    asset=feed_update.price_key,
                    feed=feed_update.feed,
                    answer=str(feed_update.answer),
                )

    def _with_cash(self, opportunities: list[Opportunity]) -> list[Opportunity]:
        """Each protocol's quotes share what they draw on (Aave: a reserve's cash), best first."""
        out = list(opportunities)
        for tracked in self.sync.protocols:
            indexes = [i for i, o in enumerate(out) if o.name == tracked.name]
            shared = tracked.adapter.share_cash([out[i].quote for i in indexes])
            for i, quote in zip(indexes, shared, strict=True):
                out[i] = replace(out[i], quote=quote)
        return out

    def _report(self, attempt: Attempt, block: int) -> None:
        q = attempt.opportunity.quote
        fields = {
            "block": block,
            "protocol": attempt.opportunity.name,
            "market": q.market,
            "user": q.user,
            "collateral_asset": q.collateral_asset,
            "debt_asset": q.debt_asset,
            "debt_repaid": str(q.debt_repaid),
            "collateral_seized": str(q.collateral_seized),
            "receive_a_token": q.receive_a_token,
            "gross_profit_wei": str(attempt.opportunity.gross_profit_wei),
        }
        plan = self._plans.get((q.market, q.user)) if self.flash is not None else None
        if plan is not None:
            fields |= {
                "route": plan.route.name.lower(),
                "swap_fee_tier": plan.fee,
                "swap_out": str(plan.swap_out),
                "expected_profit": str(plan.expected_profit),
                "min_profit": str(plan.min_profit),
            }
        self.stats.attempts[attempt.outcome] = self.stats.attempts.get(attempt.outcome, 0) + 1
        name = attempt.opportunity.name
        self.metrics.opportunities.labels(name, "seen").inc()
        if attempt.outcome == "sent":
            self.metrics.opportunities.labels(name, "attempted").inc()
        elif attempt.outcome == "dry_run":
            self.metrics.dry_runs.labels(name).inc()
        if attempt.outcome == "skipped":
            reason = attempt.reason.split(":")[0]
            self.stats.skipped[reason] = self.stats.skipped.get(reason, 0) + 1
            self.metrics.opportunities.labels(name, "skipped").inc()
            self.metrics.skipped.labels(name, reason).inc()
            log.info("opportunity_skipped", reason=attempt.reason, **fields)
        else:
            event = "liquidation_sent" if attempt.outcome == "sent" else "liquidation_dry_run"
            log.info(
                event,
                tx=attempt.tx_hash or None,
                gas_limit=attempt.gas_limit,
                expected_net_profit_wei=str(attempt.expected_net_profit_wei),
                **fields,
            )


def _summed(total: Mapping[str, float], more: Mapping[str, float]) -> dict[str, float]:
    """Step timings of several `attempt_all` calls added up (the first wave's stay the first's)."""
    out = dict(total)
    for key, value in more.items():
        if not key.startswith("first_"):
            out[key] = round(out.get(key, 0.0) + value, 1)
    return out


def _quote_failed(tracked: Tracked, key: PositionKey, timestamp: int, exc: Exception) -> None:
    """A quote whose maths raised (what the contract would revert on: a state the keeper did not
    expect) is an error in the log, not the end of the daemon: one position must not stop the rest."""
    log.error(
        "quote_failed", protocol=tracked.name, market=key.market, user=key.user, at=timestamp, error=str(exc)
    )
