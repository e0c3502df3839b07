"""Which Aave V3 a pool runs, from ``POOL_REVISION()`` and the views only later versions have (pure).

The revision alone is not enough: the core-v3 1.19.3 source says 1, but production 3.0.x pools were
upgraded in place and report other small numbers, and a fork may number its own way. The views are
what decides which maths applies, so a pool is 3.0.x exactly when none of the later views exists,
and a later version only when its views and its revision agree (``aave-v3.6-notes.md`` §2). Anything
else is `AaveVersion.UNKNOWN`: refused like an unsupported version, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class AaveVersion(StrEnum):
    V3_0 = "3.0.x"
    V3_1 = "3.1"
    V3_2 = "3.2"
    V3_3 = "3.3"
    V3_4 = "3.4"
    V3_5 = "3.5"
    V3_6 = "3.6"
    V3_7_PLUS = "3.7+"
    UNKNOWN = "unknown"

    @property
    def label(self) -> str:
        return "of an unknown version" if self is AaveVersion.UNKNOWN else f"v{self.value}"


SUPPORTED = frozenset({AaveVersion.V3_0, AaveVersion.V3_6})
"""The versions whose maths (health and liquidation) the keeper implements exactly."""


@dataclass(frozen=True, slots=True)
class Probes:
    """Which version-only views answered (a revert means absent), each introduced in the version named."""

    liquidation_grace_period: bool = False  # getLiquidationGracePeriod, 3.1
    emode_collateral_bitmap: bool = False  # getEModeCategoryCollateralBitmap, 3.2
    reserve_deficit: bool = False  # getReserveDeficit, 3.3
    rate_strategy_immutable: bool = False  # RESERVE_INTEREST_RATE_STRATEGY, 3.4
    emode_ltvzero_bitmap: bool = False  # getEModeCategoryLtvzeroBitmap, 3.6

    def level(self) -> int | None:
        """How many of the views, oldest first, exist; None when a view exists without an older one."""
        present = (
            self.liquidation_grace_period,
            self.emode_collateral_bitmap,
            self.reserve_deficit,
            self.rate_strategy_immutable,
            self.emode_ltvzero_bitmap,
        )
        count = sum(present)
        return count if all(present[:count]) else None


V3_0_REVISIONS = range(1, 4)
"""Revisions production 3.0.x pools report (3.0.0, 3.0.1, 3.0.2)."""

REVISIONS: dict[int, AaveVersion] = {
    4: AaveVersion.V3_1,
    5: AaveVersion.V3_2,  # 3.2.0
    6: AaveVersion.V3_2,  # 3.2.1
    7: AaveVersion.V3_3,
    8: AaveVersion.V3_4,
    9: AaveVersion.V3_5,
    10: AaveVersion.V3_6,
}
"""``POOL_REVISION`` of the aave-v3-origin releases; 11 is 3.7."""

BY_LEVEL = (
    AaveVersion.V3_0,
    AaveVersion.V3_1,
    AaveVersion.V3_2,
    AaveVersion.V3_3,
    AaveVersion.V3_4,  # or 3.5: no view tells them apart, the revision does
    AaveVersion.V3_6,
)
"""The version whose views are exactly the first ``level`` probes."""

V3_7_REVISION = 11


def classify(revision: int | None, probes: Probes) -> AaveVersion:
    """The version a pool with this ``POOL_REVISION`` (None: the call reverted) and these views runs."""
    level = probes.level()
    if revision is None or level is None:
        return AaveVersion.UNKNOWN
    by_views = BY_LEVEL[level]
    if by_views is AaveVersion.V3_0:
        return AaveVersion.V3_0 if revision in V3_0_REVISIONS else AaveVersion.UNKNOWN
    if revision >= V3_7_REVISION:
        return AaveVersion.V3_7_PLUS if by_views is AaveVersion.V3_6 else AaveVersion.UNKNOWN
    by_revision = REVISIONS.get(revision)
    if by_views is AaveVersion.V3_4 and by_revision in (AaveVersion.V3_4, AaveVersion.V3_5):
        return by_revision
    return by_views if by_revision is by_views else AaveVersion.UNKNOWN


@dataclass(frozen=True, slots=True)
class DetectedVersion:
    """What start-up found on one pool."""

    revision: int | None
    probes: Probes
    version: AaveVersion

    @classmethod
    def of(cls, revision: int | None, probes: Probes) -> DetectedVersion:
        return cls(revision, probes, classify(revision, probes))

    @property
    def supported(self) -> bool:
        return self.version in SUPPORTED

    def __str__(self) -> str:
        revision = "absent" if self.revision is None else str(self.revision)
        return f"Aave {self.version.label} (POOL_REVISION {revision})"


def supported_labels() -> str:
    return ", ".join(v.label for v in AaveVersion if v in SUPPORTED)


def refusal(key: str, detected: DetectedVersion, override_key: str) -> str:
    """The one line that stops the keeper on a version whose maths it does not implement."""
    consequence = (
        f"health and liquidations will be computed with {AaveVersion.V3_0.label} rules and can be wrong"
    )
    return (
        f"{key}: {detected} is not supported yet; supported: {supported_labels()} "
        f"(set {override_key} = true to run anyway: {consequence})"
    )
