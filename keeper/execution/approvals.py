"""Inventory mode's ERC-20 approvals: how much to approve (pure), and sending it like a liquidation.

A wallet holding the debt tokens but not approved to the pool / Morpho would skip every
opportunity forever. So when start-up's wallet check, or a block's opportunity, finds a debt
token's allowance for its spender short, the keeper approves it from its own account: the same
nonce manager, signer, fee cap and durable store as liquidations (recorded as pending before it is
broadcast, rebroadcast after a restart, settled by its receipt, fee-bumped if it waits). An
approval is a `SentTx` whose ``market`` is the token and ``user`` the spender, so the nonce
manager's one-per-position rule keeps one approval per (token, spender) in flight, across
restarts too. The opportunity waits one block ("approval pending") and goes out once it is mined.

Amounts (``execution.approvals``): "bounded" sets the allowance to the wallet's balance of the
token (at least what is needed), so the spender can never pull more than the keeper held when it
approved; "unlimited" sets uint256 max once (a token that draws even that down never runs it out);
"off" never approves. A token that refuses to change a non-zero allowance (USDT) shows as a
reverting ``approve`` simulation: the keeper then approves 0 first and the amount a block later.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

import structlog
from eth_utils.address import to_checksum_address

from keeper.chain.abi import contract
from keeper.chain.revert import describe_revert, revert_data
from keeper.chain.rpc import Rpc, RpcError
from keeper.errors import Retryable
from keeper.execution.gas import FeePolicy, Fees, overhead_fees
from keeper.execution.nonces import NonceManager
from keeper.execution.signer import Signer
from keeper.protocols.base import PositionKey
from keeper.state.store import Store
from keeper.state.txstate import APPROVAL_NOTE, SentTx

log = structlog.get_logger(__name__)

APPROVE = contract("common/IERC20").fn("approve")
MAX_ALLOWANCE = 2**256 - 1
BASE_FEE_MAX_RISE_BPS = 12_500

ApprovalMode = Literal["bounded", "unlimited", "off"]

AWAITING = "approval pending"
"""A block's skip reason while its approval is decided; replaced by what became of it."""


def approval_amount(mode: ApprovalMode, allowance: int, balance: int, needed: int) -> int | None:
    """The allowance to approve so that ``needed`` can be pulled, or None when none is to be sent."""
    if mode == "off" or needed <= 0 or allowance >= needed:
        return None
    return MAX_ALLOWANCE if mode == "unlimited" else max(balance, needed)


class Holding(NamedTuple):
    """One debt token of one protocol in the wallet: what it holds and lets ``spender`` pull."""

    protocol: str
    token: str
    spender: str
    balance: int
    allowance: int


@dataclass(frozen=True, slots=True)
class ApprovalNeed:
    protocol: str
    token: str
    spender: str
    allowance: int
    """The allowance read this block."""
    amount: int
    """What to approve: 0 when a USDT-style token must be reset first."""

    @property
    def key(self) -> PositionKey:
        return PositionKey(self.token, self.spender)


