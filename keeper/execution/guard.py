"""The spend guard's pure core: what a settled transaction costs, rolling-window sums, the trip.

A keeper that misjudges something it did not foresee can burn its wallet one transaction at a
time (a public bot once sent one "nearly every block, until you've drained all the ETH"). The
guard bounds that: caps on gas spent and on realized loss per rolling hour and per rolling day,
and a halt after N reverted keeper transactions within a window. Once a cap is reached the keeper
sends nothing new (it still tracks, replaces and settles what is in flight) until the operator
clears it; the shell (`keeper.execution.spend_guard`) persists the trip so a restart stays stopped.

Definitions, each one an operator can check on chain from the keeper account's receipts:

- **gas paid** by a settled keeper transaction: ``gasUsed * effectiveGasPrice`` of its receipt
  (every kind: liquidations, fee bumps, cancels, gap fillers, approvals).
- **realized loss** of a settled keeper transaction: its gas paid minus what it realized, floored
  at 0, where a transaction realizes something only by liquidating, i.e. when its receipt has
  status 1 *and* at least one protocol liquidation event (Aave ``LiquidationCall``, Morpho
  ``Liquidate``). So:
  - reverted (status 0): it loses its gas;
  - mined without a liquidation (a cancel, a gap filler, a flash batch whose items were all
    skipped): it loses its gas;
  - mined with a liquidation: 0. The flash executor reverts unless the profit reaches its
    ``minProfit``, which the fee policy priced so the gas bid never exceeds it; the inventory
    strategy sends only what simulated at a profit after gas. The guard does not revalue the
    seized collateral afterwards (that needs prices the receipt does not carry);
  - approvals: 0 (they buy the allowance later liquidations use; their gas counts as gas paid).
- **reverted**: receipt status 0, whatever the transaction was (a lost race too).

Windows: a settlement counts in a window of ``w`` seconds ending at ``now_s`` when
``now_s - w < at_s`` (a settlement stamped after ``now_s`` counts too: never forgive the future).
"Per hour" is 3,600 s and "per day" 86,400 s of block timestamps, rolling, not calendar. A cap is
reached when the figure is at or above its limit; a limit of None is no cap.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from keeper.state.guardstate import Cap, Settlement, Trip

HOUR_S = 3_600
DAY_S = 86_400


@dataclass(frozen=True, slots=True)
class Limits:
    """The configured caps; None is no cap."""

    gas_per_hour_wei: int | None = None
    gas_per_day_wei: int | None = None
    loss_per_hour_wei: int | None = None
    loss_per_day_wei: int | None = None
    max_reverts: int | None = None
    revert_window_s: int = HOUR_S

    def limit(self, cap: Cap) -> int | None:
        return {
            Cap.GAS_PER_HOUR: self.gas_per_hour_wei,
            Cap.GAS_PER_DAY: self.gas_per_day_wei,
            Cap.LOSS_PER_HOUR: self.loss_per_hour_wei,
            Cap.LOSS_PER_DAY: self.loss_per_day_wei,
            Cap.REVERTS: self.max_reverts,
        }[cap]

    def window_s(self, cap: Cap) -> int:
        if cap is Cap.REVERTS:
            return self.revert_window_s
        return HOUR_S if cap in (Cap.GAS_PER_HOUR, Cap.LOSS_PER_HOUR) else DAY_S

    @property
    def longest_window_s(self) -> int:
        return max(DAY_S, self.revert_window_s)


def realized_loss_wei(gas_paid_wei: int, success: bool, liquidations: int, approval: bool) -> int:
    """A settled transaction's realized loss (see the module docstring for why each case)."""
    if not success:
        return gas_paid_wei
    if approval or liquidations > 0:
        return 0
    return gas_paid_wei


def settlement(
    tx_hash: str,
    nonce: int,
    receipt_block: int,
    at_s: int,
    *,
    success: bool,
    gas_used: int,
    effective_gas_price: int,
    liquidations: int,
    approval: bool,
) -> Settlement:
    """The guard's record of one receipt."""
    paid = gas_used * effective_gas_price
    loss = realized_loss_wei(paid, success, liquidations, approval)
    return Settlement(tx_hash, nonce, receipt_block, at_s, paid, loss, not success)


def in_window(at_s: int, now_s: int, window_s: int) -> bool:
    return at_s > now_s - window_s


def window_total(
    records: Iterable[Settlement], now_s: int, window_s: int, amount: Callable[[Settlement], int]
) -> int:
    return sum(amount(r) for r in records if in_window(r.at_s, now_s, window_s))


_AMOUNT: dict[Cap, Callable[[Settlement], int]] = {
    Cap.GAS_PER_HOUR: lambda r: r.gas_paid_wei,
    Cap.GAS_PER_DAY: lambda r: r.gas_paid_wei,
    Cap.LOSS_PER_HOUR: lambda r: r.loss_wei,
    Cap.LOSS_PER_DAY: lambda r: r.loss_wei,
    Cap.REVERTS: lambda r: int(r.reverted),
}


def figures(records: Sequence[Settlement], now_s: int, limits: Limits) -> dict[Cap, int]:
    """Every cap's figure over its window ending at ``now_s``."""
    return {cap: window_total(records, now_s, limits.window_s(cap), _AMOUNT[cap]) for cap in Cap}


def plus(values: Mapping[Cap, int], record: Settlement) -> dict[Cap, int]:
    """The figures once ``record``, stamped at the windows' end, is counted too: every window holds
    it, so each figure grows by its amount. (The shell adds a block's receipts one by one this way
    instead of summing its whole history again for each.)"""
    return {cap: value + _AMOUNT[cap](record) for cap, value in values.items()}


def reached_by(
    values: Mapping[Cap, int], now_s: int, block: int, limits: Limits, tx_hash: str = ""
) -> Trip | None:
    """The first cap (in `Cap` order) whose figure is at or above its limit, or None."""
    for cap in Cap:
        limit = limits.limit(cap)
        if limit is not None and values[cap] >= limit:
            return Trip(cap, limits.window_s(cap), values[cap], limit, now_s, block, tx_hash)
    return None


def reached(
    records: Sequence[Settlement], now_s: int, block: int, limits: Limits, tx_hash: str = ""
) -> Trip | None:
    """`reached_by` over the figures of ``records`` at ``now_s``."""
    return reached_by(figures(records, now_s, limits), now_s, block, limits, tx_hash)


def recent(records: Iterable[Settlement], now_s: int, limits: Limits) -> list[Settlement]:
    """The records some window may still count: the rest can be forgotten by the shell's memory."""
    return [r for r in records if in_window(r.at_s, now_s, limits.longest_window_s)]
