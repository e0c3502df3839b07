"""The keeper wallet at start-up: native balance, and per debt token its balance and allowance."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog

from keeper.chain.abi import contract
from keeper.chain.multicall import Call, aggregate3
from keeper.chain.rpc import Rpc
from keeper.execution.approvals import Holding
from keeper.state.sync import Tracked

log = structlog.get_logger(__name__)

ERC20 = contract("common/IERC20")
BALANCE_OF = ERC20.fn("balanceOf")
ALLOWANCE = ERC20.fn("allowance")


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
            Call(token, BALANCE_OF.call(address)),
            Call(token, ALLOWANCE.call(address, target)),
        ]
    results = await aggregate3(rpc, calls, "latest")
    native = int(await rpc.request("eth_getBalance", [address, "latest"]), 16)
    report: dict[str, Any] = {"address": address, "native_wei": str(native), "tokens": {}}
    for index, (label, target) in enumerate(tokens.items()):
        balance = BALANCE_OF.value(results[2 * index].data)
        allowance = ALLOWANCE.value(results[2 * index + 1].data)
        report["tokens"][label] = {"balance": str(balance), "allowance": str(allowance), "spender": target}
        if allowance == 0:
            log.warning(
                "approval_missing", token=label.split(":", 1)[1], spender=target, protocol=label.split(":")[0]
            )
    return report


def holdings(report: dict[str, Any]) -> list[Holding]:
    """The report's debt tokens as rows: what start-up approves from."""
    rows = []
    for label, token in report["tokens"].items():
        protocol, address = label.split(":", 1)
        rows.append(
            Holding(protocol, address, token["spender"], int(token["balance"]), int(token["allowance"]))
        )
    return rows
