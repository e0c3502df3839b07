"""The keeper wallet at start-up: native balance, and per debt token its balance and allowance."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog

from keeper.chain.multicall import Call, address_arg, aggregate3, words
from keeper.chain.rpc import Rpc
from keeper.execution.executor import ALLOWANCE, BALANCE_OF
from keeper.state.sync import Tracked

log = structlog.get_logger(__name__)


async def wallet_report(rpc: Rpc, address: str, protocols: Sequence[Tracked]) -> dict[str, Any]:
    """Native balance, and per debt token the balance and the allowance for the contract that pulls it."""
    tokens: dict[str, str] = {}  # "protocol:token" -> the spender (pool / Morpho) that pulls it
    for tracked in protocols:
        for token, spender in tracked.adapter.snapshot().spenders.items():
            tokens[f"{tracked.name}:{token}"] = spender
    calls = []
    for label, target in tokens.items():
        token = label.split(":", 1)[1]
        calls += [
            Call(token, BALANCE_OF + address_arg(address)),
            Call(token, ALLOWANCE + address_arg(address) + address_arg(target)),
        ]
    results = await aggregate3(rpc, calls, "latest")
    native = int(await rpc.request("eth_getBalance", [address, "latest"]), 16)
    report: dict[str, Any] = {"address": address, "native_wei": str(native), "tokens": {}}
    for index, (label, target) in enumerate(tokens.items()):
        balance, allowance = words(results[2 * index].data)[0], words(results[2 * index + 1].data)[0]
        report["tokens"][label] = {"balance": str(balance), "allowance": str(allowance), "spender": target}
        if allowance == 0:
            log.warning(
                "approval_missing", token=label.split(":", 1)[1], spender=target, protocol=label.split(":")[0]
            )
    return report
