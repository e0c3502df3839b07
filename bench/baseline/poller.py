"""The design most public Aave V3 liquidation bots use, written plainly: the baseline for `bench.compare`.

    BASELINE_PRIVATE_KEY=0x... .venv/bin/python -m bench.baseline.poller \
        --rpc URL --pool ADDR --data-provider ADDR

Aave only. Borrowers are discovered once from the pool's ``Borrow`` events. Every new block (found by
polling ``eth_blockNumber``) it reads ``getUserAccountData`` of every borrower at that block through
Multicall3 ``aggregate3`` in chunks of 100 (chunks in parallel on a thread pool), and for each user
under health factor 1 picks the debt and collateral reserves of largest value (``getUserReserveData``
and the Aave oracle, one more multicall), runs ``eth_estimateGas`` (skips the user if it reverts) and
sends ``liquidationCall(collateral, debt, user, type(uint256).max, false)`` with the keeper's default
fees (tip 1 gwei, max fee 2 x the next block's base-fee bound + tip). One transaction in flight per
user. It counts its own JSON-RPC calls (an ``aggregate3`` eth_call is one call; the calls inside it
are counted apart) and logs JSON lines on stdout: ``ready``, ``detected``, ``sent``, ``skipped``,
``mined``, ``block_done`` (cumulative counters).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests
from eth_abi import decode, encode
from eth_account import Account
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

MULTICALL3 = "0xcA11bde05977b3631167028862bE2a173976CA11"
BORROW = "0x" + keccak(text="Borrow(address,address,address,uint256,uint8,uint256,uint16)").hex()
WAD = 10**18
MAX_UINT = 2**256 - 1
CHUNK = 100
PRIORITY_FEE_WEI = 10**9
USER_RESERVE = "getUserReserveData(address,address)"
GAS_MARGIN_BPS = 2_000  # the keeper's default gas_limit_margin_bps


def selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


def call_data(signature: str, types: list[str], *args: Any) -> bytes:
    return selector(signature) + encode(types, list(args))


class Poller:
    def __init__(self, rpc_url: str, pool: str, data_provider: str, key: str, workers: int) -> None:
        self.url, self.pool, self.data_provider = rpc_url, pool, data_provider
        self.account = Account.from_key(key)
        self.calls: Counter[str] = Counter()
        self.inner_calls = 0
        self._lock = threading.Lock()
        self._local = threading.local()
        self._ids = itertools.count(1)
        self.executor = ThreadPoolExecutor(workers)
        self.pending: dict[str, str] = {}  # user -> tx hash in flight

    def rpc(self, method: str, params: list[Any]) -> Any:
        with self._lock:
            self.calls[method] += 1
            request_id = next(self._ids)
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        body = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        reply = self._local.session.post(self.url, json=body, timeout=30).json()
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error'].get('message')}")
        return reply["result"]

    def view(self, to: str, data: bytes, types: list[str], block: str = "latest") -> Any:
        raw = self.rpc("eth_call", [{"to": to, "data": "0x" + data.hex()}, block])
        return decode(types, bytes.fromhex(raw[2:]))

    def multicall(self, calls: list[tuple[str, bytes]], block: str) -> list[bytes]:
        """One aggregate3 eth_call; a failed inner call answers b''."""
        with self._lock:
            self.inner_calls += len(calls)
        data = call_data(
            "aggregate3((address,bool,bytes)[])",
            ["(address,bool,bytes)[]"],
            [(to, True, payload) for to, payload in calls],
        )
        (results,) = self.view(MULTICALL3, data, ["(bool,bytes)[]"], block)
        return [payload if ok else b"" for ok, payload in results]

    def start(self) -> None:
        self.chain_id = int(self.rpc("eth_chainId", []), 16)
        self.nonce = int(self.rpc("eth_getTransactionCount", [self.account.address, "pending"]), 16)
        logs = self.rpc("eth_getLogs", [{"address": self.pool, "topics": [BORROW], "fromBlock": "0x0"}])
        self.users = sorted({to_checksum_address("0x" + log["topics"][2][-40:]) for log in logs})
        (self.reserves,) = self.view(self.pool, selector("getReservesList()"), ["address[]"])
        (provider,) = self.view(self.pool, selector("ADDRESSES_PROVIDER()"), ["address"])
        (self.oracle,) = self.view(provider, selector("getPriceOracle()"), ["address"])
        self.decimals = {r: self.view(r, selector("decimals()"), ["uint8"])[0] for r in self.reserves}
        emit("ready", users=len(self.users), reserves=len(self.reserves))

    def run(self, poll_interval_s: float) -> None:
        last = int(self.rpc("eth_blockNumber", []), 16)
        while True:
            head = int(self.rpc("eth_blockNumber", []), 16)
            if head <= last:
                time.sleep(poll_interval_s)
                continue
            last = head
            try:
                self.handle(head)
            except Exception as exc:  # a baseline that dies measures nothing: log it, go on to the next block
                emit("block_failed", block=head, error=f"{type(exc).__name__}: {str(exc)[:300]}")

    def handle(self, head: int) -> None:
        seen_s = time.perf_counter()
        self.settle()
        unhealthy = self.unhealthy(hex(head))
        for user in unhealthy:
            emit("detected", block=head, user=user, ms_since_block_seen=ms_since(seen_s))
        targets = [u for u in unhealthy if u not in self.pending]
        if targets:
            self.liquidate(head, targets, seen_s)
        emit(
            "block_done",
            block=head,
            ms=ms_since(seen_s),
            unhealthy=len(unhealthy),
            rpc_calls=sum(self.calls.values()),
            calls=dict(self.calls),
            inner_calls=self.inner_calls,
        )

    def unhealthy(self, block: str) -> list[str]:
        chunks = [self.users[i : i + CHUNK] for i in range(0, len(self.users), CHUNK)]
        replies = self.executor.map(lambda chunk: self.multicall(self.account_calls(chunk), block), chunks)
        out = []
        for chunk, raws in zip(chunks, replies, strict=True):
            for user, raw in zip(chunk, raws, strict=True):
                _, debt, _, _, _, health = decode(["uint256"] * 6, raw)
                if debt > 0 and health < WAD:
                    out.append(user)
        return out

    def account_calls(self, users: list[str]) -> list[tuple[str, bytes]]:
        return [(self.pool, call_data("getUserAccountData(address)", ["address"], u)) for u in users]

    def best_pair(self, users: list[str], block: str) -> dict[str, tuple[str, str]]:
        """(collateral, debt) of largest value per user, from getUserReserveData and oracle prices."""
        prices_call = (self.oracle, call_data("getAssetsPrices(address[])", ["address[]"], self.reserves))
        (prices,) = decode(["uint256[]"], self.multicall([prices_call], block)[0])
        price = dict(zip(self.reserves, prices, strict=True))
        per_chunk = CHUNK // len(self.reserves)
        chunks = [users[i : i + per_chunk] for i in range(0, len(users), per_chunk)]
        replies = self.executor.map(lambda chunk: self.multicall(self.reserve_calls(chunk), block), chunks)
        pairs = {}
        for chunk, raws in zip(chunks, replies, strict=True):
            for i, user in enumerate(chunk):
                collateral, debt = {}, {}
                for j, reserve in enumerate(self.reserves):
                    row = decode(["uint256"] * 7 + ["uint40", "bool"], raws[i * len(self.reserves) + j])
                    unit = price[reserve] / 10 ** self.decimals[reserve]
                    if row[0] and row[8]:
                        collateral[reserve] = row[0] * unit
                    if row[1] + row[2]:
                        debt[reserve] = (row[1] + row[2]) * unit
                if collateral and debt:
                    pairs[user] = (
                        max(collateral, key=collateral.__getitem__),
                        max(debt, key=debt.__getitem__),
                    )
        return pairs

    def reserve_calls(self, users: list[str]) -> list[tuple[str, bytes]]:
        types = ["address", "address"]
        return [
            (self.data_provider, call_data(USER_RESERVE, types, r, u)) for u in users for r in self.reserves
        ]

    def liquidate(self, head: int, users: list[str], seen_s: float) -> None:
        pairs = self.best_pair(users, hex(head))
        calls = {
            user: call_data(
                "liquidationCall(address,address,address,uint256,bool)",
                ["address", "address", "address", "uint256", "bool"],
                collateral,
                debt,
                user,
                MAX_UINT,
                False,
            )
            for user, (collateral, debt) in pairs.items()
        }
        estimates = list(self.executor.map(self.estimate, calls.values()))
        base_fee = int(self.rpc("eth_getBlockByNumber", [hex(head), False])["baseFeePerGas"], 16)
        max_fee = 2 * -(-base_fee * 12_500 // 10_000) + PRIORITY_FEE_WEI
        for (user, data), estimate in zip(calls.items(), estimates, strict=True):
            if isinstance(estimate, str):
                emit("skipped", block=head, user=user, reason=estimate)
                continue
            tx = {
                "type": 2,
                "chainId": self.chain_id,
                "nonce": self.nonce,
                "to": self.pool,
                "value": 0,
                "data": data,
                "gas": estimate * (10_000 + GAS_MARGIN_BPS) // 10_000,
                "maxFeePerGas": max_fee,
                "maxPriorityFeePerGas": PRIORITY_FEE_WEI,
            }
            signed = self.account.sign_transaction(tx)
            try:
                tx_hash = self.rpc("eth_sendRawTransaction", ["0x" + signed.raw_transaction.hex()])
            except RuntimeError as exc:
                emit("skipped", block=head, user=user, reason=str(exc))
                self.nonce = int(self.rpc("eth_getTransactionCount", [self.account.address, "pending"]), 16)
                continue
            self.nonce += 1
            self.pending[user] = tx_hash
            emit("sent", block=head, user=user, tx=tx_hash, ms_since_block_seen=ms_since(seen_s))

    def estimate(self, data: bytes) -> int | str:
        request = {"from": self.account.address, "to": self.pool, "data": "0x" + data.hex()}
        try:
            return int(self.rpc("eth_estimateGas", [request, "latest"]), 16)
        except RuntimeError as exc:
            return str(exc)

    def settle(self) -> None:
        for user, tx_hash in list(self.pending.items()):
            receipt = self.rpc("eth_getTransactionReceipt", [tx_hash])
            if receipt is not None:
                del self.pending[user]
                emit(
                    "mined",
                    tx=tx_hash,
                    user=user,
                    block=int(receipt["blockNumber"], 16),
                    status=int(receipt["status"], 16),
                )


def ms_since(start_s: float) -> float:
    return round((time.perf_counter() - start_s) * 1000, 1)


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, "time": time.time(), **fields}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rpc", required=True)
    parser.add_argument("--pool", required=True)
    parser.add_argument("--data-provider", required=True)
    parser.add_argument("--poll-interval-s", type=float, default=0.1)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()
    key = os.environ["BASELINE_PRIVATE_KEY"]
    poller = Poller(args.rpc, args.pool, args.data_provider, key, args.workers)
    poller.start()
    with contextlib.suppress(KeyboardInterrupt):
        poller.run(args.poll_interval_s)


if __name__ == "__main__":
    main()
