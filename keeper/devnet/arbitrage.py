"""Keep the devnet's Uniswap pools at the feeds' prices: the swaps an arbitrageur makes when a feed moves.

On a real chain arbitrageurs close the gap between an oracle and a DEX within a block or two; on
the devnet one dev account does it in the feed update's own block, so a keeper quoting the pools
never sees a DEX that lags the oracle. Each swap goes through SwapRouter.exactInputSingle with far
more input than needed and the target price as `sqrtPriceLimitX96`: the pool stops exactly there
and the router takes only what the pool asked for.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_utils.address import to_checksum_address

from .abi import decode_result, encode_call
from .accounts import ARBITRAGEUR_INDEX, dev_account
from .rpc import Rpc, Tx
from .spec import UNISWAP_POOLS
from .uniswap import DEADLINE, uniswap_addresses
from .uniswap_math import sqrt_price_x96

ARBITRAGE_AMOUNT_IN = 2**100
"""More than any pool holds: the price limit, not the amount, ends the swap."""
ARBITRAGE_GAS = 5_000_000
"""A far move on a 1-tick-spacing pool steps through many bitmap words."""
SWAP_PARAMS = "(address,address,uint24,address,uint256,uint256,uint256,uint160)"
ZERO = "0x0000000000000000000000000000000000000000"


@dataclass(frozen=True)
class DevnetToken:
    address: str
    decimals: int


@dataclass(frozen=True)
class PoolMove:
    pool: str
    label: str
    target_sqrt_price_x96: int
    tx: Tx


def arbitrage_moves(
    rpc: Rpc, tokens: dict[str, DevnetToken], answers: dict[str, int], moved: str
) -> list[PoolMove]:
    """A swap for every devnet pool that trades ``moved``, to the price the feeds' ``answers`` (by
    symbol, the new one for ``moved``) imply. Empty on a chain without the devnet's Uniswap."""
    addresses = uniswap_addresses()
    factory, router = addresses["UniswapV3Factory"], addresses["SwapRouter"]
    if rpc.call("eth_getCode", [factory, "latest"]) in ("0x", "0x0"):
        return []
    specs = [s for s in UNISWAP_POOLS if moved in (s.a, s.b) and s.a in tokens and s.b in tokens]
    pairs = [sorted((s.a, s.b), key=lambda symbol: int(tokens[symbol].address, 16)) for s in specs]
    found = _calls(
        rpc,
        [
            (
                factory,
                encode_call("getPool(address,address,uint24)", tokens[a].address, tokens[b].address, s.fee),
            )
            for s, (a, b) in zip(specs, pairs, strict=True)
        ],
    )
    pools = [to_checksum_address(decode_result(["address"], raw)[0]) for raw in found]
    slot0s = _calls(rpc, [(p, encode_call("slot0()")) for p in pools if p != ZERO])
    current = iter(int(decode_result(["uint160"], raw[:32])[0]) for raw in slot0s)
    arbitrageur = dev_account(ARBITRAGEUR_INDEX).address
    moves = []
    for spec, (symbol0, symbol1), pool in zip(specs, pairs, pools, strict=True):
        if pool == ZERO:
            continue
        now = next(current)
        t0, t1 = tokens[symbol0], tokens[symbol1]
        target = sqrt_price_x96(answers[symbol0], t0.decimals, answers[symbol1], t1.decimals)
        if target == now:
            continue
        zero_for_one = target < now  # token0 gets cheaper: sell token0 into the pool
        token_in, token_out = (t0, t1) if zero_for_one else (t1, t0)
        params = (
            token_in.address,
            token_out.address,
            spec.fee,
            arbitrageur,
            DEADLINE,
            ARBITRAGE_AMOUNT_IN,
            0,
            target,
        )
        label = f"arbitrage {symbol0}/{symbol1} {spec.fee}"
        call = encode_call(f"exactInputSingle({SWAP_PARAMS})", params)
        moves.append(PoolMove(pool, label, target, Tx(arbitrageur, router, call, label, gas=ARBITRAGE_GAS)))
    return moves


def _calls(rpc: Rpc, calls: list[tuple[str, bytes]]) -> list[bytes]:
    """Views in one JSON-RPC batch, at the latest block."""
    results = rpc.batch(
        [("eth_call", [{"to": to, "data": "0x" + data.hex()}, "latest"]) for to, data in calls]
    )
    return [bytes.fromhex(r[2:]) for r in results]
