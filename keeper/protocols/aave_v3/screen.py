"""The Aave V3 float screen: every user of one pool as a row of scaled balances, one matrix product.

Why its bounds never miss a liquidatable position: `keeper.protocols.screening`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from keeper.math.interest import SECONDS_PER_YEAR
from keeper.math.wad_ray import PERCENTAGE_FACTOR, RAY, ray_mul
from keeper.protocols.screening import DEFAULT_MARGIN, FLOAT_ERROR, Floats, Indices, flag, ratio

from .math import emode_price, reserves_at
from .state import PoolState, StableDebt, UserState
from .v3_6 import math as math_v3_6

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

    def user(self, row: int) -> str:
        return self._users[row]

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

    def candidates(
        self, pool: PoolState, timestamp: int, margin: float = DEFAULT_MARGIN, *, v3_6: bool = False
    ) -> list[str]:
        """Users who may be liquidatable at ``timestamp``: a superset of those with exact HF < 1.

        ``v3_6``: bound the v3.6 maths (`keeper.protocols.aave_v3.v3_6.math`) instead of 3.0.x's."""
        num, den = self._bounds(pool, timestamp, v3_6)
        return [self._users[row] for row in np.flatnonzero(flag(num, den, margin)).tolist()]

    def estimates(self, pool: PoolState, timestamp: int, *, v3_6: bool = False) -> Floats:
        """Conservative health per user in row order: never above the exact HF beyond float noise."""
        return ratio(*self._bounds(pool, timestamp, v3_6))

    def _bounds(self, pool: PoolState, timestamp: int, v3_6: bool = False) -> tuple[Floats, Floats]:
        """One product (users x 4 planes x reserves) @ (4 planes x reserves, categories x 9 sums),
        then each user's own category row; the rest is a dozen vector operations."""
        count, width, kinds = len(self._users), self._matrix.shape[2], len(self._categories)
        build = _AaveTables.build_v3_6 if v3_6 else _AaveTables.build
        tables = build(pool, timestamp, self._categories, width)
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

    @classmethod
    def build_v3_6(
        cls, pool: PoolState, timestamp: int, categories: Mapping[int, int], width: int
    ) -> _AaveTables:
        """The same factors for v3.6 (no stable debt, no eMode price, eMode LT by collateral bitmap).

        Its rounding widens two slacks: ``rayMulFloor`` loses under one token unit (not half) and the
        price floor under one base unit, so a collateral value is within ``price / unit + 1`` of its
        real value; ``rayMulCeil`` adds under one unit and ``mulDivCeil`` under one base unit, so a
        debt value is within ``price / unit + 1``. The HF divides ``sum(value * LT)`` by the debt
        without flooring the average LT first: exact ``HF < 1e18`` still implies
        ``sum(value * LT) / 1e4 < debt``, and the mixed-threshold floor loss kept below only widens.
        The debt index uses the 3.4 compounding (`math_v3_6.reserves_at`), which runs above 3.0's.
        """
        factors = np.zeros((4, width, len(categories), 9))
        at = math_v3_6.reserves_at(pool, timestamp)
        for category, k in categories.items():
            emode = math_v3_6.user_emode(pool, UserState("", 0, category))
            for reserve_id, reserve in at.items():
                if reserve_id >= width:
                    continue
                unit, price = reserve.unit, reserve.price
                factors[_VARIABLE, reserve_id, k, _DEBT] = reserve.normalized_debt * price / (RAY * unit)
                factors[_DEBT_NONZERO, reserve_id, k, _DEBT_ROUNDING] = price / unit + 1
                threshold = math_v3_6.liquidation_threshold(reserve.reserve, emode)
                if threshold == 0:
                    continue  # counted with weight 0: adds nothing to sum(value * LT)
                value = reserve.normalized_income * price
                collateral = factors[_COLLATERAL, reserve_id, k]
                collateral[_WEIGHTED] = value * threshold / (RAY * unit * PERCENTAGE_FACTOR)
                collateral[_VALUE] = value / (RAY * unit)
                rounding = price + unit  # price / unit + 1, over unit
                mask = factors[_COLLATERAL_NONZERO, reserve_id, k]
                mask[_ROUNDING_WEIGHTED] = rounding * threshold / (unit * PERCENTAGE_FACTOR)
                mask[_ROUNDING] = rounding / unit
                mask[_HELD], mask[_LT_SUM], mask[_LT_SQUARES] = 1.0, threshold, threshold * threshold
        return cls(factors, np.zeros((len(categories), width)))
