"""What `keeper run --fork` did: each liquidation's predicted against realized profit and gas. Pure.

Predicted comes from the store's record of each sent transaction (the net profit the keeper
expected when it signed, gas included at the block's worst price, and the gas limit it sent, whose
estimate is recovered exactly from the configured margin). Realized comes from the receipt: the gas
used at its effective price, and the ERC-20 ``Transfer`` logs into and out of the keeper's accounts
(the signer, and the flash executor's beneficiary), so it is what the wallet actually gained,
whatever the protocol or strategy, valued in wei of the native token with the reference prices of
the last block the keeper processed. A token no price book covers (an aToken received with
``receive_a_token``) leaves the realized profit unknown (None) rather than guessed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from keeper.chain.abi import contract
from keeper.chain.abi_params import AbiError
from keeper.risk.opportunity import TokenPrice, first_complete, value_wei
from keeper.state.txstate import SentTx, TxState

TRANSFER = contract("common/IERC20").event("Transfer")
LIQUIDATION_NOTES = (None, "fee bump")
"""A liquidation as first sent, or its fee bump; cancels, gap fillers and approvals are other costs."""


@dataclass(frozen=True, slots=True)
class Row:
    tx: SentTx
    """The liquidation as recorded when sent (what was predicted); the receipt says what happened."""
    predicted_gas: int
    receipt: Mapping[str, Any] | None
    flows: dict[str, int]
    """Token -> what the keeper's accounts gained (negative: paid) in this transaction, token units."""
    realized_gross_wei: int | None

    @property
    def state(self) -> str:
        if self.receipt is None:
            return "pending"
        return "mined" if int(self.receipt["status"], 16) == 1 else "reverted"

    @property
    def gas_used(self) -> int:
        return 0 if self.receipt is None else int(self.receipt["gasUsed"], 16)

    @property
    def gas_price(self) -> int | None:
        return None if self.receipt is None else int(self.receipt["effectiveGasPrice"], 16)

    @property
    def gas_paid_wei(self) -> int:
        return self.gas_used * (self.gas_price or 0)

    @property
    def realized_net_wei(self) -> int | None:
        if self.realized_gross_wei is None or self.receipt is None:
            return None
        return self.realized_gross_wei - self.gas_paid_wei


