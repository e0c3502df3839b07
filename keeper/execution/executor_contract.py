"""The keeper's own `LiquidationExecutor` contract (deploy/executor): deploying it, and checking one.

The build (ABI, creation and runtime code, where the immutables sit in the runtime code) is plain
data handed in by the caller: compiling needs solc-js, which is dev tooling above this layer
(`keeper.devnet.toolchain.compiled_executor`). The executor's `owner` and `beneficiary` are
immutables, so two deployments differ only in those 64 bytes: `check` compares the runtime code
with them masked, then asks `owner()`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_utils.address import to_checksum_address

from keeper.chain.abi import Contract
from keeper.chain.rpc import Rpc, RpcError
from keeper.config import ExecutionConfig
from keeper.errors import KeeperError, UsageError

from .signer import Signer

RECEIPT_TIMEOUT_S = 120.0
GAS_LIMIT_MARGIN_BPS = 2_000
_BPS = 10_000


@dataclass(frozen=True)
class ExecutorBuild:
    abi: list[dict[str, Any]]
    creation_code: bytes
    runtime_code: bytes
    immutable_spans: tuple[tuple[int, int], ...]
    """(byte offset, length) of every immutable in ``runtime_code``; solc leaves them zero there."""

    @cached_property
    def contract(self) -> Contract:
        return Contract("LiquidationExecutor", self.abi)

    def masked(self, runtime_code: bytes) -> bytes:
        """``runtime_code`` with the immutables' bytes zeroed, as they are in the compiled code."""
        code = bytearray(runtime_code)
        for start, length in self.immutable_spans:
            code[start : start + length] = bytes(min(length, max(0, len(code) - start)))
        return bytes(code)

    def deploy_data(self, owner: str, beneficiary: str) -> bytes:
        return self.creation_code + abi_encode(["address", "address"], [owner, beneficiary])


async def check_executor(rpc: Rpc, address: str, build: ExecutorBuild, owner: str) -> None:
    """The configured executor is this build's code, owned by the signer; else one ``UsageError`` line."""
    key = f"execution.executor: {address}"
    code = bytes.fromhex(str(await rpc.request("eth_getCode", [address, "latest"]) or "0x")[2:])
    if not code:
        raise UsageError(f"{key} has no contract code on this chain")
    if build.masked(code) != build.runtime_code:
        raise UsageError(
            f"{key} is not this keeper's LiquidationExecutor (its code differs from the compiled "
            "deploy/executor source; redeploy with `keeper executor deploy`)"
        )
    actual = await _view_address(rpc, build, address, "owner")
    if actual.lower() != owner.lower():
        raise UsageError(f"{key} is owned by {actual}, not by the configured signer {owner}")


async def deploy_executor(
    rpc: Rpc, signer: Signer, build: ExecutorBuild, beneficiary: str, execution: ExecutionConfig
) -> dict[str, Any]:
    """Sign and send the deployment, wait for its receipt, check the result; the JSON report."""
    owner = signer.address
    data = "0x" + build.deploy_data(owner, beneficiary).hex()
    nonce, block, estimate, native = await asyncio.gather(
        rpc.request("eth_getTransactionCount", [owner, "pending"]),
        rpc.request("eth_getBlockByNumber", ["latest", False]),
        _estimate(rpc, owner, data),
        rpc.request("eth_getBalance", [owner, "latest"]),
    )
    tip = execution.priority_fee_wei
    max_fee = int(block.get("baseFeePerGas") or "0x0", 16) * execution.base_fee_multiplier_bps // _BPS + tip
    max_fee = min(max_fee, execution.max_fee_per_gas_wei)
    gas_limit = estimate * (_BPS + GAS_LIMIT_MARGIN_BPS) // _BPS
    tx: dict[str, Any] = {
        "type": 2,
        "nonce": int(nonce, 16),
        "to": None,
        "value": 0,
        "data": data,
        "gas": gas_limit,
        "maxFeePerGas": max_fee,
        "maxPriorityFeePerGas": min(tip, max_fee),
    }
    worst_case_wei = gas_limit * max_fee
    if int(native, 16) < worst_case_wei:
        raise UsageError(
            f"executor deployment: signer {owner} holds {int(native, 16)} wei, the deployment may cost "
            f"{worst_case_wei} wei ({gas_limit} gas at {max_fee} wei)"
        )
    raw, tx_hash = signer.sign({k: v for k, v in tx.items() if v is not None})
    try:
        await rpc.request("eth_sendRawTransaction", ["0x" + raw.hex()])
    except RpcError as exc:
        raise UsageError(f"executor deployment refused by the node: {exc}") from None
    receipt = await _receipt(rpc, tx_hash)
    if int(receipt["status"], 16) != 1 or not receipt.get("contractAddress"):
        raise KeeperError(f"executor deployment {tx_hash} reverted (gas used {int(receipt['gasUsed'], 16)})")
    address = to_checksum_address(receipt["contractAddress"])
    await check_executor(rpc, address, build, owner)
    return {
        "executor": address,
        "owner": owner,
        "beneficiary": to_checksum_address(await _view_address(rpc, build, address, "beneficiary")),
        "tx": tx_hash,
        "block": int(receipt["blockNumber"], 16),
        "gas_used": int(receipt["gasUsed"], 16),
    }


async def _estimate(rpc: Rpc, sender: str, data: str) -> int:
    try:
        return int(await rpc.request("eth_estimateGas", [{"from": sender, "data": data}]), 16)
    except RpcError as exc:  # e.g. a signer with no ETH for gas
        raise UsageError(f"executor deployment would fail: {exc}") from None


async def _receipt(rpc: Rpc, tx_hash: str) -> dict[str, Any]:
    deadline = time.monotonic() + RECEIPT_TIMEOUT_S
    while time.monotonic() < deadline:
        receipt = await rpc.request("eth_getTransactionReceipt", [tx_hash])
        if receipt:
            return dict(receipt)
        await asyncio.sleep(0.2)
    raise KeeperError(f"executor deployment {tx_hash} not mined within {RECEIPT_TIMEOUT_S:.0f} s")


async def _view_address(rpc: Rpc, build: ExecutorBuild, address: str, name: str) -> str:
    fn = build.contract.fn(name)
    reply = await rpc.request("eth_call", [{"to": address, "data": "0x" + fn.call().hex()}, "latest"])
    return str(fn.value(bytes.fromhex(str(reply)[2:])))
