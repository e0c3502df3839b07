"""The spend guard's records as plain data: what one settled keeper transaction cost, and a trip.

Pure (no sqlite, no clock), like `keeper.state.txstate`: the store persists these, the guard's
pure core (`keeper.execution.guard`) decides over them, and the tests build them by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Cap(StrEnum):
    """The spend guard's caps, in the order they are checked (the first one reached trips)."""

    GAS_PER_HOUR = "gas_per_hour"
    GAS_PER_DAY = "gas_per_day"
    LOSS_PER_HOUR = "loss_per_hour"
    LOSS_PER_DAY = "loss_per_day"
    REVERTS = "reverts"


@dataclass(frozen=True, slots=True)
class Settlement:
    """One keeper transaction whose receipt the keeper settled (mined or reverted), as the guard
    counts it. ``at_s`` is the timestamp of the block at which the keeper settled it (its receipt's
    block, or a later one when the keeper was behind or restarting): the windows run on chain time."""

    tx_hash: str
    nonce: int
    block: int
    """The block the receipt says it was included in."""
    at_s: int
    gas_paid_wei: int
    """``gasUsed * effectiveGasPrice`` of its receipt."""
    loss_wei: int
    """Its realized loss (`keeper.execution.guard.realized_loss_wei`)."""
    reverted: bool


@dataclass(frozen=True, slots=True)
class Trip:
    """A cap reached: the figure over its window and the limit, when and by which settlement."""

    cap: Cap
    window_s: int
    figure: int
    """wei (gas and loss caps) or a count of reverted transactions (``reverts``)."""
    limit: int
    at_s: int
    block: int
    tx_hash: str
    """The settlement that brought the figure to the limit ("" when a lowered cap tripped at start-up)."""

    def describe(self) -> str:
        """One line for /readyz and the CLI."""
        unit = "" if self.cap is Cap.REVERTS else " wei"
        return (
            f"spend guard tripped: {self.cap} reached: {self.figure}{unit} in the last {self.window_s} s "
            f"(limit {self.limit}{unit}); clear it with `keeper guard reset --config F`"
        )
