"""The sender's recovery half: what it does when a nonce is not where it left it.

A mixin of `keeper.execution.executor.Executor` (its node, signer, nonces, store and fee policy;
the executor provides ``_signed``). Each case here was found by the fault suite (tests/faults): a
broadcast refused (the nonce is filled, in the same commit as the drop), a nonce left with nothing
pending by a crash (filled at start-up), a nonce used by a transaction the keeper did not send
(dropped and freed), and transactions a reorg took out of the chain (re-sent or cancelled).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import structlog

from keeper.chain.rpc import Rpc, RpcError
from keeper.execution.gas import FeePolicy, Fees, overhead_fees
from keeper.execution.nonces import NonceManager
from keeper.state.store import Store
from keeper.state.txstate import GAP_FILLER_NOTE, SentTx

log = structlog.get_logger(__name__)

BASE_FEE_MAX_RISE_BPS = 12_500
"""EIP-1559: the next block's base fee is at most 12.5 % above this one's."""


def next_base_fee_bound(base_fee_wei: int) -> int:
    return -(-base_fee_wei * BASE_FEE_MAX_RISE_BPS // 10_000)


class Recovery:
    rpc: Rpc
    address: str
    policy: FeePolicy
    store: Store
    nonces: NonceManager | None
    _reward: int | None

    def _signed(self, nonce: int, to: str, data: bytes, gas_limit: int, fees: Fees) -> tuple[str, str]:
        raise NotImplementedError

    async def _fill_gap(self, refused: SentTx, reason: str, block_number: int) -> None:
        """A refused nonce would hold back every later one: an empty self-transfer takes its place,
        bid at the head's base fee (the refusal may have been the bid falling under it)."""
        assert self.nonces is not None
        self.nonces.free(refused.position)
        raw, tx_hash, fees = await self._self_transfer(
            refused.nonce, Fees(refused.max_fee_per_gas, refused.max_priority_fee_per_gas)
        )
        filler = replace(
            refused, tx_hash=tx_hash, raw_tx=raw, user=self.address, gas_limit=21_000,
            max_fee_per_gas=fees.max_fee_per_gas, max_priority_fee_per_gas=fees.max_priority_fee_per_gas,
            expected_profit_wei=0, sent_block=block_number, note=GAP_FILLER_NOTE,
        )  # fmt: skip
        self.store.drop_for_filler(refused.tx_hash, f"broadcast refused: {reason}", filler)
        log.warning(
            "liquidation_refused", tx=refused.tx_hash, nonce=refused.nonce, error=reason, filler=tx_hash
        )
        try:
            await self.rpc.request("eth_sendRawTransaction", [raw])
        except RpcError as exc:
            log.error("gap_filler_refused", nonce=refused.nonce, error=exc.message)

    async def _self_transfer(self, nonce: int, previous: Fees | None) -> tuple[str, str, Fees]:
        """An empty self-transfer at ``nonce`` bid at the head's base fee (above ``previous``)."""
        head = await self.rpc.request("eth_getBlockByNumber", ["latest", False])
        bound = next_base_fee_bound(int(head.get("baseFeePerGas") or "0x0", 16))
        fees = overhead_fees(self.policy, bound, self._reward, previous) or overhead_fees(
            self.policy, bound, self._reward
        )
        assert fees is not None
        raw, tx_hash = self._signed(nonce, self.address, b"", 21_000, fees)
        return raw, tx_hash, fees

    async def fill_gaps(self, chain_nonce: int, block_number: int) -> None:
        """At start-up: a nonce between the chain's count and the next one to hand out that nothing
        in the store holds (a crash between dropping a refused transaction and recording its filler,
        in a store written before fillers were recorded with the drop) gets a gap filler."""
        assert self.nonces is not None
        held = {tx.nonce for tx in self.store.in_flight()}
        for nonce in range(chain_nonce, self.nonces.next_nonce):
            if nonce in held:
                continue
            raw, tx_hash, fees = await self._self_transfer(nonce, None)
            filler = SentTx(
                nonce, tx_hash, "keeper", self.address, self.address, raw, fees.max_fee_per_gas,
                fees.max_priority_fee_per_gas, 21_000, 0, block_number, note=GAP_FILLER_NOTE,
            )  # fmt: skip
            self.store.record_sent(filler)
            log.warning("nonce_gap_filled", nonce=nonce, filler=tx_hash)
            try:
                await self.rpc.request("eth_sendRawTransaction", [raw])
            except RpcError as exc:
                log.error("gap_filler_refused", nonce=nonce, error=exc.message)

    async def _nonce_used(self) -> int:
        """The account's mined transaction count: every nonce below it is used on chain. Read before
        the receipts, so a transaction of the keeper's mined under it has a receipt when they are
        read (a block-number tag would race the node's head)."""
        return int(await self.rpc.request("eth_getTransactionCount", [self.address, "latest"]), 16)

    def _nonce_taken(self, tx: SentTx, block_number: int) -> None:
        """``tx`` waits on a nonce the chain has used, and neither it nor the nonce's replaced
        versions has a receipt: a transaction the keeper never made took it (the operator used the
        key by hand). The record is dropped (it would wait forever) and the position freed."""
        assert self.nonces is not None
        self.store.mark_dropped(tx.tx_hash, "nonce used by a transaction the keeper did not send")
        self.nonces.free(tx.position)
        log.warning("nonce_used_outside", tx=tx.tx_hash, nonce=tx.nonce, block=block_number)

    async def _reopen(
        self, reopened: Sequence[SentTx], still_liquidatable: Callable[[SentTx], bool]
    ) -> set[str]:
        """Claim the positions of reorged-out transactions again; re-send (same bytes) the ones that
        are still worth it. Returns the hashes re-sent (they count as just sent)."""
        assert self.nonces is not None
        resent = set()
        for tx in reopened:
            if tx.holds_position:
                self.nonces.claim(tx.position, tx.nonce)
            if tx.is_approval or not tx.holds_position or still_liquidatable(tx):
                try:
                    await self.rpc.request("eth_sendRawTransaction", [tx.raw_tx])
                except RpcError as exc:
                    log.warning(
                        "transaction_resend_refused", tx=tx.tx_hash, nonce=tx.nonce, error=exc.message
                    )
                log.info("transaction_resent_after_reorg", tx=tx.tx_hash, nonce=tx.nonce)
                resent.add(tx.tx_hash)
        return resent
