"""Per block: find every liquidatable position, value it, and hand the best to the executor.

Runs after the position sync applied the block (global state and touched positions re-read), so
every quote below is computed locally from state pinned to that block, at the timestamp the
liquidation can land at (the next second). Positions whose exact health is at or above 1 are
never attempted.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt
import structlog

from keeper.execution.executor import Attempt, Executor
from keeper.execution.txstate import SentTx
from keeper.obs.metrics import HEALTH_THRESHOLDS, Metrics
from keeper.protocols.aave_v3.adapter import AaveV3Adapter
from keeper.protocols.aave_v3.events import feed_answer
from keeper.protocols.aave_v3.liquidation import share_out_cash
from keeper.protocols.base import LiquidationQuote, PositionKey
from keeper.protocols.morpho_blue.adapter import MorphoBlueAdapter
from keeper.risk.opportunity import Opportunity, TokenPrice, gross_profit_wei, ranked
from keeper.risk.prices import PriceGuard, rejected_prices
from keeper.risk.screen import DEFAULT_MARGIN, AaveScreen, MorphoScreen
from keeper.state.sync import BlockUpdate, PositionSync, Tracked

log = structlog.get_logger(__name__)

DEFAULT_GUARD = PriceGuard(max_age_s=90_000, max_jump_bps=5_000)


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
    ) -> None:
        self.sync = sync
        self.executor = executor
        self.native_asset = native_asset
        self.metrics = metrics
        self.guard = guard
        self.rejected: dict[str, str] = {}
        """asset (Aave) or market id (Morpho) -> why its price is refused at this block."""
        self._last_prices: dict[str, int] = {}
        self.stats = EngineStats()
        self._aave_screens: dict[str, AaveScreen] = {}
        self._morpho_screens: dict[str, MorphoScreen] = {}
        self._screened_reorgs = 0
        self.accepting = True
        """Cleared on shutdown: no new opportunities, in-flight ones still tracked."""

    def check_prices(self, timestamp: int) -> None:
        """Refuse this block's bad prices (zero, stale, jumping): their positions are left alone."""
        prices: dict[str, int] = {}
        updated_at: dict[str, int] = {}
        labels: dict[str, tuple[str, str]] = {}
        for tracked in self.sync.protocols:
            adapter = tracked.adapter
            if isinstance(adapter, AaveV3Adapter) and adapter.pool_state is not None:
                for reserve in adapter.pool_state.reserves.values():
                    prices[reserve.asset] = adapter.pool_state.prices[reserve.asset]
                    updated_at[reserve.asset] = reserve.price_updated_at
                    labels[reserve.asset] = (tracked.name, "asset")
            elif isinstance(adapter, MorphoBlueAdapter):
                for market_id, state in adapter.markets.items():
                    prices[market_id] = state.price
                    labels[market_id] = (tracked.name, "market")
        self.rejected = rejected_prices(prices, updated_at, self._last_prices, timestamp, self.guard)
        self._last_prices = prices
        for key, reason in self.rejected.items():
            name, kind = labels[key]
            self.metrics.prices_rejected.labels(name, key).inc()
            log.warning("price_rejected", protocol=name, reason=reason, **{kind: key})

    def _uses_rejected(self, tracked: Tracked, quote: LiquidationQuote) -> bool:
        if not self.rejected:
            return False
        adapter = tracked.adapter
        if isinstance(adapter, AaveV3Adapter) and adapter.pool_state is not None:
            user = adapter.users.get(quote.user)
            reserves = adapter.pool_state.reserves
            used = {reserves[i].asset for i in user.flagged_reserve_ids() if i in reserves} if user else set()
            return bool(used & set(self.rejected))
        return quote.market in self.rejected

    def prices(self) -> dict[str, TokenPrice]:
        """Reference prices: every Aave reserve, from the pool state read at this block."""
        book: dict[str, TokenPrice] = {}
        for tracked in self.sync.protocols:
            adapter = tracked.adapter
            if isinstance(adapter, AaveV3Adapter) and adapter.pool_state is not None:
                for reserve in adapter.pool_state.reserves.values():
                    price = adapter.pool_state.prices[reserve.asset]
                    if reserve.asset not in self.rejected:
                        book.setdefault(reserve.asset, TokenPrice(price, reserve.config.decimals))
        return book

    def opportunities(
        self, timestamp: int, touched: Mapping[str, set[PositionKey]] | None = None
    ) -> list[Opportunity]:
        """Liquidatable positions, quoted exactly; the float screen picks which ones to check."""
        prices = self.prices()
        found = []
        for tracked in self.sync.protocols:
            for key in self._candidates(
                tracked, timestamp, None if touched is None else touched.get(tracked.name)
            ):
                if self.executor.in_flight(key):
                    continue  # a transaction for it is already out: nothing to decide this block
                quote = tracked.adapter.quote(key, timestamp)
                if quote is None or self._uses_rejected(tracked, quote):
                    continue
                gross = gross_profit_wei(quote, prices, self.native_asset)
                if gross is None:
                    log.warning("opportunity_unpriced", protocol=tracked.name, user=quote.user)
                    continue
                found.append(Opportunity(tracked.name, quote, gross))
        return ranked(found)

    def _candidates(
        self, tracked: Tracked, timestamp: int, touched: set[PositionKey] | None
    ) -> list[PositionKey]:
        """The screen, kept in step with the adapter: rebuilt at first and after a reorg, else only
        the rows of the positions this block touched are refreshed."""
        rebuild = touched is None or self._screened_reorgs != self.sync.reorgs
        adapter = tracked.adapter
        if isinstance(adapter, AaveV3Adapter) and adapter.pool_state is not None:
            screen = self._aave_screens.get(tracked.name)
            if screen is None or rebuild:
                screen = self._aave_screens[tracked.name] = AaveScreen()
                screen.set_users(adapter.users.values())
            else:
                screen.update_users(adapter.users[k.user] for k in touched or () if k.user in adapter.users)
            estimates = screen.estimates(adapter.pool_state, timestamp)
            self._record_estimates(tracked.name, estimates)
            flagged = np.flatnonzero(estimates < 1 + DEFAULT_MARGIN).tolist()
            users = screen.users
            return [PositionKey(adapter.pool, users[row]) for row in flagged]
        if isinstance(adapter, MorphoBlueAdapter):
            morpho = self._morpho_screens.get(tracked.name)
            if morpho is None or rebuild:
                morpho = self._morpho_screens[tracked.name] = MorphoScreen()
                morpho.set_positions(adapter.positions)
            else:
                morpho.update_positions(
                    {(k.market, k.user): adapter.positions[(k.market, k.user)] for k in touched or ()
                     if (k.market, k.user) in adapter.positions}
                )  # fmt: skip
            estimates = morpho.estimates(adapter.markets, timestamp)
            self._record_estimates(tracked.name, estimates)
            keys = morpho.keys
            return [
                PositionKey(*keys[row]) for row in np.flatnonzero(estimates < 1 + DEFAULT_MARGIN).tolist()
            ]
        return [PositionKey(h.market, h.user) for h in adapter.health(timestamp) if h.liquidatable]

    def _record_estimates(self, name: str, estimates: npt.NDArray[np.float64]) -> None:
        """Gauges from the screen's conservative estimates (display, not decisions)."""
        finite = estimates[np.isfinite(estimates)]
        self.metrics.positions.labels(name).set(len(finite))
        for threshold in HEALTH_THRESHOLDS:
            self.metrics.positions_below.labels(name, threshold).set(int((finite < float(threshold)).sum()))

    def still_liquidatable(self, tx: SentTx, timestamp: int) -> bool:
        for tracked in self.sync.protocols:
            if tracked.name == tx.protocol:
                return tracked.adapter.quote(PositionKey(tx.market, tx.user), timestamp) is not None
        return False

    async def on_block(self, update: BlockUpdate, at_head: bool = True) -> list[Attempt]:
        """``at_head`` False: newer blocks are already out, so only settle receipts and move on: acting
        on a stale block would be slower and likelier to lose than acting on the newest."""
        block = update.block
        at = block.timestamp + 1
        started_s = time.perf_counter()
        await self.executor.track(
            block.number, block.base_fee_wei, lambda tx: self.still_liquidatable(tx, at)
        )
        self.metrics.head_block.set(block.number)
        self.metrics.head_timestamp.set(block.timestamp)
        if not self.accepting or not at_head:
            if not at_head:
                log.info("block_skipped_behind_head", block=block.number)
            return []
        tracked_s = time.perf_counter()
        self._report_feeds(update)
        self.check_prices(block.timestamp)
        opportunities = self._with_cash(self.opportunities(at, update.touched))
        self._screened_reorgs = self.sync.reorgs
        screened_s = time.perf_counter()
        self.stats.opportunities += len(opportunities)
        calls = []
        for opportunity in opportunities:
            tracked = next(t for t in self.sync.protocols if t.name == opportunity.name)
            calls.append((opportunity, tracked.adapter.liquidation_call(opportunity.quote)))
        attempts = await self.executor.attempt_all(calls, block.number, block.base_fee_wei)
        done_s = time.perf_counter()
        for attempt in attempts:
            self._report(attempt, block.number)
        self.metrics.stage_latency.labels("received_to_screened").observe(screened_s - started_s)
        if opportunities:
            timings = self.executor.last_timings
            self.metrics.stage_latency.labels("screened_to_simulated").observe(
                (timings["wallet_ms"] + timings["simulate_ms"]) / 1000
            )
            self.metrics.stage_latency.labels("simulated_to_sent").observe(timings["sign_and_send_ms"] / 1000)
        log.info(
            "block_handled",
            block=block.number,
            opportunities=len(opportunities),
            track_ms=round((tracked_s - started_s) * 1000, 1),
            screen_ms=round((screened_s - tracked_s) * 1000, 1),
            execute_ms=round((done_s - screened_s) * 1000, 1),
            **(self.executor.last_timings if opportunities else {}),
        )
        return attempts

    def _report_feeds(self, update: BlockUpdate) -> None:
        """Price feed updates in this block: every position is re-screened at the new prices below
        (they were re-read at this block), so this only says what moved, and rejects bad answers."""
        for tracked in self.sync.protocols:
            if not isinstance(tracked.adapter, AaveV3Adapter):
                continue
            feeds = tracked.adapter.feeds()
            for entry in update.block.logs:
                answer = feed_answer(entry)
                if answer is None or answer[0] not in feeds:
                    continue
                feed, value = answer
                self.stats.feed_updates += 1
                self.metrics.feed_updates.labels(tracked.name, feeds[feed]).inc()
                log.info(
                    "feed_updated",
                    block=update.block.number,
                    protocol=tracked.name,
                    asset=feeds[feed],
                    feed=feed,
                    answer=str(value),
                )

    def _with_cash(self, opportunities: list[Opportunity]) -> list[Opportunity]:
        """Aave liquidations share each reserve's underlying cash, best first; the rest take aTokens."""
        out = list(opportunities)
        for tracked in self.sync.protocols:
            adapter = tracked.adapter
            if not isinstance(adapter, AaveV3Adapter) or adapter.pool_state is None:
                continue
            indexes = [i for i, o in enumerate(out) if o.name == tracked.name]
            cash = {r.asset: r.cash for r in adapter.pool_state.reserves.values()}
            shared = share_out_cash([out[i].quote for i in indexes], cash)
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
