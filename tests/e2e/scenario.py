"""The price path of the end-to-end tests, and what the chain says happened during it."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from keeper.chain.multicall import words
from keeper.chain.rpc import HttpRpc
from keeper.devnet.abi import decode_result, encode_call
from keeper.devnet.feeds import discover_feeds, moved_answer
from keeper.devnet.inspect import multicall
from keeper.devnet.rpc import Rpc
from keeper.errors import DevnetError
from keeper.protocols.aave_v3.events import liquidation as aave_liquidation
from keeper.protocols.base import BlockRef
from keeper.protocols.morpho_blue.adapter import MorphoBlueAdapter
from keeper.protocols.morpho_blue.events import liquidation as morpho_liquidation
from tests.integration.adapter_support import Follower
from tests.support.devnet import Devnet

AAVE_BORROW = "0x" + keccak(text="Borrow(address,address,address,uint256,uint8,uint256,uint16)").hex()
MAX_UINT = 2**256 - 1
WAD = 10**18
PRICE_PATH = (("WETH", "-25"), ("WETH", "10"), ("WBTC", "-15"))


@dataclass
class Move:
    symbol: str
    percent: str
    block: int
    competitor_victims: list[str] = field(default_factory=list)


def wait_for_block(rpc: Rpc, number: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while rpc.block_number() < number:
        if time.monotonic() > deadline:
            raise AssertionError(f"block {number} never came")
        time.sleep(0.1)


def aave_borrowers(rpc: Rpc, pool: str) -> list[str]:
    logs = rpc.call("eth_getLogs", [{"address": pool, "topics": [AAVE_BORROW], "fromBlock": "0x0"}])
    return sorted({to_checksum_address("0x" + log["topics"][2][-40:]) for log in logs})


def aave_unhealthy(rpc: Rpc, pool: str, users: list[str], block: str | int) -> set[str]:
    raws = multicall(
        rpc,
        [(pool, encode_call("getUserAccountData(address)", u)) for u in users],
        hex(block) if isinstance(block, int) else block,
    )
    return {u for u, raw in zip(users, raws, strict=True) if words(raw)[1] and words(raw)[5] < WAD}


GRACE_REFUSAL = "0x9e3e6060"
"""``LiquidationGraceSentinelCheckFailed()``."""


def aave_refused(rpc: Rpc, pool: str, users: set[str], block: int, liquidator: str) -> set[str]:
    """The users with a position of whom the pool refuses every liquidation (each collateral/debt
    pair, uint256 max, aTokens) at the end of ``block`` because of a liquidation grace period."""
    tag = hex(block)
    (reserves,) = decode_result(["address[]"], rpc.eth_call(pool, encode_call("getReservesList()"), tag))
    refused = set()
    for user in sorted(users):
        (config,) = decode_result(
            ["uint256"], rpc.eth_call(pool, encode_call("getUserConfiguration(address)", user), tag)
        )
        collateral = [a for i, a in enumerate(reserves) if (config >> (2 * i + 1)) & 1]
        debt = [a for i, a in enumerate(reserves) if (config >> (2 * i)) & 1]
        if (collateral and debt) and not any(
            _liquidation_passes(rpc, pool, c, d, user, tag, liquidator) for c in collateral for d in debt
        ):
            refused.add(user)
    return refused


def _liquidation_passes(
    rpc: Rpc, pool: str, collateral: str, debt: str, user: str, tag: str, liquidator: str
) -> bool:
    call = encode_call(
        "liquidationCall(address,address,address,uint256,bool)", collateral, debt, user, 2**256 - 1, True
    )
    try:
        rpc.call("eth_call", [{"from": liquidator, "to": pool, "data": "0x" + call.hex()}, tag])
    except DevnetError as refused:  # the liquidator's inventory may fall short: only a grace counts
        assert "revert" in str(refused), refused
        return GRACE_REFUSAL not in str(refused)
    return True


def morpho_unhealthy(devnet: Devnet, block: int) -> set[str]:
    """Exact Morpho health at ``block`` (the shared adapter suite proves it equals the contract's)."""

    async def read() -> set[str]:
        async with HttpRpc(devnet.summary["rpc_url"]) as rpc:
            follower = Follower(MorphoBlueAdapter("morpho", devnet.summary["morpho"]["address"]), rpc)
            await follower.sync()
            header = await rpc.request("eth_getBlockByNumber", [hex(block), False])
            ref = BlockRef(block, header["hash"], int(header["timestamp"], 16))
            await follower.adapter.refresh(rpc, ref, follower.adapter.tracked())
            return {h.user for h in follower.adapter.health(ref.timestamp) if h.liquidatable}

    return asyncio.run(read())


def move_price(devnet: Devnet, symbol: str, percent: str, competitor_victims: int = 0) -> Move:
    """The feed update (and, first in the same block, a competitor's liquidations) in one mined block."""
    rpc = devnet.rpc
    feed = discover_feeds(rpc)[symbol]
    (owner,) = decode_result(["address"], rpc.eth_call(feed, encode_call("owner()")))
    (answer,) = decode_result(["int256"], rpc.eth_call(feed, encode_call("latestAnswer()")))
    rpc.call("evm_setIntervalMining", [0])
    try:
        update = encode_call("updateAnswer(int256)", moved_answer(int(answer), Decimal(percent)))
        rpc.call("eth_sendTransaction", [{"from": owner, "to": feed, "data": "0x" + update.hex()}])
        victims = _competitor_liquidations(devnet, competitor_victims) if competitor_victims else []
        rpc.call("evm_mine")
    finally:
        rpc.call("evm_setIntervalMining", [1])
    return Move(symbol, percent, rpc.block_number(), victims)


def _competitor_liquidations(devnet: Devnet, count: int) -> list[str]:
    """Liquidate ``count`` Aave WETH/USDC positions that the pending price makes unhealthy."""
    rpc, s = devnet.rpc, devnet.summary
    pool, weth, usdc = s["aave"]["pool"], s["aave"]["reserves"]["WETH"], s["aave"]["reserves"]["USDC"]
    data_provider = s["aave"]["data_provider"]
    victims = []
    out = ["uint256"] * 5 + ["uint256", "uint256", "uint40", "bool"]
    for user in sorted(aave_unhealthy(rpc, pool, aave_borrowers(rpc, pool), "pending")):
        weth_row = decode_result(
            out,
            rpc.eth_call(
                data_provider, encode_call("getUserReserveData(address,address)", weth, user), "pending"
            ),
        )
        usdc_row = decode_result(
            out,
            rpc.eth_call(
                data_provider, encode_call("getUserReserveData(address,address)", usdc, user), "pending"
            ),
        )
        if weth_row[0] and weth_row[8] and usdc_row[2]:
            call = encode_call(
                "liquidationCall(address,address,address,uint256,bool)", weth, usdc, user, MAX_UINT, False
            )
            rpc.call(
                "eth_sendTransaction",
                [
                    {
                        "from": s["competitor_address"],
                        "to": pool,
                        "data": "0x" + call.hex(),
                        "gas": hex(2_000_000),
                    }
                ],
            )
            victims.append(user)
            if len(victims) == count:
                break
    return victims


def liquidations(devnet: Devnet, first: int, last: int) -> list[dict[str, Any]]:
    """Every liquidation (anyone's) in the range, with its block and transaction."""
    s = devnet.summary
    logs = devnet.rpc.call(
        "eth_getLogs",
        [
            {
                "address": [s["aave"]["pool"], s["morpho"]["address"]],
                "fromBlock": hex(first),
                "toBlock": hex(last),
            }
        ],
    )
    found = []
    for log in logs:
        event = aave_liquidation(log) or morpho_liquidation(log)
        if event is not None:
            found.append(event | {"block": int(log["blockNumber"], 16), "tx": log["transactionHash"]})
    return found


def transactions_from(devnet: Devnet, sender: str, first: int, last: int) -> list[dict[str, Any]]:
    """Receipts of every transaction ``sender`` got included in blocks ``first``..``last``."""
    receipts = []
    for number in range(first, last + 1):
        for receipt in devnet.rpc.call("eth_getBlockReceipts", [hex(number)]) or []:
            if receipt["from"].lower() == sender.lower():
                receipts.append(receipt)
    return receipts
