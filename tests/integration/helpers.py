"""Small read/write helpers for integration tests: the contracts' own views, nothing recomputed."""

from __future__ import annotations

from typing import Any

from keeper.devnet.abi import decode_result, encode_call
from keeper.devnet.rpc import Rpc

MAX_UINT = 2**256 - 1
WAD = 10**18


def view(
    rpc: Rpc, to: str, sig: str, out: list[str], *args: Any, block: str | int = "latest"
) -> tuple[Any, ...]:
    return decode_result(out, rpc.eth_call(to, encode_call(sig, *args), block))


def send(rpc: Rpc, sender: str, to: str, sig: str, *args: Any) -> dict[str, Any]:
    """One transaction from an (auto-impersonated) account; returns its receipt."""
    tx_hash = rpc.call(
        "eth_sendTransaction",
        [{"from": sender, "to": to, "data": "0x" + encode_call(sig, *args).hex(), "gas": hex(3_000_000)}],
    )
    for _ in range(200):
        receipt = rpc.call("eth_getTransactionReceipt", [tx_hash])
        if receipt is not None:
            return dict(receipt)
        rpc.call("evm_mine")
    raise AssertionError(f"{sig} not mined")


def account_data(rpc: Rpc, pool: str, user: str) -> tuple[int, ...]:
    return tuple(int(v) for v in view(rpc, pool, "getUserAccountData(address)", ["uint256"] * 6, user))
