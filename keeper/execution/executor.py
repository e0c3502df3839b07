"""From an opportunity to a transaction, and from a sent transaction to its end.

`attempt_all` checks inventory and approval (one read per block, earmarked as it goes), simulates
every candidate at the head in parallel (one ``eth_call`` at the gas limit it will be sent with, or
``eth_estimateGas``; either reverts where the call would; flash calls are not simulated),
prices fees with the pure policy, and only then, in live mode, reserves a nonce, signs, persists
the transaction as pending and broadcasts it. Dry-run stops
before signing. `track` reads the receipts of what is in flight (one batch, however many positions
are tracked), records each outcome, replaces a transaction that waited too long with higher fees,
and cancels (same nonce, empty self-transfer) one whose position is no longer liquidatable.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import rlp  # type: ignore[import-untyped]
import structlog
from eth_utils.address import to_checksum_address
from prometheus_client import CollectorRegistry

from keeper.chain.abi import contract
from keeper.chain.multicall import Call, aggregate3
from keeper.chain.revert import describe_revert, revert_data
from keeper.chain.rpc import Rpc, RpcError
from keeper.errors import Retryable
from keeper.execution.approvals import AWAITING, ApprovalMode, ApprovalNeed, Approvals
from keeper.execution.gas import (
    FeePolicy,
    Fees,
    expected_net_profit_wei,
    initial_fees,
    overhead_fees,
    replacement_fees,
    should_replace,
)
from keeper.execution.nonces import NonceManager
from keeper.execution.recovery import Recovery, next_base_fee_bound
from keeper.execution.signer import Signer
from keeper.execution.spend_guard import SpendGuard
from keeper.obs.metrics import Metrics
from keeper.protocols.base import PositionKey
from keeper.protocols.registry import liquidation_events
from keeper.risk.opportunity import Opportunity
from keeper.state.store import Store
from keeper.state.transactions import ReceiptRecord
from keeper.state.txstate import APPROVAL_NOTE, CANCEL_NOTE, GAP_FILLER_NOTE, SentTx, TxState

log = structlog.get_logger(__name__)

ERC20 = contract("common/IERC20")
BALANCE_OF = ERC20.fn("balanceOf")
ALLOWANCE = ERC20.fn("allowance")
FIRST_WAVE = 8
REVERT_BACKOFF_BLOCKS = 10
"""After a liquidation reverts (not a race lost), its position waits this many blocks, doubled for
each further revert in a row, up to `MAX_BACKOFF_BLOCKS`."""
MAX_BACKOFF_BLOCKS = 1_000
WAVE = 64
"""Opportunities simulated and sent together, best first: the first 8 leave as soon as they are
simulated, then 64 at a time, each wave sent before the next is simulated."""

Outcome = Literal["sent", "dry_run", "skipped"]


@dataclass(frozen=True, slots=True)
class _Ready:
    """Simulated and priced; in live mode it is signed and sent with the block's others."""

    opportunity: Opportunity
    call: tuple[str, bytes]
    gas_limit: int
    fees: Fees
    net: int
    index: int = -1


@dataclass(frozen=True, slots=True)
class Attempt:
    opportunity: Opportunity
    outcome: Outcome
    reason: str = ""
    tx_hash: str = ""
    gas_limit: int = 0
    expected_net_profit_wei: int = 0


