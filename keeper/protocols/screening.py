"""Vectorized float screens (shared bounds): the positions worth an exact integer health check this block.

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

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
Indices = npt.NDArray[np.intp]

FLOAT_ERROR = 1e-12
"""Relative widening of every bound; the float error it covers is below 1.5e-14 (module docstring)."""
DEFAULT_MARGIN = 1e-6
"""Headroom on top of the proven bounds: flag when ``num < den * (1 + margin)``."""


def flag(num: Floats, den: Floats, margin: float) -> npt.NDArray[np.bool_]:
    if margin < 0:
        raise ValueError(f"margin {margin} is negative: the screen could miss liquidatable positions")
    return (den > 0) & (num < den * (1.0 + margin))


def ratio(num: Floats, den: Floats) -> Floats:
    """``num / den`` where there is debt, +inf elsewhere."""
    out = np.full(num.shape, np.inf)
    np.divide(num, den, out=out, where=den > 0)
    return out
