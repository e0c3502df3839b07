"""Find the devnet's price feeds from the chain itself and move them with real feed transactions."""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from eth_utils.address import to_checksum_address

from keeper.errors import UsageError

from .abi import create_address, decode_result, encode_call
from .accounts import DEPLOYER_INDEX, dev_account
from .rpc import Rpc, Tx


def pool_addresses_provider() -> str:
    """The devnet deploys Aave's PoolAddressesProvider as the deployer's very first transaction."""
    return create_address(dev_account(DEPLOYER_INDEX).address, 0)


def _view(rpc: Rpc, to: str, sig: str, out: list[str], *args: object) -> tuple[Any, ...]:
    return decode_result(out, rpc.eth_call(to, encode_call(sig, *args)))


def discover_feeds(rpc: Rpc) -> dict[str, str]:
    """Symbol -> feed, read through Aave's oracle: the single source of truth for devnet prices."""
    provider = pool_addresses_provider()
    if rpc.call("eth_getCode", [provider, "latest"]) in ("0x", "0x0"):
        raise UsageError(f"no keeper devnet at {rpc.url} (no PoolAddressesProvider at {provider})")
    (oracle,) = _view(rpc, provider, "getPriceOracle()", ["address"])
    (pool,) = _view(rpc, provider, "getPool()", ["address"])
    (reserves,) = _view(rpc, str(pool), "getReservesList()", ["address[]"])
    feeds: dict[str, str] = {}
    for reserve in reserves:
        (symbol,) = _view(rpc, reserve, "symbol()", ["string"])
        (feed,) = _view(rpc, str(oracle), "getSourceOfAsset(address)", ["address"], reserve)
        feeds[str(symbol)] = to_checksum_address(str(feed))
    return feeds


def parse_percent(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise UsageError(f"--move {text!r} is not a percentage (e.g. -20 or 7.5)") from None
    if not value.is_finite() or value <= -100:
        raise UsageError(f"--move {text} must be a finite percentage above -100")
    return value


def parse_usd(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise UsageError(f"--set {text!r} is not a USD price (e.g. 1850.25)") from None
    if not value.is_finite() or value <= 0:
        raise UsageError(f"--set {text} must be a positive USD price")
    return value


def moved_answer(answer: int, percent: Decimal) -> int:
    """New feed answer after a relative move, rounded toward zero, never below 1."""
    return max(1, int(Decimal(answer) * (100 + percent) / 100))


def usd_answer(usd: Decimal, decimals: int) -> int:
    return max(1, int(usd * 10**decimals))


@dataclass(frozen=True)
class PriceUpdate:
    asset: str
    feed: str
    old_answer: int
    new_answer: int
    decimals: int
    block: int
    tx: str


def set_price(
    rpc: Rpc, symbol: str, *, usd: Decimal | None = None, move: Decimal | None = None
) -> PriceUpdate:
    feeds = discover_feeds(rpc)
    if symbol not in feeds:
        raise UsageError(f"unknown asset {symbol!r}; the devnet has {', '.join(sorted(feeds))}")
    feed = feeds[symbol]
    (old,) = _view(rpc, feed, "latestAnswer()", ["int256"])
    (decimals,) = _view(rpc, feed, "decimals()", ["uint8"])
    (owner,) = _view(rpc, feed, "owner()", ["address"])
    assert isinstance(old, int) and isinstance(decimals, int)
    if usd is not None:
        new = usd_answer(usd, decimals)
    elif move is not None:
        new = moved_answer(old, move)
    else:
        raise UsageError("give --set USD or --move PERCENT")
    receipt = _send(
        rpc,
        Tx(
            to_checksum_address(str(owner)),
            feed,
            encode_call("updateAnswer(int256)", new),
            f"update {symbol} feed",
        ),
    )
    return PriceUpdate(
        symbol, feed, old, new, decimals, int(receipt["blockNumber"], 16), receipt["transactionHash"]
    )


def _send(rpc: Rpc, tx: Tx) -> dict[str, Any]:
    """One feed transaction, mined at once with automine or with the next interval block."""
    tx_hash = rpc.call(
        "eth_sendTransaction", [{"from": tx.sender, "to": tx.to, "data": "0x" + tx.data.hex()}]
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        receipt = rpc.call("eth_getTransactionReceipt", [tx_hash])
        if receipt is not None:
            if int(receipt["status"], 16) != 1:
                raise UsageError(f"{tx.label} reverted: {tx_hash}")
            return dict(receipt)
        time.sleep(0.1)
    raise UsageError(f"{tx.label}: {tx_hash} not mined within 120 s")
