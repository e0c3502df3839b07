"""The Morpho Blue adapter: the imperative shell around the pure state, math and liquidation modules."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt

from keeper.chain.rpc import Rpc
from keeper.config import MorphoBlueConfig
from keeper.protocols.base import (
    BlockRef,
    ExecutorLeg,
    FeedUpdate,
    LiquidationQuote,
    LogFilter,
    MarketSnapshot,
    NotLiquidatable,
    PositionHealth,
    PositionKey,
    PriceInput,
    PriceKind,
)
from keeper.protocols.screening import DEFAULT_MARGIN

from .events import BORROWER_TOPICS, CREATE_MARKET, MARKET_PARAMS, MORPHO, created_markets, touched_positions
from .liquidation import largest_liquidation
from .math import ORACLE_PRICE_SCALE, borrowed_assets, health_factor, market_at
from .reader import read_market_params, read_markets_and_positions
from .screen import MorphoScreen
from .state import MarketParams, MarketState, Position

LIQUIDATE = MORPHO.fn("liquidate")


class MorphoBlueAdapter:
    protocol = "morpho_blue"

    def __init__(self, name: str, morpho: str, markets: Collection[str] = ()) -> None:
        self.name = name
        self.morpho = morpho
        self._whitelist = {m.lower() for m in markets}
        self.params: dict[str, MarketParams] = {}
        self.markets: dict[str, MarketState] = {}
        self.positions: dict[tuple[str, str], Position] = {}
        self._screen: PositionsScreen | None = None

    @classmethod
    def from_config(cls, config: MorphoBlueConfig) -> MorphoBlueAdapter:
        return cls(config.name, config.address, config.markets)

    def _wanted(self, market_id: str) -> bool:
        return not self._whitelist or market_id.lower() in self._whitelist

    def log_filter(self) -> LogFilter:
        return LogFilter((self.morpho,), (CREATE_MARKET, *BORROWER_TOPICS))

    def apply_logs(self, logs: Sequence[dict[str, Any]]) -> set[PositionKey]:
        for params in created_markets(logs, self.morpho):
            if self._wanted(params.id):
                self.params[params.id] = params
        return {PositionKey(m, u) for m, u in touched_positions(logs, self.morpho) if self._wanted(m)}

    async def refresh(self, rpc: Rpc, block: BlockRef, keys: Collection[PositionKey]) -> None:
        unknown = {k.market for k in keys} - set(self.params)
        if unknown:
            for params in await read_market_params(rpc, self.morpho, unknown, block.hash):
                self.params[params.id] = params
        tracked = sorted({m for m, _ in self.positions} | {k.market for k in keys})
        markets = [self.params[m] for m in tracked]
        pairs = sorted((k.market, k.user) for k in keys)
        states, positions = await read_markets_and_positions(rpc, self.morpho, block.hash, markets, pairs)
        self.markets = states
        self.positions.update(positions)

    def tracked(self) -> list[PositionKey]:
        return [PositionKey(m, u) for m, u in self.positions]

    def shocked(self, shocks: Mapping[str, Fraction]) -> MorphoBlueAdapter:
        """Each market's collateral/loan price ratio moves with both tokens' shocks (what-if)."""
        ratios = {}
        for market_id, state in self.markets.items():
            collateral = 1 + shocks.get(state.params.collateral_token, Fraction(0))
            loan = 1 + shocks.get(state.params.loan_token, Fraction(0))
            ratios[market_id] = int(state.price * collateral / loan)
        return self.repriced(ratios)

    def snapshot(self) -> MarketSnapshot:
        """Morpho's oracles price a market, not a token: there are no reference prices to lend."""
        params = [state.params for state in self.markets.values()]
        return MarketSnapshot(
            price_kind=PriceKind.MARKET,
            prices={market_id: PriceInput(state.price) for market_id, state in self.markets.items()},
            tokens=frozenset(t for p in params for t in (p.loan_token, p.collateral_token)),
            spenders={p.loan_token: self.morpho for p in params},
        )

    def screen(self) -> PositionsScreen:
        if self._screen is None:
            self._screen = PositionsScreen(self)
        return self._screen

    def share_cash(self, quotes: Sequence[LiquidationQuote]) -> list[LiquidationQuote]:
        """Morpho pays seized collateral out of the market's own collateral: nothing is shared."""
        return list(quotes)

    def feed_updates(self, logs: Sequence[dict[str, Any]]) -> list[FeedUpdate]:
        """Market oracles are read every block; their feeds are not watched."""
        return []

    def repriced(self, prices: dict[str, int]) -> MorphoBlueAdapter:
        """The same positions under other oracle prices, by market id (what-if); self is unchanged."""
        copy = MorphoBlueAdapter(self.name, self.morpho)
        copy.params, copy.positions = self.params, self.positions
        copy.markets = {
            m: replace(state, price=prices.get(m, state.price)) for m, state in self.markets.items()
        }
        return copy

    def forget(self, keys: Collection[PositionKey]) -> None:
        for key in keys:
            self.positions.pop((key.market, key.user), None)

    def health(self, timestamp: int) -> list[PositionHealth]:
        accrued = {market_id: market_at(state, timestamp) for market_id, state in self.markets.items()}
        out = []
        for (market_id, user), position in self.positions.items():
            state = self.markets.get(market_id)
            if state is None or position.borrow_shares == 0:
                continue
            market = accrued[market_id]
            out.append(
                PositionHealth(
                    self.protocol,
                    market_id,
                    user,
                    health_factor(position, market, state.price, state.params.lltv),
                    position.collateral,
                    borrowed_assets(position, market),
                )
            )
        return out

    def quote(self, key: PositionKey, timestamp: int) -> LiquidationQuote | None:
        state = self.markets.get(key.market)
        position = self.positions.get((key.market, key.user))
        if state is None or position is None or position.borrow_shares == 0:
            return None
        market = market_at(state, timestamp)
        try:
            outcome = largest_liquidation(market, position, state.price, state.params.lltv)
        except NotLiquidatable:
            return None
        return LiquidationQuote(
            protocol=self.protocol,
            market=key.market,
            user=key.user,
            collateral_asset=state.params.collateral_token,
            debt_asset=state.params.loan_token,
            debt_repaid=outcome.repaid_assets,
            collateral_seized=outcome.seized_assets,
            repaid_shares=outcome.repaid_shares,
            bad_debt=outcome.bad_debt_assets,
            debt_value_base=outcome.repaid_assets,
            collateral_value_base=outcome.seized_assets * state.price // ORACLE_PRICE_SCALE,
            priced_by=frozenset((key.market,)),
        )

    def liquidation_call(self, quote: LiquidationQuote) -> tuple[str, bytes]:
        """``liquidate`` by repaid shares (exact debt) when repaying everything, else by seized assets."""
        seized, shares = self._amounts(quote)
        params = MARKET_PARAMS.named(self.params[quote.market])
        return self.morpho, LIQUIDATE.call(params, quote.user, seized, shares, b"")

    def executor_leg(self, quote: LiquidationQuote) -> ExecutorLeg:
        """The same ``liquidate``, made by the executor, which repays from Morpho's callback."""
        seized, shares = self._amounts(quote)
        market = MARKET_PARAMS.named(self.params[quote.market])
        return ExecutorLeg("morpho", self.morpho, market=market, seized_assets=seized, repaid_shares=shares)

    def _amounts(self, quote: LiquidationQuote) -> tuple[int, int]:
        """(seizedAssets, repaidShares): exactly one is non-zero."""
        position = self.positions[(quote.market, quote.user)]
        by_shares = quote.repaid_shares == position.borrow_shares
        return (0, quote.repaid_shares) if by_shares else (quote.collateral_seized, 0)


class PositionsScreen:
    """The adapter's positions on a `MorphoScreen`: rebuilt on request, else only touched rows."""

    margin = DEFAULT_MARGIN

    def __init__(self, adapter: MorphoBlueAdapter) -> None:
        self._adapter = adapter
        self._screen = MorphoScreen()

    def estimates(self, timestamp: int, touched: Collection[PositionKey] | None) -> npt.NDArray[np.float64]:
        positions = self._adapter.positions
        if touched is None:
            self._screen.set_positions(positions)
        else:
            pairs = ((k.market, k.user) for k in touched)
            self._screen.update_positions({pair: positions[pair] for pair in pairs if pair in positions})
        return self._screen.estimates(self._adapter.markets, timestamp)

    def key(self, row: int) -> PositionKey:
        return PositionKey(*self._screen.key(row))
