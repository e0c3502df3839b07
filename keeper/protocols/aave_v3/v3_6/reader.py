"""The pool views only v3.6 has, read inside the shared reader's two rounds (`ExtraViews`).

Per reserve: the virtual underlying balance (what a liquidation can pay out as underlying), the
deficit and the liquidation grace period. Per eMode category: the collateral, borrowable and
ltv-zero bitmaps, which replace 3.0's per-reserve category bits (deprecated, no longer maintained).
The category's LTV/LT/bonus still come from ``getEModeCategoryData``, whose 3.6 version returns
them with ``priceSource = 0`` (the eMode price override was removed in 3.2).
"""

from __future__ import annotations

from ..reader import POOL_V3_6, ExtraViews

VIEWS = ExtraViews(
    reserve=(
        ("virtual_underlying_balance", POOL_V3_6.fn("getVirtualUnderlyingBalance")),
        ("deficit", POOL_V3_6.fn("getReserveDeficit")),
        ("liquidation_grace_period_until", POOL_V3_6.fn("getLiquidationGracePeriod")),
    ),
    category=(
        ("collateral_bitmap", POOL_V3_6.fn("getEModeCategoryCollateralBitmap")),
        ("borrowable_bitmap", POOL_V3_6.fn("getEModeCategoryBorrowableBitmap")),
        ("ltvzero_bitmap", POOL_V3_6.fn("getEModeCategoryLtvzeroBitmap")),
    ),
)
