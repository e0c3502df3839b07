"""Find the devnet's price feeds from the chain itself and move them with real feed transactions,
the Uniswap pools along with them."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from eth_utils.address import to_checksum_address

from keeper.errors import DevnetError, UsageError

from .abi import create_address, decode_result, encode_call
from .accounts import DEPLOYER_INDEX, dev_account
from .arbitrage import DevnetToken, arbitrage_moves
from .rpc import Rpc, Tx, mine_together


def pool_addresses_provider() -> str:
    """The devnet deploys Aave's PoolAddressesProvider as the deployer's very first transaction."""
    return create_address(dev_account(DEPLOYER_INDEX).address, 0)


def _view(rpc: Rpc, to: str, sig: str, out: list[str], *args: object) -> tuple[Any, ...]:
    return decode_result(out, rpc.eth_call(to, encode_call(sig, *args)))


@dataclass(frozen=True)
class DevnetAsset:
    token: DevnetToken
    feed: str


def discover_assets(rpc: Rpc) -> dict[str, DevnetAsset]:
    """Symbol -> token and feed, read through Aave's oracle: the single source of truth for devnet prices."""
    provider = pool_addresses_provider()
    if rpc.call("eth_getCode", [provider, "latest"]) in ("0x", "0x0"):
        raise UsageError(f"no keeper devnet at {rpc.url} (no PoolAddressesProvider at {provider})")
    (oracle,) = _view(rpc, provider, "getPriceOracle()", ["address"])
    (pool,) = _view(rpc, provider, "getPool()", ["address"])
    (reserves,) = _view(rpc, str(pool), "getReservesList()", ["address[]"])
    assets: dict[str, DevnetAsset] = {}
    for reserve in reserves:
        (symbol,) = _view(rpc, reserve, "symbol()", ["string"])
        (decimals,) = _view(rpc, reserve, "decimals()", ["uint8"])
        (feed,) = _view(rpc, str(oracle), "getSourceOfAsset(address)", ["address"], reserve)
        token = DevnetToken(to_checksum_address(reserve), int(decimals))
        assets[str(symbol)] = DevnetAsset(token, to_checksum_address(str(feed)))
    return assets


def discover_feeds(rpc: Rpc) -> dict[str, str]:
    """Symbol -> feed (see `discover_assets`)."""
    return {symbol: a.feed for symbol, a in discover_assets(rpc).items()}


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
    pools: tuple[tuple[str, str], ...] = ()
    """(pool, transaction) for every Uniswap pool swapped to the new price, in the same block."""


def set_price(
    rpc: Rpc, symbol: str, *, usd: Decimal | None = None, move: Decimal | None = None
) -> PriceUpdate:
    """Move ``symbol``'s feed and, in the same block, every devnet pool trading it to the price the
    feeds now imply (the feed update first, then the arbitrage swaps)."""
    assets = discover_assets(rpc)
    if symbol not in assets:
        raise UsageError(f"unknown asset {symbol!r}; the devnet has {', '.join(sorted(assets))}")
    feed = assets[symbol].feed
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
    answers = {s: int(_view(rpc, a.feed, "latestAnswer()", ["int256"])[0]) for s, a in assets.items()}
    answers[symbol] = new
    moves = arbitrage_moves(rpc, {s: a.token for s, a in assets.items()}, answers, symbol)
    update = Tx(
        to_checksum_address(str(owner)),
        feed,
        encode_call("updateAnswer(int256)", new),
        f"update {symbol} feed",
    )
    try:
        receipt, *swaps = mine_together(rpc, [update, *(m.tx for m in moves)])
    except DevnetError as exc:
        raise UsageError(str(exc)) from None
    return PriceUpdate(
        symbol,
        feed,
        old,
        new,
        decimals,
        int(receipt["blockNumber"], 16),
        receipt["transactionHash"],
        tuple((m.pool, r["transactionHash"]) for m, r in zip(moves, swaps, strict=True)),
    )