class Executor(Recovery, Approvals):
    def __init__(
        self,
        rpc: Rpc,
        address: str,
        policy: FeePolicy,
        gas_limit_margin_bps: int,
        store: Store,
        nonces: NonceManager | None,
        signer: Signer | None,
        metrics: Metrics | None = None,
        approvals: ApprovalMode = "off",
        *,
        inventory: bool = True,
        guard: SpendGuard | None = None,
    ) -> None:
        """``signer``/``nonces`` None means dry-run: everything up to signing, nothing sent.
        ``approvals``: whether (and how much) to approve a debt token whose allowance is short.
        ``inventory`` False: the calls go through the flash executor contract, which needs none of
        the keeper's tokens, so no balance or allowance is read, checked or approved.
        ``guard``: the spend guard; once tripped nothing new is sent (in flight is still tracked)."""
        self.rpc = rpc
        self.address = address
        self.policy = policy
        self.gas_limit_margin_bps = gas_limit_margin_bps
        self.store = store
        self.nonces = nonces
        self.signer = signer
        self.metrics = metrics if metrics is not None else Metrics(CollectorRegistry())
        self.approvals = approvals
        self._dry_run_reported: set[PositionKey] = set()
        """(token, spender) approvals dry-run already reported: said once, not every block."""
        self.inventory = inventory
        self.guard = guard
        self._sent_at: dict[str, float] = {}
        """tx hash -> monotonic time it was broadcast, for the sent -> included latency."""
        self._reward: int | None = None
        """This block's fee-history reward at the policy's percentile (percentile strategy only)."""
        self._backoff: dict[PositionKey, tuple[int, int]] = {}
        """Position -> (first block it may be tried again, reverts in a row): a liquidation that
        reverted for a reason the maths did not see is not sent again every block."""
        self._block = 0
        """The block `attempt_all` is deciding for."""
        self._replacements: list[tuple[SentTx, bool]] = []
        """(transaction, cancel?) the last `track` decided to replace, until `send_replacements`."""
        self._handed_over_s = 0.0
        self._send_steps: dict[str, float] = {}
        """Seconds the last `_send_all` spent signing, persisting and logging before the broadcast."""
        """``time.perf_counter()`` when the last `_send_all` began broadcasting its signed transactions."""
        self.first_sent_at: float | None = None
        """``time.perf_counter()`` when the last `attempt_all`'s first wave was handed to the RPC."""
        self.settled = Counter[str]()
        """Liquidations mined / reverted, and totals: gas paid (wei) and expected net profit (wei)."""
        self.last_timings: dict[str, float] = {}
        """Milliseconds spent in each step of the last `attempt_all` (wallet, simulate, sign, send)."""
        self._gas_used_most: dict[str, int] = {}
        """Protocol name -> the most gas one of this process's mined liquidations of it used."""

    @property
    def dry_run(self) -> bool:
        return self.signer is None

    def in_flight(self, key: PositionKey) -> bool:
        return self.nonces is not None and self.nonces.holder(key) is not None

    async def attempt_all(
        self,
        items: Sequence[tuple[Opportunity, tuple[str, bytes]]],
        block_number: int,
        base_fee: int,
        gas: Sequence[int | None] | None = None,
        check_at_gas: bool = False,
    ) -> list[Attempt]:
        """Every opportunity of a block: one inventory read, then waves in the order given (most
        profitable first): each wave is simulated in parallel, then (live) signed, persisted in one
        commit and broadcast, so the best liquidations leave before the rest are simulated.
        ``gas``: per item, the gas its path needs (measured), sent as that plus the margin; None
        (or an item's None) simulates with ``eth_estimateGas``. ``check_at_gas``: the calls with a
        known gas are simulated too, with one ``eth_call`` at the limit they are sent with (the most
        this keeper's liquidations of their protocol used, when lower; `keeper.execution.direct_gas`);
        otherwise (flash: the contract's guards) they are not simulated."""
        started_s = time.perf_counter()
        self._block = block_number
        self.first_sent_at = None
        refusal = self.guard.refusal() if self.guard is not None and not self.dry_run else ""
        if refusal:  # tripped (possibly by this block's receipts): not one new transaction
            return [Attempt(opportunity, "skipped", refusal) for opportunity, _ in items]
        self._reward = await self._fee_history_reward() if items else None
        pairs = {(o.quote.debt_asset, call[0]) for o, call in items} if self.inventory else set()
        wallet = await self._wallet(pairs)
        held = {token: balance for (token, _), (balance, _) in wallet.items()}
        wallet_s = time.perf_counter()
        attempts: dict[int, Attempt] = {}
        wants: dict[tuple[str, str], ApprovalNeed] = {}
        awaiting: dict[int, tuple[str, str]] = {}
        simulate_s = send_s = 0.0
        first_sent_s: float | None = None
        first_steps: dict[str, float] = {}
        bound = next_base_fee_bound(base_fee)
        bounds = [0, *range(FIRST_WAVE, len(items), WAVE), len(items)]
        for wave_start, wave_end in itertools.pairwise(bounds):
            wave = range(wave_start, wave_end)
            staged = []
            for index in wave:
                problem = self._precheck(items[index][0], items[index][1][0], wallet, held, wants)
                if problem == AWAITING:
                    awaiting[index] = (items[index][0].quote.debt_asset, items[index][1][0])
                elif problem:
                    attempts[index] = Attempt(items[index][0], "skipped", problem)
                else:
                    staged.append(index)
            wave_s = time.perf_counter()
            known = [None if gas is None else gas[i] for i in staged]
            estimates = await self._wave_gas([items[i] for i in staged], known, check_at_gas)
            simulated_s = time.perf_counter()
            simulate_s += simulated_s - wave_s
            ready: list[_Ready] = []
            for index, estimate in zip(staged, estimates, strict=True):
                decided = self._decide(items[index][0], items[index][1], estimate, bound, wallet)
                if isinstance(decided, Attempt):
                    attempts[index] = decided
                else:
                    ready.append(replace(decided, index=index))
            if ready:
                attempts |= await self._send_all(ready, block_number)
                if first_sent_s is None:
                    first_sent_s, first_steps = self._handed_over_s, self._send_steps
            send_s += time.perf_counter() - simulated_s
        if wants:  # after every liquidation of the block is out: they do not wait for these
            reasons = await self.send_approvals(list(wants.values()), block_number, base_fee)
            attempts |= {i: Attempt(items[i][0], "skipped", reasons[pair]) for i, pair in awaiting.items()}
        self.last_timings = {
            "wallet_ms": round((wallet_s - started_s) * 1000, 1),
            "simulate_ms": round(simulate_s * 1000, 1),
            "sign_and_send_ms": round(send_s * 1000, 1),
            "first_send_ms": round(((first_sent_s or started_s) - started_s) * 1000, 1),
        } | {f"first_{step}_ms": round(seconds * 1000, 1) for step, seconds in first_steps.items()}
        self.first_sent_at = first_sent_s
        return [attempts[i] for i in range(len(items))]

    def _precheck(
        self,
        opportunity: Opportunity,
        target: str,
        wallet: dict[tuple[str, str], list[int]],
        held: dict[str, int],
        wants: dict[tuple[str, str], ApprovalNeed],
    ) -> str:
        quote = opportunity.quote
        key = PositionKey(quote.market, quote.user)
        if self.in_flight(key):
            return "transaction already in flight"
        if key in self._backoff and self._block < self._backoff[key][0]:
            until, streak = self._backoff[key]
            return f"reverted: backing off until block {until} ({streak} in a row)"
        if not self.inventory:
            return ""
        balance, allowance = wallet[(quote.debt_asset, target)]
        if balance < quote.debt_repaid:
            return f"inventory short: holds {balance} of {quote.debt_asset}, needs {quote.debt_repaid}"
        if allowance < quote.debt_repaid:
            pair = (quote.debt_asset, target)
            return self.short_allowance(
                opportunity.name, pair, allowance, held[quote.debt_asset], quote.debt_repaid, wants
            )
        self._earmark(opportunity, target, wallet, -quote.debt_repaid)
        return ""

    @staticmethod
    def _earmark(
        opportunity: Opportunity, target: str, wallet: dict[tuple[str, str], list[int]], delta: int
    ) -> None:
        """Later opportunities of the block see what is left: of the token (one balance, any spender)
        and of the allowance for ``target`` (each liquidation draws it down, so a block's liquidations
        together must fit in it, not just each alone)."""
        for (token, spender), held in wallet.items():
            if token == opportunity.quote.debt_asset:
                held[0] += delta
                if spender == target:
                    held[1] += delta

    async def _wave_gas(
        self, wave: Sequence[tuple[Opportunity, tuple[str, bytes]]], known: Sequence[int | None], check: bool
    ) -> list[int | BaseException]:
        """Each call's gas before the margin (`_liquidation_gas`), simulated in parallel; an exception
        in place of a gas is its simulation failing."""
        if not check and None not in known:  # nothing to ask the node: no await, so no other task
            return [k for k in known if k is not None]  # runs before the wave is out
        return await asyncio.gather(
            *(self._liquidation_gas(o, call, k, check) for (o, call), k in zip(wave, known, strict=True)),
            return_exceptions=True,
        )

    async def _estimate(self, call: tuple[str, bytes]) -> int:
        """``eth_estimateGas`` at the head: a revert (`RpcError`) is the simulation failing."""
        request = {"from": self.address, "to": call[0], "data": "0x" + call[1].hex()}
        return int(await self.rpc.request("eth_estimateGas", [request, "latest"]), 16)

    async def _liquidation_gas(
        self, opportunity: Opportunity, call: tuple[str, bytes], known: int | None, check: bool
    ) -> int:
        """The gas to send ``call`` with, before the margin; an `RpcError` is the simulation failing.

        ``known`` None: ``eth_estimateGas`` at the head. Else, unchecked, ``known`` as it is; checked,
        the least of ``known`` and the most gas this keeper's liquidations of the protocol used,
        if one ``eth_call`` at that plus the margin succeeds, else an estimate after all."""
        if known is not None and not check:
            return known
        if known is not None:
            gas = min(known, self._gas_used_most.get(opportunity.name, known))
            limit = gas * (10_000 + self.gas_limit_margin_bps) // 10_000
            request = {"from": self.address, "to": call[0], "data": "0x" + call[1].hex(), "gas": hex(limit)}
            try:
                await self.rpc.request("eth_call", [request, "latest"])
                return gas
            except RpcError:
                pass  # out of gas at that limit, or a revert: the estimate tells which
        return await self._estimate(call)

    def _decide(
        self,
        opportunity: Opportunity,
        call: tuple[str, bytes],
        estimate: int | BaseException,
        base_fee_bound: int,
        wallet: dict[tuple[str, str], list[int]],
    ) -> Attempt | _Ready:
        give_back = opportunity.quote.debt_repaid
        if isinstance(estimate, RpcError):
            self._earmark(opportunity, call[0], wallet, give_back)
            return Attempt(opportunity, "skipped", f"simulation reverted: {_revert_reason(estimate)}")
        if isinstance(estimate, BaseException):
            raise estimate
        gas_limit = estimate * (10_000 + self.gas_limit_margin_bps) // 10_000
        fees = initial_fees(
            self.policy, base_fee_bound, gas_limit, opportunity.gross_profit_wei, self._reward
        )
        if fees is None:
            self._earmark(opportunity, call[0], wallet, give_back)
            return Attempt(opportunity, "skipped", "not profitable after gas", gas_limit=gas_limit)
        net = expected_net_profit_wei(opportunity.gross_profit_wei, gas_limit, fees, base_fee_bound)
        if self.signer is None or self.nonces is None:
            return Attempt(opportunity, "dry_run", gas_limit=gas_limit, expected_net_profit_wei=net)
        return _Ready(opportunity, call, gas_limit, fees, net)

    async def _fee_history_reward(self) -> int | None:
        """The tip paid at the policy's percentile in the last block (``eth_feeHistory``), if used."""
        if self.policy.strategy != "percentile":
            return None
        try:
            history = await self.rpc.request(
                "eth_feeHistory", [1, "latest", [self.policy.priority_percentile]]
            )
        except RpcError:
            return None
        rewards = history.get("reward") or [[]]
        return int(rewards[-1][0], 16) if rewards[-1] else None

    async def rebroadcast(self) -> None:
        """After a restart: send every in-flight transaction's exact bytes again (the node may have
        dropped them while the keeper was down); "already known" and "nonce too low" are fine."""
        for tx in self.store.in_flight():
            try:
                await self.rpc.request("eth_sendRawTransaction", [tx.raw_tx])
                log.info("transaction_rebroadcast", tx=tx.tx_hash, nonce=tx.nonce)
            except RpcError as exc:
                log.info("transaction_rebroadcast_refused", tx=tx.tx_hash, nonce=tx.nonce, error=exc.message)

    async def _wallet(self, pairs: set[tuple[str, str]]) -> dict[tuple[str, str], list[int]]:
        """[balance, allowance] of each (debt token, spender), read once per block."""
        ordered = sorted(pairs)
        calls = []
        for token, spender in ordered:
            calls += [
                Call(token, BALANCE_OF.call(self.address)),
                Call(token, ALLOWANCE.call(self.address, spender)),
            ]
        results = await aggregate3(self.rpc, calls, "latest")
        for index, (token, _) in enumerate(ordered):
            self.metrics.wallet.labels(token).set(BALANCE_OF.value(results[2 * index].data))
        return {
            pair: [BALANCE_OF.value(results[2 * i].data), ALLOWANCE.value(results[2 * i + 1].data)]
            for i, pair in enumerate(ordered)
        }

    def _signed(self, nonce: int, to: str, data: bytes, gas_limit: int, fees: Fees) -> tuple[str, str]:
        assert self.signer is not None
        raw, tx_hash = self.signer.sign_liquidation(
            nonce, to, data, gas_limit, fees.max_fee_per_gas, fees.max_priority_fee_per_gas
        )
        return "0x" + raw.hex(), tx_hash

    async def _send_all(self, ready: list[_Ready], block_number: int) -> dict[int, Attempt]:
        assert self.nonces is not None
        began_s = time.perf_counter()
        signed = []
        for item in ready:
            quote = item.opportunity.quote
            nonce = self.nonces.reserve()
            raw, tx_hash = self._signed(nonce, item.call[0], item.call[1], item.gas_limit, item.fees)
            signed.append(
                SentTx(
                    nonce,
                    tx_hash,
                    item.opportunity.name,
                    quote.market,
                    quote.user,
                    raw,
                    item.fees.max_fee_per_gas,
                    item.fees.max_priority_fee_per_gas,
                    item.gas_limit,
                    item.net,
                    block_number,
                )
            )
        signed_s = time.perf_counter()
        try:
            self.store.record_sent_many(signed)  # persisted before they leave: a crash cannot lose one
        except BaseException:  # not recorded, so not sent: their nonces go back, newest first
            for tx in reversed(signed):
                self.nonces.release(tx.nonce)
            raise
        persisted_s = time.perf_counter()
        log.info("transactions_persisted", count=len(signed), nonces=[signed[0].nonce, signed[-1].nonce])
        for tx in signed:
            self.nonces.claim(tx.position, tx.nonce)
            self.nonces.confirm(tx.nonce)
        self._handed_over_s = time.perf_counter()  # signed and persisted: the sends start now
        self._send_steps = {
            "sign": signed_s - began_s,
            "persist": persisted_s - signed_s,
            "log": self._handed_over_s - persisted_s,
        }
        results = await asyncio.gather(
            *(self.rpc.request("eth_sendRawTransaction", [tx.raw_tx]) for tx in signed),
            return_exceptions=True,
        )
        sent_at = time.monotonic()
        self._sent_at.update((tx.tx_hash, sent_at) for tx in signed)
        self.metrics.in_flight.set(len(self.store.in_flight()))
        attempts = {}
        for item, tx, result in zip(ready, signed, results, strict=True):
            attempts[item.index] = Attempt(
                item.opportunity,
                "sent",
                tx_hash=tx.tx_hash,
                gas_limit=item.gas_limit,
                expected_net_profit_wei=item.net,
            )
            if isinstance(result, RpcError):  # refused outright (nonce, funds): it will never be mined
                attempts[item.index] = Attempt(
                    item.opportunity, "skipped", f"broadcast refused: {result.message}"
                )
                await self._fill_gap(tx, result.message, block_number)
            elif isinstance(result, Retryable):  # unknown whether it left: it stays pending and tracked
                log.warning("liquidation_broadcast_uncertain", tx=tx.tx_hash, nonce=tx.nonce)
            elif isinstance(result, BaseException):
                raise result
        return attempts

    async def track(
        self,
        block_number: int,
        base_fee: int,
        still_liquidatable: Callable[[SentTx], bool],
        reopened: Sequence[SentTx] = (),
        defer_replacements: bool = False,
    ) -> list[SentTx]:
        """Settle what was mined; replace or cancel what waits. Returns the transactions that settled.

        ``defer_replacements``: the fee bumps and cancels (a broadcast each) are decided here but sent
        by `send_replacements`, so a block's new liquidations need not wait behind them.

        A replaced transaction may still be the one mined (it was included while its replacement
        was being sent, which the node then refuses: "nonce too low"), so the receipts of the
        in-flight nonces' replaced transactions are read too: otherwise the replacement would stay
        pending forever, and be bumped and cancelled in vain, for a nonce already used. A nonce the
        chain has used with no receipt of any of them went to a transaction the keeper did not send.

        ``reopened``: transactions a reorg took out of the chain (pending again in the store): they
        hold their positions again and are re-sent as they were when still worth it, else the
        loop below cancels them (their nonce must be used either way, or it blocks the later ones)."""
        if self.nonces is None:
            return []
        resent = await self._reopen(reopened, still_liquidatable)
        in_flight = self.store.in_flight()
        if not in_flight:
            return []
        chain_nonce = await self._nonce_used()  # before the receipts: a nonce used by then has one
        waiting = {tx.nonce for tx in in_flight}
        replaced = self.store.transactions(TxState.REPLACED, min_nonce=min(waiting))  # not the whole history
        superseded = [tx for tx in replaced if tx.nonce in waiting]
        candidates = in_flight + superseded
        receipts = await self.rpc.batch([("eth_getTransactionReceipt", [tx.tx_hash]) for tx in candidates])
        self.metrics.in_flight.set(len(in_flight))
        mined: list[tuple[SentTx, dict[str, Any], bool]] = []
        used = set()
        for tx, receipt in zip(candidates, receipts, strict=True):
            # mined after the block being processed: settle it when that block is
            if (
                receipt is not None
                and int(receipt["blockNumber"], 16) <= block_number
                and tx.nonce not in used
            ):
                lost = int(receipt["status"], 16) == 0 and not tx.is_approval and not still_liquidatable(tx)
                if self.guard is not None:
                    self.guard.observe(tx, receipt, lost_race=lost)  # counted before it is marked settled
                mined.append((tx, receipt, lost))
                used.add(tx.nonce)
        self.store.mark_mined_many([_record(tx, receipt) for tx, receipt, _ in mined])  # one disk sync
        settled = [self._settle(tx, receipt, lost_race=lost) for tx, receipt, lost in mined]
        landed = {tx.nonce for tx, receipt in zip(candidates, receipts, strict=True) if receipt is not None}
        self._replacements = []
        for tx in in_flight:
            if tx.nonce in landed or tx.tx_hash in resent:
                continue
            if tx.nonce < chain_nonce:  # used, and by none of the keeper's transactions
                self._nonce_taken(tx, block_number)
            elif not tx.is_approval and tx.user != self.address and not still_liquidatable(tx):
                self._replacements.append((tx, True))
            elif should_replace(tx.sent_block, block_number, self.policy):
                self._replacements.append((tx, False))
        if not defer_replacements:
            await self.send_replacements(block_number, base_fee)
        return settled

    async def send_replacements(self, block_number: int, base_fee: int) -> None:
        """The fee bumps and cancels the last `track` decided (same nonces, higher fees)."""
        replacements, self._replacements = self._replacements, []
        for tx, cancel in replacements:
            await self._replace(tx, block_number, base_fee, cancel=cancel)

    def _settle(self, tx: SentTx, receipt: dict[str, Any], lost_race: bool = False) -> SentTx:
        """The rest of settling a transaction the store has marked mined (or reverted): its position
        freed, backoff, counters, metrics and its log line. ``lost_race``: it reverted and the
        position is no longer liquidatable at its block, so someone else liquidated it first (in
        flash mode the executor's early guard made that cheap)."""
        assert self.nonces is not None
        success = int(receipt["status"], 16) == 1
        gas_used = int(receipt["gasUsed"], 16)
        price = int(receipt["effectiveGasPrice"], 16)
        key = PositionKey(tx.market, tx.user)
        self.nonces.free(key)
        kind = "approval" if tx.is_approval else "liquidation"
        if not tx.is_approval and not success and not lost_race:
            streak = self._backoff.get(key, (0, 0))[1] + 1
            mined_in = int(receipt["blockNumber"], 16)
            self._backoff[key] = (
                mined_in + min(REVERT_BACKOFF_BLOCKS << (streak - 1), MAX_BACKOFF_BLOCKS),
                streak,
            )
        elif success:
            self._backoff.pop(key, None)
            if not tx.is_approval and tx.note not in (CANCEL_NOTE, GAP_FILLER_NOTE):  # its own call
                self._gas_used_most[tx.protocol] = max(gas_used, self._gas_used_most.get(tx.protocol, 0))
        outcome = "mined" if success else "lost_race" if lost_race else "reverted"
        event = f"{kind}_{outcome}"
        if tx.note not in (CANCEL_NOTE, GAP_FILLER_NOTE, APPROVAL_NOTE):
            self.settled[outcome] += 1
            self.settled["expected_net_profit_wei"] += tx.expected_profit_wei if success else 0
            label = "won" if success else "lost_to_competitor" if lost_race else "reverted"
            self.metrics.opportunities.labels(tx.protocol, label).inc()
            if success:
                self.metrics.profit.inc(tx.expected_profit_wei)
        self.settled["gas_paid_wei"] += gas_used * price
        self.metrics.gas_spent.inc(gas_used * price)
        sent_at = self._sent_at.pop(tx.tx_hash, None)
        if sent_at is not None:
            self.metrics.stage_latency.labels("sent_to_included").observe(time.monotonic() - sent_at)
        realized = [
            {k: str(v) if isinstance(v, int) and not isinstance(v, bool) else v for k, v in e.items()}
            for e in liquidation_events(receipt["logs"])
        ]
        (log.info if success else log.warning if lost_race else log.error)(
            event, tx=tx.tx_hash, nonce=tx.nonce, protocol=tx.protocol, market=tx.market, user=tx.user,
            gas_used=gas_used, effective_gas_price=price, gas_paid_wei=str(gas_used * price),
            block=int(receipt["blockNumber"], 16), realized=realized, note=tx.note,
        )  # fmt: skip
        return tx

    async def _replace(self, tx: SentTx, block_number: int, base_fee: int, cancel: bool) -> None:
        """Same nonce, fees bumped by at least 12.5 %; a cancel is an empty self-transfer."""
        previous = Fees(tx.max_fee_per_gas, tx.max_priority_fee_per_gas)
        budget = max(tx.expected_profit_wei, 0) if not cancel else 10**30
        bound = next_base_fee_bound(base_fee)
        if tx.is_approval:  # earns nothing itself: the liquidation's bid without its profit rules
            fees = overhead_fees(self.policy, bound, self._reward, previous)
        else:
            fees = replacement_fees(previous, self.policy, bound, tx.gas_limit, budget)
        if fees is None:  # too dear to bump: keep waiting, unless the node does not have it at all
            if not cancel and await self.rpc.request("eth_getTransactionByHash", [tx.tx_hash]) is None:
                await self._replace(tx, block_number, base_fee, cancel=True)  # or its nonce blocks
            return
        to, data = (self.address, b"") if cancel else original_call(tx.raw_tx)
        gas = 21_000 if cancel else tx.gas_limit
        raw, tx_hash = self._signed(tx.nonce, to, data, gas, fees)
        replacement = SentTx(
            tx.nonce, tx_hash, tx.protocol, tx.market, tx.user if not cancel else self.address, raw,
            fees.max_fee_per_gas, fees.max_priority_fee_per_gas, gas, 0 if cancel else tx.expected_profit_wei,
            block_number, note=APPROVAL_NOTE if tx.is_approval else CANCEL_NOTE if cancel else "fee bump",
        )  # fmt: skip
        self.store.mark_replaced(tx.tx_hash, replacement)
        if cancel and tx.holds_position:
            assert self.nonces is not None
            self.nonces.free(PositionKey(tx.market, tx.user))
            self.metrics.opportunities.labels(tx.protocol, "lost_to_competitor").inc()
        try:
            await self.rpc.request("eth_sendRawTransaction", [raw])
        except RpcError as exc:  # e.g. the original was mined meanwhile: its receipt settles it next block
            log.warning("replacement_refused", tx=tx_hash, nonce=tx.nonce, error=exc.message)
        log.info(
            "liquidation_cancelled"
            if cancel
            else "approval_replaced"
            if tx.is_approval
            else "liquidation_replaced",
            old=tx.tx_hash,
            tx=tx_hash,
            nonce=tx.nonce,
        )


def _record(tx: SentTx, receipt: dict[str, Any]) -> ReceiptRecord:
    return ReceiptRecord(
        tx.tx_hash,
        int(receipt["blockNumber"], 16),
        int(receipt["gasUsed"], 16),
        int(receipt["effectiveGasPrice"], 16),
        int(receipt["status"], 16) == 1,
    )


def original_call(raw_tx: str) -> tuple[str, bytes]:
    """Target and calldata of a signed EIP-1559 transaction: 0x02 || rlp([chainId, nonce, tip, maxFee,
    gas, to, value, data, accessList, v, r, s])."""
    fields = rlp.decode(bytes.fromhex(raw_tx.removeprefix("0x"))[1:])
    return to_checksum_address(bytes(fields[5])), bytes(fields[7])


def _revert_reason(error: RpcError) -> str:
    """The node's message, with the revert named (custom errors by name, ``Error(string)``, panics)."""
    data = revert_data(error.data)
    return error.message if data is None else f"{error.message}: {describe_revert(data)}"
