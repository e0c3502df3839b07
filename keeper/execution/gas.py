"""EIP-1559 fee policy for liquidation transactions: pure integer maths, no I/O, no clock.

The sender fetches the pending block's base fee (and, for the percentile strategy, one
``eth_feeHistory`` reward column), then asks this module what to bid. Every amount is an ``int`` in
wei (fees are wei per gas); ratios are basis points (1 bp = 0.01 %, 10_000 bps = 100 %). Comparisons
against a share of profit are done by cross-multiplying, so no rounding can let a bid slip past a
cap. ``None`` means "do not send (or do not replace) at this price": the caller skips, keeps
waiting, or drops, and says which.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Final, Literal

BPS: Final[int] = 10_000
MIN_REPLACEMENT_BUMP_BPS: Final[int] = 1_250
"""12.5 % on both the fee cap and the tip: above geth's 10 % replacement rule, with margin for
txpools that ask more. Below it a replacement risks "replacement transaction underpriced"."""

Strategy = Literal["fixed", "percentile", "profit_share"]
_STRATEGIES: Final[frozenset[str]] = frozenset({"fixed", "percentile", "profit_share"})


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True, kw_only=True)
class FeePolicy:
    """How much the keeper is willing to bid for gas, and when it gives up.

    ``strategy`` picks the priority fee (tip): ``fixed`` bids ``priority_fee_wei``; ``percentile``
    bids the recent ``eth_feeHistory`` reward at ``priority_percentile`` (the caller fetches it);
    ``profit_share`` bids the tip at which ``tip x gas_limit`` is ``profit_share_bps`` of the
    expected gross profit, so juicier liquidations outbid competitors harder.
    """

    strategy: Strategy
    max_fee_per_gas_wei: int
    """Hard cap on ``maxFeePerGas``: the keeper never signs a higher bid, whatever the profit."""
    base_fee_multiplier_bps: int = 20_000
    """Head-room over the current base fee (which can rise 12.5 % per block): 2x survives ~6 full
    blocks, so a bid stays includable while it waits."""
    priority_fee_wei: int = 1_000_000_000
    priority_percentile: int = 50
    profit_share_bps: int = 1_000
    max_gas_cost_share_bps: int = 5_000
    """The worst-case gas cost (gas limit x max fee) may not exceed this share of gross profit."""
    min_profit_wei: int = 0
    """Floor on gross profit minus worst-case gas cost."""
    replacement_bump_bps: int = MIN_REPLACEMENT_BUMP_BPS
    replace_after_blocks: int = 2

    def __post_init__(self) -> None:
        if self.strategy not in _STRATEGIES:
            raise ValueError(
                f"gas policy: strategy must be one of {sorted(_STRATEGIES)}, got {self.strategy!r}"
            )
        for field in fields(self):
            value = getattr(self, field.name)
            if field.name != "strategy" and (not _is_int(value) or value < 0):
                raise ValueError(f"gas policy: {field.name} must be a non-negative integer, got {value!r}")
        if self.max_fee_per_gas_wei == 0:
            raise ValueError(
                "gas policy: max_fee_per_gas_wei must be positive (it is the hard cap on any bid)"
            )
        if self.base_fee_multiplier_bps < BPS:
            raise ValueError(
                "gas policy: base_fee_multiplier_bps must be >= 10000 (a max fee below the base fee"
                f" is never included), got {self.base_fee_multiplier_bps}"
            )
        if self.priority_percentile > 100:
            raise ValueError(
                f"gas policy: priority_percentile must be 0..100, got {self.priority_percentile}"
            )
        for name in ("profit_share_bps", "max_gas_cost_share_bps"):
            if getattr(self, name) > BPS:
                raise ValueError(f"gas policy: {name} must be <= 10000 (100 %), got {getattr(self, name)}")
        if self.replacement_bump_bps < MIN_REPLACEMENT_BUMP_BPS:
            raise ValueError(
                "gas policy: replacement_bump_bps must be >= 1250 (12.5 %, or nodes reject the"
                f" replacement as underpriced), got {self.replacement_bump_bps}"
            )
        if self.replace_after_blocks < 1:
            raise ValueError(
                f"gas policy: replace_after_blocks must be >= 1, got {self.replace_after_blocks}"
            )


@dataclass(frozen=True, slots=True)
class Fees:
    """The two EIP-1559 fee fields of one transaction, in wei per gas."""

    max_fee_per_gas: int
    max_priority_fee_per_gas: int

    def __post_init__(self) -> None:
        if not (_is_int(self.max_fee_per_gas) and _is_int(self.max_priority_fee_per_gas)):
            raise ValueError("fees must be integers (wei per gas)")
        if self.max_priority_fee_per_gas < 0 or self.max_priority_fee_per_gas > self.max_fee_per_gas:
            raise ValueError(
                f"fees: need 0 <= max_priority_fee_per_gas ({self.max_priority_fee_per_gas})"
                f" <= max_fee_per_gas ({self.max_fee_per_gas})"
            )

    def worst_case_cost(self, gas_limit: int) -> int:
        """The most this transaction can cost: every unit of the gas limit at the full max fee."""
        return gas_limit * self.max_fee_per_gas

    def effective_gas_price(self, base_fee_wei: int) -> int:
        """What a block with this base fee charges per gas: ``min(max_fee, base_fee + tip)``."""
        return min(self.max_fee_per_gas, base_fee_wei + self.max_priority_fee_per_gas)


def _check_inputs(base_fee_wei: int, gas_limit: int, reward_percentile_wei: int | None) -> None:
    if reward_percentile_wei is not None and reward_percentile_wei < 0:
        raise ValueError(f"reward_percentile_wei must be non-negative, got {reward_percentile_wei}")
    if base_fee_wei < 0:
        raise ValueError(f"base_fee_wei must be non-negative, got {base_fee_wei}")
    if gas_limit <= 0:
        raise ValueError(f"gas_limit must be positive, got {gas_limit}")


def _priority_fee(
    policy: FeePolicy, gas_limit: int, gross_profit_wei: int, reward_percentile_wei: int | None
) -> int:
    """The tip the strategy asks for, before any cap.

    The percentile strategy falls back to the fixed tip when the node gave no fee history (a fresh
    devnet, a node without ``eth_feeHistory``): bidding zero would stall the liquidation. The profit
    share rounds down so the tip never spends more than the configured share.
    """
    if policy.strategy == "percentile" and reward_percentile_wei is not None:
        return reward_percentile_wei
    if policy.strategy == "profit_share":
        return max(gross_profit_wei, 0) * policy.profit_share_bps // BPS // gas_limit
    return policy.priority_fee_wei


def _target_fees(
    policy: FeePolicy,
    base_fee_wei: int,
    gas_limit: int,
    gross_profit_wei: int,
    reward_percentile_wei: int | None,
) -> Fees:
    """Base fee x multiplier + tip, both clipped to the hard cap (the tip never exceeds the max fee)."""
    priority = _priority_fee(policy, gas_limit, gross_profit_wei, reward_percentile_wei)
    max_fee = min(base_fee_wei * policy.base_fee_multiplier_bps // BPS + priority, policy.max_fee_per_gas_wei)
    return Fees(max_fee_per_gas=max_fee, max_priority_fee_per_gas=min(priority, max_fee))


def _affordable(
    fees: Fees, policy: FeePolicy, base_fee_wei: int, gas_limit: int, gross_profit_wei: int
) -> bool:
    """Whether a bid passes every profit rule, judged on its worst case.

    - The max fee must cover the current base fee: a liquidation is a race, and a bid that cannot be
      included in the next block only ties up the nonce while a competitor wins.
    - The worst-case gas cost may not exceed ``max_gas_cost_share_bps`` of gross profit, so a base
      fee spike cannot turn a liquidation into a donation to the block builder.
    - Gross profit minus the worst-case cost must reach ``min_profit_wei``: the floor holds even if
      every unit of gas is used at the full max fee.
    """
    worst = fees.worst_case_cost(gas_limit)
    return (
        fees.max_fee_per_gas >= base_fee_wei
        and worst * BPS <= gross_profit_wei * policy.max_gas_cost_share_bps
        and gross_profit_wei - worst >= policy.min_profit_wei
    )


def initial_fees(
    policy: FeePolicy,
    base_fee_wei: int,
    gas_limit: int,
    gross_profit_wei: int,
    reward_percentile_wei: int | None,
) -> Fees | None:
    """Fees for the first send of a liquidation, or ``None`` when no allowed bid is profitable.

    ``max_fee = base_fee x multiplier + tip``, clipped to the hard cap; the tip comes from the
    strategy and is clipped to the max fee. ``None`` when the bid fails a profit rule (see
    ``_affordable``): the caller skips the opportunity and logs why.
    """
    _check_inputs(base_fee_wei, gas_limit, reward_percentile_wei)
    fees = _target_fees(policy, base_fee_wei, gas_limit, gross_profit_wei, reward_percentile_wei)
    return fees if _affordable(fees, policy, base_fee_wei, gas_limit, gross_profit_wei) else None


def overhead_fees(
    policy: FeePolicy,
    base_fee_wei: int,
    reward_percentile_wei: int | None,
    previous: Fees | None = None,
) -> Fees | None:
    """Fees for a transaction that earns nothing itself (an ERC-20 approval a liquidation needs).

    The same bid as a liquidation's (base fee x multiplier + tip, under the hard cap), with no profit
    rule to pass; ``profit_share`` has no profit to share, so it tips like ``fixed``. With
    ``previous`` it is a replacement: both fields rise by at least ``replacement_bump_bps``, and
    ``None`` once that would exceed the cap (the caller keeps waiting).
    """
    _check_inputs(base_fee_wei, 1, reward_percentile_wei)
    tip_policy = policy.strategy if policy.strategy != "profit_share" else "fixed"
    tip = policy.priority_fee_wei
    if tip_policy == "percentile" and reward_percentile_wei is not None:
        tip = reward_percentile_wei
    max_fee = min(base_fee_wei * policy.base_fee_multiplier_bps // BPS + tip, policy.max_fee_per_gas_wei)
    priority = min(tip, max_fee)
    if previous is not None:
        max_fee = max(_bump(previous.max_fee_per_gas, policy.replacement_bump_bps), max_fee)
        priority = max(_bump(previous.max_priority_fee_per_gas, policy.replacement_bump_bps), priority)
        if max_fee > policy.max_fee_per_gas_wei:
            return None
    return Fees(max_fee_per_gas=max_fee, max_priority_fee_per_gas=priority)


def _bump(value: int, bump_bps: int) -> int:
    """``value`` raised by ``bump_bps``, rounded up, and always strictly higher (a 0 tip becomes 1)."""
    return max(_ceil_div(value * (BPS + bump_bps), BPS), value + 1)


def replacement_fees(
    previous: Fees,
    policy: FeePolicy,
    base_fee_wei: int,
    gas_limit: int,
    gross_profit_wei: int,
    *,
    reward_percentile_wei: int | None = None,
) -> Fees | None:
    """Fees for re-sending the same nonce, or ``None`` when the caps or the profit forbid it.

    Both fields rise by at least ``replacement_bump_bps`` (rounded up, and strictly), because a node
    rejects a replacement that does not raise both the fee cap and the tip; and each is at least what
    a fresh ``initial_fees`` would bid now, so a base fee that has run away is caught up in one step.
    A bump is never clipped to the cap: a clipped bump would be rejected as underpriced anyway, so
    over the cap the answer is ``None`` and the caller keeps waiting (or drops when the position is
    gone).
    """
    _check_inputs(base_fee_wei, gas_limit, reward_percentile_wei)
    fresh = _target_fees(policy, base_fee_wei, gas_limit, gross_profit_wei, reward_percentile_wei)
    max_fee = max(_bump(previous.max_fee_per_gas, policy.replacement_bump_bps), fresh.max_fee_per_gas)
    priority = max(
        _bump(previous.max_priority_fee_per_gas, policy.replacement_bump_bps), fresh.max_priority_fee_per_gas
    )
    if max_fee > policy.max_fee_per_gas_wei:
        return None
    fees = Fees(max_fee_per_gas=max_fee, max_priority_fee_per_gas=priority)
    return fees if _affordable(fees, policy, base_fee_wei, gas_limit, gross_profit_wei) else None


def should_replace(sent_block: int, current_block: int, policy: FeePolicy) -> bool:
    """Whether a transaction sent at ``sent_block`` has waited ``replace_after_blocks`` unmined.

    A head behind the send block (a reorg, a lagging RPC) never triggers a replacement.
    """
    return current_block - sent_block >= policy.replace_after_blocks


def net_profit_wei(gross_profit_wei: int, gas_used: int, effective_gas_price: int) -> int:
    """Realised profit from a receipt: gross minus ``gasUsed x effectiveGasPrice`` (may be negative)."""
    return gross_profit_wei - gas_used * effective_gas_price


def expected_net_profit_wei(gross_profit_wei: int, gas_limit: int, fees: Fees, base_fee_wei: int) -> int:
    """Profit expected before sending: the whole gas limit at the price a block with this base fee
    would charge, ``min(max_fee, base_fee + tip)``; conservative, since ``gasUsed <= gas_limit``."""
    return net_profit_wei(gross_profit_wei, gas_limit, fees.effective_gas_price(base_fee_wei))
