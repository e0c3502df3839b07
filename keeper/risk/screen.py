"""Vectorized float screen: the positions worth an exact integer health check this block.

Interest and prices move every position every block, so every position is looked at every block,
and the exact integer maths costs microseconds per position in Python. The screen evaluates all
positions at once (one numpy matrix product for Aave, a few vector operations for Morpho) and
returns those that could be liquidatable; only they go through ``account_data`` /
``health_factor``. A candidate is a position to check, never a decision.

Why it never misses a liquidatable position
-------------------------------------------
Per-reserve and per-market state is exact: indexes come from ``reserves_at``, market totals from
``market_at``, both integer. Per position the screen computes in float64 a *lower bound* ``num`` of
the exact collateral side and an *upper bound* ``den`` of the exact debt side, and flags it when
``num < den * (1 + margin)``. Exact ``HF < 1e18`` implies ``collateral side < debt side`` (Aave's
``wadDiv`` rounds half up, Morpho's ``wDivDown`` down), hence ``num < den``: flagged even with
``margin = 0``. The bounds are the real-valued terms of the exact formula, widened twice:

* Integer rounding, an absolute slack per term. Aave: ``rayMul`` half-up moves a balance by at most
  half a token unit and the ``price / unit`` floor loses less than one base unit, so a collateral
  value is within ``0.5 * price / unit + 1`` base units of its real value and a debt value within
  ``price / unit`` (variable and stable half-ups); ``percentMul`` loses half a unit. The average
  liquidation threshold is floored to whole basis points: exact when all of a user's collateral
  has one threshold, otherwise it loses up to ``total_collateral / 1e4`` (1/LT, ~1.2e-4 of the
  health factor), which the bound subtracts for those users only. Stable debt uses the exact integer
  powers of the rate and skips the three floors of ``calculateCompoundedInterest``: above the exact
  value. Morpho: the two floors of the max borrow lose under ``1 + lltv / 1e18`` loan units; the
  borrowed assets round up by under one.
* Float rounding, relative. Integers convert to float64 within 2**-53 (~1.1e-16) and Python's
  int / int division is correctly rounded, so each per-reserve factor is exact to one rounding;
  each bound is a sum of at most 128 (Aave's reserve limit) non-negative products, so it carries a
  relative error below (128 + 4) * 2**-53 ~ 1.5e-14. ``FLOAT_ERROR = 1e-12`` pushes every bound
  outwards by more than that (the unit tests find a miss at HF 1 - 8e-17 without it).

The absolute slack is what catches tiny positions: a debt of a few wei has a bound dominated by
rounding and is flagged unless its collateral clears the slack. For ordinary positions it is
negligible (half a WBTC satoshi is 0.0003 USD: under 1e-6 of any debt above 300 USD), so the screen
is as tight as the float value. ``margin`` is therefore not needed for safety: it is headroom
(default 1e-6, a handful of extra candidates per block; a second line of defence should this model
ever diverge from the protocol's).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from keeper.math.interest import SECONDS_PER_YEAR
from keeper.math.morpho import VIRTUAL_ASSETS, VIRTUAL_SHARES
from keeper.math.wad_ray import PERCENTAGE_FACTOR, RAY, WAD, ray_mul
from keeper.protocols.aave_v3.math import emode_price, reserves_at
from keeper.protocols.aave_v3.state import PoolState, StableDebt, UserState
from keeper.protocols.morpho_blue.math import ORACLE_PRICE_SCALE, market_at
from keeper.protocols.morpho_blue.state import MarketState, Position

Floats = npt.NDArray[np.float64]
Indices = npt.NDArray[np.intp]

FLOAT_ERROR = 1e-12
"""Relative widening of every bound; the float error it covers is below 1.5e-14 (module docstring)."""
DEFAULT_MARGIN = 1e-6
"""Headroom on top of the proven bounds: flag when ``num < den * (1 + margin)``."""

_COLLATERAL, _COLLATERAL_NONZERO, _VARIABLE, _DEBT_NONZERO = range(4)
"""The four per-user balance rows, as planes of ``AaveScreen._matrix``."""
(
    _WEIGHTED,
    _VALUE,
    _ROUNDING_WEIGHTED,
    _ROUNDING,
    _HELD,
    _LT_SUM,
    _LT_SQUARES,
    _DEBT,
    _DEBT_ROUNDING,
) = range(9)
"""The nine per-user sums one matrix product yields (see ``_AaveTables``)."""
_YEAR = float(SECONDS_PER_YEAR)


def _flag(num: Floats, den: Floats, margin: float) -> npt.NDArray[np.bool_]:
    if margin < 0:
        raise ValueError(f"margin {margin} is negative: the screen could miss liquidatable positions")
    return (den > 0) & (num < den * (1.0 + margin))


def _ratio(num: Floats, den: Floats) -> Floats:
    """``num / den`` where there is debt, +inf elsewhere."""
    out = np.full(num.shape, np.inf)
    np.divide(num, den, out=out, where=den > 0)
    return out


@dataclass(frozen=True, slots=True)
class _Stable:
    """A stable-debt balance with the rate-only parts of ``calculateCompoundedInterest`` precomputed."""

    row: int
    column: int
    principal: float
    rate_ray: float
    base_power_two: float
    base_power_three: float
    last_update: float

    @classmethod
    def of(cls, row: int, column: int, stable: StableDebt) -> _Stable:
        power_two = ray_mul(stable.rate_ray, stable.rate_ray) // (SECONDS_PER_YEAR * SECONDS_PER_YEAR)
        power_three = ray_mul(power_two, stable.rate_ray) // SECONDS_PER_YEAR
        return cls(
            row,
            column,
            float(stable.principal),
            float(stable.rate_ray),
            float(power_two),
            float(power_three),
            float(stable.last_update_timestamp),
        )


class AaveScreen:
    """Every user of one Aave V3 pool as a row of scaled balances, one column per reserve id.

    ``set_users`` / ``update_users`` convert balances to float once, when users change (the caller
    passes the users a block touched); ``candidates`` then costs one skinny matrix product, one
    gather and a dozen vector operations per block, plus a pass over stable-debt entries if any.
    """

    def __init__(self) -> None:
        self._clear()

    def _clear(self) -> None:
        self._rows: dict[str, int] = {}
        self._users: list[str] = []
        self._categories: dict[int, int] = {0: 0}
        """eMode category -> compact index; per-block tables have one row per category in use."""
        self._matrix: Floats = np.zeros((0, 4, 0))
        """(user, plane, reserve id); planes: scaled aToken where the collateral bit is on, its nonzero
        mask, scaled variable debt where the borrowing bit is on, nonzero (variable or stable) debt mask."""
        self._category: Indices = np.zeros(0, np.intp)
        self._stable: dict[int, list[_Stable]] = {}
        self._stable_columns: tuple[Indices, Indices, Floats] | None = None

    @property
    def users(self) -> list[str]:
        """Users in row order: the order of ``estimates``."""
        return list(self._users)

    def set_users(self, users: Iterable[UserState]) -> None:
        self._clear()
        self.update_users(users)

    def update_users(self, users: Iterable[UserState]) -> None:
        """Replace the rows of these users (appending new ones) with their current balances."""
        latest = list({user.user: user for user in users}.values())
        flagged = [user.flagged_reserve_ids() for user in latest]
        for user in latest:
            self._rows.setdefault(user.user, len(self._users))
            if len(self._rows) > len(self._users):
                self._users.append(user.user)
            self._categories.setdefault(user.emode_category, len(self._categories))
        width = max([self._matrix.shape[2], *(ids[-1] + 1 for ids in flagged if ids)])
        self._grow(len(self._users), width)
        rows = np.array([self._rows[user.user] for user in latest], np.intp)
        self._matrix[rows] = 0.0
        self._category[rows] = [self._categories[user.emode_category] for user in latest]
        planes: list[int] = []
        cells: list[tuple[int, int]] = []
        values: list[float] = []
        for user, ids, row in zip(latest, flagged, rows.tolist(), strict=True):
            self._stable.pop(row, None)
            for reserve_id in ids:
                balances = user.reserves.get(reserve_id)
                if balances is None:
                    continue
                if user.is_using_as_collateral(reserve_id) and balances.scaled_a_token:
                    planes += (_COLLATERAL, _COLLATERAL_NONZERO)
                    cells += ((row, reserve_id), (row, reserve_id))
                    values += (float(balances.scaled_a_token), 1.0)
                if not user.is_borrowing(reserve_id):
                    continue
                stable = balances.stable if balances.stable and balances.stable.principal else None
                if stable is not None:
                    self._stable.setdefault(row, []).append(_Stable.of(row, reserve_id, stable))
                if balances.scaled_variable_debt:
                    planes.append(_VARIABLE)
                    cells.append((row, reserve_id))
                    values.append(float(balances.scaled_variable_debt))
                if balances.scaled_variable_debt or stable is not None:
                    planes.append(_DEBT_NONZERO)
                    cells.append((row, reserve_id))
                    values.append(1.0)
        if cells:
            row_index, column_index = zip(*cells, strict=True)
            self._matrix[row_index, planes, column_index] = values
        self._stable_columns = None

    def _grow(self, count: int, width: int) -> None:
        capacity, old_width = self._matrix.shape[0], self._matrix.shape[2]
        if count <= capacity and width == old_width:
            return
        new_capacity = max(count, 2 * capacity) if count > capacity else capacity
        matrix = np.zeros((new_capacity, 4, width))
        matrix[:capacity, :, :old_width] = self._matrix
        category = np.zeros(new_capacity, np.intp)
        category[:capacity] = self._category
        self._matrix, self._category = matrix, category

    def candidates(self, pool: PoolState, timestamp: int, margin: float = DEFAULT_MARGIN) -> list[str]:
        """Users who may be liquidatable at ``timestamp``: a superset of those with exact HF < 1."""
        num, den = self._bounds(pool, timestamp)
        return [self._users[row] for row in np.flatnonzero(_flag(num, den, margin)).tolist()]

    def estimates(self, pool: PoolState, timestamp: int) -> Floats:
        """Conservative health per user in row order: never above the exact HF beyond float noise."""
        return _ratio(*self._bounds(pool, timestamp))

    def _bounds(self, pool: PoolState, timestamp: int) -> tuple[Floats, Floats]:
        """One product (users x 4 planes x reserves) @ (4 planes x reserves, categories x 9 sums),
        then each user's own category row; the rest is a dozen vector operations."""
        count, width, kinds = len(self._users), self._matrix.shape[2], len(self._categories)
        tables = _AaveTables.build(pool, timestamp, self._categories, width)
        product = self._matrix[:count].reshape(count, 4 * width) @ tables.factors.reshape(
            4 * width, kinds * 9
        )
        by_category = product.reshape(count, kinds, 9)
        sums = by_category[:, 0] if kinds == 1 else by_category[np.arange(count), self._category[:count]]
        held, lt_sum, lt_squares = sums[:, _HELD], sums[:, _LT_SUM], sums[:, _LT_SQUARES]
        mixed = held * lt_squares != lt_sum * lt_sum  # exact: small integers; equal iff one threshold
        floor_loss = np.where(mixed, (sums[:, _VALUE] + sums[:, _ROUNDING]) / PERCENTAGE_FACTOR, 0.0)
        collateral_slack = sums[:, _ROUNDING_WEIGHTED] + floor_loss + 0.5
        num = sums[:, _WEIGHTED] * (1.0 - FLOAT_ERROR) - collateral_slack * (1.0 + FLOAT_ERROR)
        debt = sums[:, _DEBT] + sums[:, _DEBT_ROUNDING]
        if self._stable:
            debt += self._stable_debt(tables, timestamp, count)
        return num, debt * (1.0 + FLOAT_ERROR)

    def _stable_debt(self, tables: _AaveTables, timestamp: int, count: int) -> Floats:
        """Stable debt value per user: the float Taylor factor keeps Aave's floored terms unfloored."""
        if not self._stable:
            return np.zeros(count)
        if self._stable_columns is None:
            entries = [entry for row_entries in self._stable.values() for entry in row_entries]
            self._stable_columns = (
                np.array([e.row for e in entries], np.intp),
                np.array([e.column for e in entries], np.intp),
                np.array(
                    [
                        (e.principal, e.rate_ray, e.base_power_two, e.base_power_three, e.last_update)
                        for e in entries
                    ]
                ).reshape(-1, 5),
            )
        rows, columns, data = self._stable_columns
        principal, rate, power_two, power_three, last_update = data.T
        elapsed = np.maximum(float(timestamp) - last_update, 0.0)
        growth = (
            rate * elapsed / _YEAR
            + elapsed * (elapsed - 1) * power_two / 2
            + elapsed * (elapsed - 1) * (elapsed - 2) * power_three / 6
        )
        price = tables.stable_price[self._category[rows], columns]
        value = np.bincount(rows, weights=principal * (1.0 + growth / RAY) * price, minlength=count)
        return value.astype(np.float64, copy=False)


