"""Synchronous JSON-RPC for the devnet tooling, and batched transaction execution on Anvil.

The deployer and seeder are one-shot scripts against a local Anvil, so they use plain blocking
HTTP with JSON-RPC batches rather than the daemon's async RPC pool.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import requests
from eth_utils.address import to_checksum_address

from keeper.errors import DevnetError

from .abi import create_address

TXS_PER_BLOCK = 100
"""Anvil's receipt lookup is quadratic in block size; ~100 transactions a block keeps seeding fast."""

CALL_GAS = 2_000_000
DEPLOY_GAS = 16_000_000
"""Explicit gas: estimateGas cannot see the pending state of a batch. Under the 2**24 tx gas cap."""


class Rpc:
    def __init__(self, url: str, timeout_s: float = 60.0) -> None:
        self.url = url
        self._timeout_s = timeout_s
        self._session = requests.Session()
        self._ids = itertools.count(1)

    def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        return self.batch([(method, params)])[0]

    def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Send calls as one JSON-RPC batch; results in call order; any error raises."""
        if not calls:
            return []
        ids = [next(self._ids) for _ in calls]
        body = [
            {"jsonrpc": "2.0", "id": i, "method": m, "params": list(p)}
            for i, (m, p) in zip(ids, calls, strict=True)
        ]
        try:
            response = self._session.post(self.url, json=body, timeout=self._timeout_s)
            response.raise_for_status()
        except requests.ConnectionError:
            raise DevnetError(f"RPC {self.url} unreachable (connection refused)") from None
        except requests.RequestException as exc:
            raise DevnetError(f"RPC {self.url} failed: {type(exc).__name__}") from exc
        replies = response.json()
        if not isinstance(replies, list):
            raise DevnetError(f"RPC {self.url} answered a batch with {replies!r}")
        by_id = {reply["id"]: reply for reply in replies}
        results = []
        for request_id, (method, _) in zip(ids, calls, strict=True):
            reply = by_id[request_id]
            if "error" in reply:
                raise DevnetError(f"{method} failed: {reply['error'].get('message', reply['error'])}")
            results.append(reply["result"])
        return results

    def eth_call(self, to: str, data: bytes, block: str | int = "latest") -> bytes:
        tag = block if isinstance(block, str) else hex(block)
        result: str = self.call("eth_call", [{"to": to, "data": "0x" + data.hex()}, tag])
        return bytes.fromhex(result[2:])

    def block_number(self) -> int:
        return int(self.call("eth_blockNumber"), 16)


@dataclass(frozen=True)
class Tx:
    sender: str
    to: str | None
    data: bytes
    label: str
    value: int = 0
    gas: int = CALL_GAS


@dataclass
class Executor:
    """Executes transactions on Anvil in mined blocks of at most ``TXS_PER_BLOCK``.

    Anvil must run with ``--auto-impersonate`` (any sender), ``--order fifo`` (submission order
    within a block) and automine off while the executor works. Nonces are tracked locally because
    Anvil's eth_sendTransaction fills in the *mined* nonce, not the pending one.
    """

    rpc: Rpc
    nonces: dict[str, int] = field(default_factory=dict)
    txs_per_block: int = TXS_PER_BLOCK
    base_fee_wei: int = 10**9
    """Reset before every block: full seeding blocks would otherwise compound the base fee."""

    def execute(self, txs: Sequence[Tx]) -> list[dict[str, Any]]:
        """Mine ``txs`` in order; return their receipts; raise if any reverted."""
        self._load_nonces({tx.sender for tx in txs})
        receipts: list[dict[str, Any]] = []
        for start in range(0, len(txs), self.txs_per_block):
            receipts.extend(self._mine_block(txs[start : start + self.txs_per_block]))
        return receipts

    def deploy(self, sender: str, bytecode: bytes, label: str) -> str:
        receipt = self.execute([Tx(sender, None, bytecode, label, gas=DEPLOY_GAS)])[0]
        return to_checksum_address(receipt["contractAddress"])

    def next_create_address(self, sender: str) -> str:
        self._load_nonces({sender})
        return create_address(sender, self.nonces[sender])

    def _load_nonces(self, senders: set[str]) -> None:
        missing = sorted(s for s in senders if s not in self.nonces)
        counts = self.rpc.batch([("eth_getTransactionCount", [s, "latest"]) for s in missing])
        self.nonces.update({s: int(c, 16) for s, c in zip(missing, counts, strict=True)})

    def _mine_block(self, txs: Sequence[Tx]) -> list[dict[str, Any]]:
        calls: list[tuple[str, Sequence[Any]]] = []
        for tx in txs:
            nonce = self.nonces[tx.sender]
            self.nonces[tx.sender] = nonce + 1
            body: dict[str, Any] = {
                "from": tx.sender,
                "data": "0x" + tx.data.hex(),
                "gas": hex(tx.gas),
                "nonce": hex(nonce),
                "value": hex(tx.value),
            }
            if tx.to is not None:
                body["to"] = tx.to
            calls.append(("eth_sendTransaction", [body]))
        self.rpc.call("anvil_setNextBlockBaseFeePerGas", [hex(self.base_fee_wei)])
        hashes = self.rpc.batch(calls)
        self.rpc.call("evm_mine")
        receipts: list[dict[str, Any]] = self.rpc.call("eth_getBlockReceipts", ["latest"])
        by_hash = {r["transactionHash"]: r for r in receipts}
        ordered = []
        for tx, tx_hash in zip(txs, hashes, strict=True):
            receipt = by_hash.get(tx_hash)
            if receipt is None:
                raise DevnetError(f"{tx.label}: transaction {tx_hash} was not mined")
            if int(receipt["status"], 16) != 1:
                raise DevnetError(f"{tx.label}: transaction {tx_hash} reverted{self._reason(tx)}")
            ordered.append(receipt)
        return ordered

    def _reason(self, tx: Tx) -> str:
        """Replay a reverted transaction as a call for its revert message (best effort)."""
        body: dict[str, Any] = {"from": tx.sender, "data": "0x" + tx.data.hex()}
        if tx.to is not None:
            body["to"] = tx.to
        try:
            self.rpc.call("eth_call", [body, "latest"])
        except DevnetError as exc:
            return f" ({exc})"
        return ""


RECEIPT_TIMEOUT_S = 120


def mine_together(rpc: Rpc, txs: Sequence[Tx]) -> list[dict[str, Any]]:
    """Send ``txs`` so that they are mined in one block, in order, whatever Anvil's mining mode,
    and return their receipts; raise if any reverted.

    With automine or interval mining, mining is paused while they are sent, one block is mined and
    the mode is restored (other pending transactions share that block, as they would an interval
    block). With mining off (a test mining by hand) they wait for whoever mines next. Nonces come
    from the pending count and gas is explicit, as in `Executor`; the base fee is left alone, since
    a running keeper prices its transactions from it.
    """
    automine = bool(rpc.call("anvil_getAutomine"))
    interval = rpc.call("anvil_getIntervalMining")
    if automine:
        rpc.call("evm_setAutomine", [False])
    elif interval:
        rpc.call("evm_setIntervalMining", [0])
    try:
        senders = sorted({tx.sender for tx in txs})
        counts = rpc.batch([("eth_getTransactionCount", [s, "pending"]) for s in senders])
        nonces = {s: int(c, 16) for s, c in zip(senders, counts, strict=True)}
        calls: list[tuple[str, Sequence[Any]]] = []
        for tx in txs:
            body: dict[str, Any] = {
                "from": tx.sender,
                "data": "0x" + tx.data.hex(),
                "gas": hex(tx.gas),
                "nonce": hex(nonces[tx.sender]),
                "value": hex(tx.value),
            }
            nonces[tx.sender] += 1
            if tx.to is not None:
                body["to"] = tx.to
            calls.append(("eth_sendTransaction", [body]))
        hashes: list[str] = rpc.batch(calls)
        if automine or interval:
            rpc.call("evm_mine")
    finally:
        if automine:
            rpc.call("evm_setAutomine", [True])
        elif interval:
            rpc.call("evm_setIntervalMining", [interval])
    return _receipts(rpc, txs, hashes)


def _receipts(rpc: Rpc, txs: Sequence[Tx], hashes: list[str]) -> list[dict[str, Any]]:
    deadline = time.monotonic() + RECEIPT_TIMEOUT_S
    while True:
        receipts = rpc.batch([("eth_getTransactionReceipt", [h]) for h in hashes])
        if all(r is not None for r in receipts):
            break
        if time.monotonic() > deadline:
            raise DevnetError(f"{txs[0].label}: not mined within {RECEIPT_TIMEOUT_S} s")
        time.sleep(0.1)
    for tx, receipt in zip(txs, receipts, strict=True):
        if int(receipt["status"], 16) != 1:
            raise DevnetError(f"{tx.label}: transaction {receipt['transactionHash']} reverted")
    if len({r["blockNumber"] for r in receipts}) != 1:
        raise DevnetError(f"{txs[0].label}: the transactions were mined in different blocks")
    return list(receipts)