class Approvals:
    """The approval half of `keeper.execution.executor.Executor` (a mixin: its node, signer, nonces,
    store and fee policy; it provides ``_signed``, ``_estimate`` and ``_fill_gap``)."""

    rpc: Rpc
    address: str
    policy: FeePolicy
    gas_limit_margin_bps: int
    store: Store
    nonces: NonceManager | None
    signer: Signer | None
    approvals: ApprovalMode
    _reward: int | None
    _dry_run_reported: set[PositionKey]

    def _signed(self, nonce: int, to: str, data: bytes, gas_limit: int, fees: Fees) -> tuple[str, str]:
        raise NotImplementedError

    async def _estimate(self, call: tuple[str, bytes]) -> int:
        raise NotImplementedError

    async def _fill_gap(self, refused: SentTx, reason: str, block_number: int) -> None:
        raise NotImplementedError

    def approval_pending(self, token: str, spender: str) -> bool:
        return self.nonces is not None and self.nonces.holder(PositionKey(token, spender)) is not None

    def short_allowance(
        self,
        protocol: str,
        holding: tuple[str, str],
        allowance: int,
        balance: int,
        needed: int,
        wants: dict[tuple[str, str], ApprovalNeed],
    ) -> str:
        """Why an opportunity whose allowance is short is skipped; an approval it needs joins ``wants``."""
        token, spender = holding
        if self.approval_pending(token, spender):
            return f"{AWAITING}: the approval of {token} for {spender} is in flight"
        amount = approval_amount(self.approvals, allowance, balance, needed)
        if amount is None:
            return f"approval missing: {token} allowance for {spender} is {allowance}"
        wants.setdefault(holding, ApprovalNeed(protocol, token, spender, allowance, amount))
        return AWAITING

    async def approve_inventory(
        self, holdings: Sequence[Holding], block_number: int
    ) -> dict[tuple[str, str], str]:
        """Start-up: approve every debt token the wallet holds whose allowance would not cover it."""
        wants = [
            ApprovalNeed(h.protocol, h.token, h.spender, h.allowance, amount)
            for h in holdings
            if not self.approval_pending(h.token, h.spender)
            and (amount := approval_amount(self.approvals, h.allowance, h.balance, h.balance)) is not None
        ]
        if not wants:
            return {}
        header = await self.rpc.request("eth_getBlockByNumber", ["latest", False])
        return await self.send_approvals(wants, block_number, int(header.get("baseFeePerGas") or "0x0", 16))

    async def send_approvals(
        self, wants: Sequence[ApprovalNeed], block_number: int, base_fee: int
    ) -> dict[tuple[str, str], str]:
        """Simulate, sign, persist and broadcast one approval per (token, spender); the skip reason
        of the opportunities waiting on each. Dry-run reports what it would approve, once."""
        if self.signer is None or self.nonces is None:
            for need in wants:
                if need.key not in self._dry_run_reported:
                    self._dry_run_reported.add(need.key)
                    log.info("approval_dry_run", **_fields(need))
            return {
                (w.token, w.spender): f"approval missing: {w.token} allowance for {w.spender} is "
                f"{w.allowance}; live mode would approve {w.amount}"
                for w in wants
            }
        calls = [(w.token, APPROVE.call(w.spender, w.amount)) for w in wants]
        estimates = await asyncio.gather(*(self._estimate(c) for c in calls), return_exceptions=True)
        reasons: dict[tuple[str, str], str] = {}
        ready: list[tuple[ApprovalNeed, int]] = []
        for want, first in zip(wants, estimates, strict=True):
            need, estimate = await self._or_reset(want, first)
            if isinstance(estimate, RpcError):
                log.warning("approval_refused", error=_reason(estimate), **_fields(need))
                reasons[(need.token, need.spender)] = (
                    f"approval missing: approve reverted: {_reason(estimate)}"
                )
            else:
                ready.append((need, estimate * (10_000 + self.gas_limit_margin_bps) // 10_000))
        if ready:
            reasons |= await self._broadcast_approvals(ready, block_number, base_fee)
        return reasons

    async def _or_reset(
        self, need: ApprovalNeed, estimate: int | BaseException
    ) -> tuple[ApprovalNeed, int | RpcError]:
        """The approval to send and its gas estimate. A USDT-style token refuses to change a non-zero
        allowance (its ``approve`` simulation reverts): then approve 0 first, the amount next block."""
        if isinstance(estimate, RpcError) and need.allowance > 0 and need.amount > 0:
            reset = ApprovalNeed(need.protocol, need.token, need.spender, need.allowance, 0)
            try:
                return reset, await self._estimate((need.token, APPROVE.call(need.spender, 0)))
            except RpcError as exc:
                return reset, exc
        if isinstance(estimate, BaseException) and not isinstance(estimate, RpcError):
            raise estimate
        return need, estimate

    async def _broadcast_approvals(
        self, ready: list[tuple[ApprovalNeed, int]], block_number: int, base_fee: int
    ) -> dict[tuple[str, str], str]:
        assert self.nonces is not None
        bound = -(-base_fee * BASE_FEE_MAX_RISE_BPS // 10_000)
        fees = overhead_fees(self.policy, bound, self._reward)
        assert fees is not None  # without a previous bid there is always one under the cap
        signed = []
        for need, gas_limit in ready:
            nonce = self.nonces.reserve()
            raw, tx_hash = self._signed(
                nonce,
                to_checksum_address(need.token),
                APPROVE.call(need.spender, need.amount),
                gas_limit,
                fees,
            )
            tx = SentTx(
                nonce, tx_hash, need.protocol, need.token, need.spender, raw, fees.max_fee_per_gas,
                fees.max_priority_fee_per_gas, gas_limit, 0, block_number, note=APPROVAL_NOTE,
            )  # fmt: skip
            signed.append(tx)
        self.store.record_sent_many(signed)  # persisted before they leave, like liquidations
        for tx in signed:
            self.nonces.claim(tx.position, tx.nonce)
            self.nonces.confirm(tx.nonce)
        results = await asyncio.gather(
            *(self.rpc.request("eth_sendRawTransaction", [tx.raw_tx]) for tx in signed),
            return_exceptions=True,
        )
        reasons = {}
        for (need, _), tx, result in zip(ready, signed, results, strict=True):
            pair = (need.token, need.spender)
            if isinstance(result, RpcError):
                reasons[pair] = f"approval missing: broadcast refused: {result.message}"
                await self._fill_gap(tx, result.message, block_number)
                continue
            if isinstance(result, Retryable):
                log.warning("approval_broadcast_uncertain", tx=tx.tx_hash, nonce=tx.nonce)
            elif isinstance(result, BaseException):
                raise result
            log.info("approval_sent", tx=tx.tx_hash, nonce=tx.nonce, **_fields(need))
            what = "reset to 0 first" if need.amount == 0 else "sent"
            reasons[pair] = f"{AWAITING}: approval of {need.token} for {need.spender} {what} in {tx.tx_hash}"
        return reasons


def _fields(need: ApprovalNeed) -> dict[str, str]:
    return {
        "protocol": need.protocol,
        "token": need.token,
        "spender": need.spender,
        "allowance": str(need.allowance),
        "amount": str(need.amount),
    }


def _reason(error: RpcError) -> str:
    data = revert_data(error.data)
    return error.message if data is None else f"{error.message}: {describe_revert(data)}"