@dataclass(frozen=True, slots=True)
class _AaveTables:
    """Per-block factors: what one unit of each balance plane adds to each of the nine per-user sums.

    ``factors[plane, reserve, category, sum]``: the scaled aToken plane feeds the LT-weighted value
    / 1e4 and the value, the collateral mask feeds the rounding slack (weighted and not), the count
    of collateral reserves and the sums of their thresholds and squared thresholds, the variable debt
    plane the debt value, the debt mask the debt rounding slack.
    """

    factors: Floats
    stable_price: Floats
    """(category, reserve): price / unit for stable debt."""

    @classmethod
    def build(cls, pool: PoolState, timestamp: int, categories: Mapping[int, int], width: int) -> _AaveTables:
        factors = np.zeros((4, width, len(categories), 9))
        stable_price = np.zeros((len(categories), width))
        at = reserves_at(pool, timestamp)
        for category, k in categories.items():
            emode = pool.emode_categories.get(category) if category else None
            category_price = emode_price(pool, category) if category else 0
            for reserve_id, reserve in at.items():
                if reserve_id >= width:
                    continue
                config, unit = reserve.reserve.config, reserve.unit
                same = config.emode_category == category
                price = category_price if category_price != 0 and same else reserve.price
                factors[_VARIABLE, reserve_id, k, _DEBT] = reserve.normalized_debt * price / (RAY * unit)
                factors[_DEBT_NONZERO, reserve_id, k, _DEBT_ROUNDING] = price / unit
                stable_price[k, reserve_id] = price / unit
                if config.liquidation_threshold == 0:
                    continue  # not collateral at all, whatever the user's flag says
                if category and same:
                    threshold = emode.liquidation_threshold if emode else 0
                else:
                    threshold = config.liquidation_threshold
                value = reserve.normalized_income * price
                collateral = factors[_COLLATERAL, reserve_id, k]
                collateral[_WEIGHTED] = value * threshold / (RAY * unit * PERCENTAGE_FACTOR)
                collateral[_VALUE] = value / (RAY * unit)
                rounding = price + 2 * unit  # 0.5 * price / unit + 1, over 2 * unit
                mask = factors[_COLLATERAL_NONZERO, reserve_id, k]
                mask[_ROUNDING_WEIGHTED] = rounding * threshold / (2 * unit * PERCENTAGE_FACTOR)
                mask[_ROUNDING] = rounding / (2 * unit)
                mask[_HELD], mask[_LT_SUM], mask[_LT_SQUARES] = 1.0, threshold, threshold * threshold
        return cls(factors, stable_price)


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
        return [self._keys[row] for row in np.flatnonzero(_flag(num, den, margin)).tolist()]

    def estimates(self, markets: Mapping[str, MarketState], timestamp: int) -> Floats:
        """Conservative health per position in row order (+inf without debt or market state)."""
        return _ratio(*self._bounds(markets, timestamp))

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