def estimate_from_limit(gas_limit: int, margin_bps: int) -> int:
    """The gas the keeper predicted: it sent ``estimate * (10000 + margin) // 10000``, and since
    that factor is above 1 exactly one integer rounds down to ``gas_limit``: the ceiling below."""
    return -(-gas_limit * 10_000 // (10_000 + margin_bps))


def token_flows(logs: Iterable[Mapping[str, Any]], holders: Iterable[str]) -> dict[str, int]:
    """Per token, transfers into ``holders`` minus transfers out of them (between two holders: 0)."""
    mine = {h.lower() for h in holders}
    flows: dict[str, int] = {}
    for entry in logs:
        if not TRANSFER.matches(entry):
            continue
        try:
            transfer = TRANSFER.decode(entry)
        except AbiError:  # a token that logs a malformed Transfer moved nothing we can count
            continue
        token = str(entry["address"]).lower()
        delta = int(transfer["value"]) * (
            (transfer["to"].lower() in mine) - (transfer["from"].lower() in mine)
        )
        if delta:
            flows[token] = flows.get(token, 0) + delta
    return flows


def valued_wei(
    flows: Mapping[str, int], books: Sequence[Mapping[str, TokenPrice]], native_asset: str
) -> int | None:
    """The flows in wei of the native token, each token with the first book that prices it and the
    native token; None when some token has no such book."""
    total = 0
    lowered = [{token.lower(): price for token, price in book.items()} for book in books]
    native = native_asset.lower()
    for token, amount in flows.items():
        book = first_complete(lowered, [token, native])
        if book is None:
            return None
        total += value_wei(amount, book[token], book[native])
    return total


def rows(
    txs: Sequence[SentTx],
    receipts: Mapping[str, Mapping[str, Any]],
    holders: Sequence[str],
    books: Sequence[Mapping[str, TokenPrice]],
    native_asset: str,
    margin_bps: int,
) -> list[Row]:
    """One row per nonce whose outcome is a liquidation: the transaction of the nonce that has a
    receipt (whichever of its fee bumps was mined: the chain decides, not the store's last word),
    else the newest one still pending. A nonce settled by a cancel is no liquidation."""
    by_nonce: dict[int, list[SentTx]] = {}
    for tx in txs:
        by_nonce.setdefault(tx.nonce, []).append(tx)
    out = []
    for nonce in sorted(by_nonce):
        sent = by_nonce[nonce]
        landed = [t for t in sent if t.tx_hash in receipts]
        chosen = (
            landed[0] if landed else next((t for t in reversed(sent) if t.state is TxState.PENDING), None)
        )
        if chosen is None or chosen.note not in LIQUIDATION_NOTES:
            continue
        receipt = receipts.get(chosen.tx_hash)
        flows = token_flows(receipt["logs"], holders) if receipt is not None else {}
        gross = valued_wei(flows, books, native_asset) if receipt is not None else None
        out.append(Row(chosen, estimate_from_limit(chosen.gas_limit, margin_bps), receipt, flows, gross))
    return out


def _text(value: int | None) -> str | None:
    return None if value is None else str(value)


def row_json(row: Row) -> dict[str, Any]:
    tx, realized = row.tx, row.realized_net_wei
    return {
        "tx": tx.tx_hash,
        "nonce": tx.nonce,
        "protocol": tx.protocol,
        "market": tx.market,
        "user": tx.user,
        "state": row.state,
        "sent_block": tx.sent_block,
        "mined_block": None if row.receipt is None else int(row.receipt["blockNumber"], 16),
        "predicted_net_profit_wei": str(tx.expected_profit_wei),
        "realized_net_profit_wei": _text(realized),
        "profit_error_wei": _text(None if realized is None else realized - tx.expected_profit_wei),
        "realized_gross_profit_wei": _text(row.realized_gross_wei),
        "predicted_gas": row.predicted_gas,
        "gas_limit": tx.gas_limit,
        "gas_used": row.gas_used,
        "effective_gas_price": row.gas_price,
        "gas_paid_wei": str(row.gas_paid_wei),
        "token_flows": {token: str(amount) for token, amount in sorted(row.flows.items())},
    }


def report_json(
    found: Sequence[Row],
    txs: Sequence[SentTx],
    receipts: Mapping[str, Mapping[str, Any]],
    chain: Mapping[str, Any],
) -> dict[str, Any]:
    """The report: ``chain`` (what was forked), one row per liquidation, and totals.

    Profit totals sum the settled rows whose flows were all priced (``realized_rows`` says how
    many), predicted and realized alike; ``other_gas_paid_wei`` is what the keeper's other
    transactions that landed cost (cancels, gap fillers, approvals)."""
    settled = [r for r in found if r.realized_net_wei is not None]
    liquidations = {r.tx.tx_hash for r in found}
    others = [receipts[t.tx_hash] for t in txs if t.tx_hash in receipts and t.tx_hash not in liquidations]
    totals = {
        "liquidations": len(found),
        "mined": sum(r.state == "mined" for r in found),
        "reverted": sum(r.state == "reverted" for r in found),
        "unsettled": sum(r.state == "pending" for r in found),
        "realized_rows": len(settled),
        "predicted_net_profit_wei": str(sum(r.tx.expected_profit_wei for r in settled)),
        "realized_net_profit_wei": str(sum(r.realized_net_wei or 0 for r in settled)),
        "predicted_gas": sum(r.predicted_gas for r in found),
        "gas_used": sum(r.gas_used for r in found),
        "gas_paid_wei": str(sum(r.gas_paid_wei for r in found)),
        "other_gas_paid_wei": str(
            sum(int(r["gasUsed"], 16) * int(r["effectiveGasPrice"], 16) for r in others)
        ),
    }
    return {**chain, "liquidations": [row_json(r) for r in found], "totals": totals}
