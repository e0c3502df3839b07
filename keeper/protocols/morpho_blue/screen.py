"""The Morpho Blue float screen: every borrow position of one Morpho instance as flat columns.

Why its bounds never miss a liquidatable position: `keeper.protocols.screening`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from keeper.math.morpho import VIRTUAL_ASSETS, VIRTUAL_SHARES
from keeper.math.wad_ray import WAD
from keeper.protocols.screening import DEFAULT_MARGIN, FLOAT_ERROR, Floats, Indices, flag, ratio

from .math import ORACLE_PRICE_SCALE, market_at
from .state import MarketState, Position


class MorphoScreen:
    """Every (market, user) borrow position of one Morpho Blue instance as flat float columns."""

    def __init__(self) -> None:
        self._clear()

    def _clear(self) -> None:
        self._rows: dict[tuple[str, str], int] = {}
        self._keys: list[tuple[str, str]] = []
        self._markets: dict[str, int] = {}
        self._market: Indices = np.zeros(0, np.intp)
        self._columns: Floats = np.zeros((2, 0))
        """Collateral assets and borrow shares."""

    @property
    def keys(self) -> list[tuple[str, str]]:
        """(market id, user) in row order: the order of ``estimates``."""
        return list(self._keys)

    def key(self, row: int) -> tuple[str, str]:
        return self._keys[row]

    def set_positions(self, positions: Mapping[tuple[str, str], Position]) -> None:
        self._clear()
        self.update_positions(positions)

    def update_positions(self, positions: Mapping[tuple[str, str], Position]) -> None:
        for key in positions:
            if key not in self._rows:
                self._rows[key] = len(self._keys)
                self._keys.append(key)
            self._markets.setdefault(key[0], len(self._markets))
        count, capacity = len(self._keys), self._market.shape[0]
        if count > capacity:
            new_capacity = max(count, 2 * capacity)
            market, columns = np.zeros(new_capacity, np.intp), np.zeros((2, new_capacity))
            market[:capacity], columns[:, :capacity] = self._market, self._columns
            self._market, self._columns = market, columns
        rows = np.array([self._rows[key] for key in positions], np.intp)
        self._market[rows] = [self._markets[market_id] for market_id, _ in positions]
        self._columns[:, rows] = np.array(
            [
                [float(p.collateral) for p in positions.values()],
                [float(p.borrow_shares) for p in positions.values()],
            ]
        ).reshape(2, -1)

    def candidates(
        self, markets: Mapping[str, MarketState], timestamp: int, margin: float = DEFAULT_MARGIN
    ) -> list[tuple[str, str]]:
        """Positions that may be unhealthy at ``timestamp``: a superset of those with exact HF < 1."""
        num, den = self._bounds(markets, timestamp)
        return [self._keys[row] for row in np.flatnonzero(flag(num, den, margin)).tolist()]

    def estimates(self, markets: Mapping[str, MarketState], timestamp: int) -> Floats:
        """Conservative health per position in row order (+inf without debt or market state)."""
        return ratio(*self._bounds(markets, timestamp))

    def _bounds(self, markets: Mapping[str, MarketState], timestamp: int) -> tuple[Floats, Floats]:
        """Per market: exact accrual (``market_at``), then max-borrow and share-price factors in float."""
        kinds = len(self._markets)
        collateral_factor, share_price, slack = np.zeros(kinds), np.zeros(kinds), np.zeros(kinds)
        for market_id, k in self._markets.items():
            state = markets.get(market_id)
            if state is None:
                continue  # no state, no health: the adapter skips these positions too
            market = market_at(state, timestamp)
            lltv = state.params.lltv
            collateral_factor[k] = state.price * lltv / (ORACLE_PRICE_SCALE * WAD)
            share_price[k] = (market.total_borrow_assets + VIRTUAL_ASSETS) / (
                market.total_borrow_shares + VIRTUAL_SHARES
            )
            slack[k] = (WAD + lltv) / WAD
        count = len(self._keys)
        market_index = self._market[:count]
        collateral, shares = self._columns[:, :count]
        num = collateral * collateral_factor[market_index] * (1.0 - FLOAT_ERROR) - slack[market_index] * (
            1.0 + FLOAT_ERROR
        )
        den = (shares * share_price[market_index] + 1.0) * (1.0 + FLOAT_ERROR)
        den[(shares == 0) | (share_price[market_index] == 0)] = 0.0
        return num, den
