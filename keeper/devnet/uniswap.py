"""Deploy Uniswap V3 (core and periphery, from their npm artifacts) with a pool for every pair the
devnet's borrowers hold, initialised at the feed prices and funded by a liquidity provider.

Periphery contracts take a WETH9 address; the devnet's WETH is a plain ERC-20, and it is the one
given. Nothing on the devnet wraps native ETH: every swap is token for token, and a call that sends
ETH to the router or position manager reverts (the token has no `deposit`) instead of silently
wrapping into a token the protocols do not know. The position manager's token descriptor is the
zero address: only `tokenURI` reads it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from keeper.errors import DevnetError, UsageError

from .abi import create_address, decode_result, encode_args, encode_call
from .accounts import ARBITRAGEUR_INDEX, LIQUIDITY_PROVIDER_INDEX, UNISWAP_DEPLOYER_INDEX, dev_account
from .rpc import DEPLOY_GAS, Executor, Rpc, Tx
from .spec import FEED_DECIMALS, UNISWAP_POOLS, UniswapPoolSpec, asset
from .toolchain import Toolchain, pool_init_code_hash, uniswap_artifact
from .uniswap_math import (
    Q96,
    TICK_SPACINGS,
    Position,
    amounts_for,
    position_worth,
    range_ticks,
    sqrt_price_x96,
    swap_to,
)

MAX_UINT = 2**256 - 1
DEADLINE = MAX_UINT
ZERO = "0x0000000000000000000000000000000000000000"
ARBITRAGEUR_FUNDS = 2**120
"""Minted to the arbitrageur per token at start: its swaps never run dry (each uses what it needs)."""
MINT_PARAMS = "(address,address,uint24,int24,int24,uint256,uint256,uint256,uint256,address,uint256)"
EXTRA_FEE_TIERS = (100,)
CORE = ("UniswapV3Factory", "SwapRouter", "QuoterV2", "NonfungiblePositionManager")
"""In deployment order: the Uniswap deployer's nonces 0, 1, 2, 3."""


@dataclass(frozen=True)
class UniswapPool:
    symbol0: str
    symbol1: str
    token0: str
    token1: str
    fee: int
    address: str


@dataclass(frozen=True)
class UniswapDeployment:
    factory: str
    swap_router: str
    quoter: str
    position_manager: str
    pools: tuple[UniswapPool, ...]

    @property
    def fee_tiers(self) -> list[int]:
        return sorted({p.fee for p in self.pools})


def uniswap_addresses() -> dict[str, str]:
    """Factory, router, quoter and position manager: the Uniswap deployer's first four creations."""
    deployer = dev_account(UNISWAP_DEPLOYER_INDEX).address
    return {name: create_address(deployer, nonce) for nonce, name in enumerate(CORE)}


def check_pool_init_code_hash(chain: Toolchain) -> None:
    """The periphery finds pools by CREATE2 address, computed with a hash of the pool's creation
    code baked into its libraries; a factory whose pool code differs would leave every router and
    quoter call pointing at empty addresses."""
    code = bytes.fromhex(uniswap_artifact(chain, "UniswapV3Pool").bytecode.removeprefix("0x"))
    expected = pool_init_code_hash(chain)
    if keccak(code) != expected:
        raise UsageError(
            f"@uniswap/v3-core's UniswapV3Pool hashes to 0x{keccak(code).hex()}, but "
            f"@uniswap/v3-periphery expects POOL_INIT_CODE_HASH 0x{expected.hex()}: mismatched packages"
        )


def pool_address(factory: str, token0: str, token1: str, fee: int, init_code_hash: bytes) -> str:
    """PoolAddress.computeAddress: CREATE2 by the factory, salted with the sorted pair and fee."""
    salt = keccak(encode_args("(address,address,uint24)", token0, token1, fee))
    raw = keccak(b"\xff" + bytes.fromhex(factory[2:]) + salt + init_code_hash)
    return to_checksum_address(raw[12:])


def sorted_pair(spec: UniswapPoolSpec, tokens: dict[str, str]) -> tuple[str, str]:
    """The pool's symbols as token0, token1 (the lower address first, as the factory sorts them)."""
    a, b = spec.a, spec.b
    return (a, b) if int(tokens[a], 16) < int(tokens[b], 16) else (b, a)


def deploy_uniswap(ex: Executor, chain: Toolchain, tokens: dict[str, str]) -> UniswapDeployment:
    """Factory, router, quoter, position manager, then every pool created, initialised at the
    feeds' seeded prices and given its liquidity ranges: one mined block."""
    check_pool_init_code_hash(chain)
    deployer = dev_account(UNISWAP_DEPLOYER_INDEX).address
    lp = dev_account(LIQUIDITY_PROVIDER_INDEX).address
    arbitrageur = dev_account(ARBITRAGEUR_INDEX).address
    addresses = uniswap_addresses()
    if ex.next_create_address(deployer) != addresses["UniswapV3Factory"]:
        raise DevnetError(f"the Uniswap deployer {deployer} has sent transactions already")
    factory, router, manager = (
        addresses[n] for n in ("UniswapV3Factory", "SwapRouter", "NonfungiblePositionManager")
    )
    weth = tokens["WETH"]
    ctor_args = {
        "UniswapV3Factory": b"",
        "SwapRouter": encode_args("(address,address)", factory, weth),
        "QuoterV2": encode_args("(address,address)", factory, weth),
        "NonfungiblePositionManager": encode_args("(address,address,address)", factory, weth, ZERO),
    }
    txs = [
        Tx(deployer, None, uniswap_artifact(chain, n).linked({}) + ctor_args[n], n, gas=DEPLOY_GAS)
        for n in CORE
    ]
    # The 0.01 % tier is not in the factory's constructor: mainnet governance enabled it later.
    txs += [
        Tx(
            deployer,
            factory,
            encode_call("enableFeeAmount(uint24,int24)", fee, TICK_SPACINGS[fee]),
            "fee tier",
        )
        for fee in EXTRA_FEE_TIERS
    ]
    pool_txs: list[Tx] = []
    lp_needs = dict.fromkeys(tokens, 0)
    for spec in UNISWAP_POOLS:
        pool_txs += _pool_txs(spec, tokens, lp, manager, lp_needs)
    txs += _funding(lp, manager, tokens, {s: n for s, n in lp_needs.items() if n})
    txs += _funding(arbitrageur, router, tokens, dict.fromkeys(tokens, ARBITRAGEUR_FUNDS))
    ex.execute(txs + pool_txs)
    return UniswapDeployment(
        factory, router, addresses["QuoterV2"], manager, tuple(_read_pools(ex.rpc, factory, tokens))
    )


def _funding(holder: str, spender: str, tokens: dict[str, str], amounts: dict[str, int]) -> list[Tx]:
    """Tokens minted to ``holder`` (anyone may mint the devnet's tokens), approved to ``spender``."""
    txs = []
    for symbol, amount in amounts.items():
        token = tokens[symbol]
        txs.append(Tx(holder, token, encode_call("mint(uint256)", amount), f"mint {symbol} for {holder}"))
        txs.append(Tx(holder, token, encode_call("approve(address,uint256)", spender, MAX_UINT), "approve"))
    return txs


@dataclass(frozen=True)
class PoolLayout:
    """A pool as the devnet seeds it: initial price and one position per liquidity range."""

    symbol0: str
    symbol1: str
    sqrt_price_x96: int
    ranges: tuple[tuple[tuple[int, int], Position], ...]  # (tickLower, tickUpper), position


def pool_layout(spec: UniswapPoolSpec, symbol0: str, symbol1: str) -> PoolLayout:
    """Initial price at the seeded feed answers and each range's ticks and liquidity (pure)."""
    a0, a1 = asset(symbol0), asset(symbol1)
    sqrt_x96 = sqrt_price_x96(a0.price_usd_8, a0.decimals, a1.price_usd_8, a1.decimals)
    sqrt_p = sqrt_x96 / Q96
    ranges = []
    for r in spec.ranges:
        ticks = range_ticks(sqrt_p**2, r.half_width_bps, TICK_SPACINGS[spec.fee])
        value1 = r.usd * 10**a1.decimals * 10**FEED_DECIMALS / a1.price_usd_8
        ranges.append((ticks, position_worth(value1, sqrt_p, ticks)))
    return PoolLayout(symbol0, symbol1, sqrt_x96, tuple(ranges))


def sell_to_move(spec: UniswapPoolSpec, layout: PoolLayout, sell: str, percent: float) -> tuple[int, int]:
    """Raw units of ``sell`` (fee included) whose sale into the freshly seeded pool lowers its
    price in the other token by ``percent``, and what that sale yields of the other token: the
    depth the devnet's liquidity gives, and the slippage a liquidation that size sees."""
    down = 1 - percent / 100
    factor = down if sell == layout.symbol0 else 1 / down
    positions = [pos for _, pos in layout.ranges]
    amount_in, amount_out = swap_to(positions, layout.sqrt_price_x96 / Q96, factor, spec.fee)
    return round(amount_in), math.floor(amount_out)


def _pool_txs(
    spec: UniswapPoolSpec, tokens: dict[str, str], lp: str, manager: str, lp_needs: dict[str, int]
) -> list[Tx]:
    """Create-and-initialise at the seeded feed prices, then one position per range; adds what the
    positions take to ``lp_needs``."""
    layout = pool_layout(spec, *sorted_pair(spec, tokens))
    symbol0, symbol1 = layout.symbol0, layout.symbol1
    token0, token1 = tokens[symbol0], tokens[symbol1]
    label = f"{symbol0}/{symbol1} {spec.fee}"
    create = encode_call(
        "createAndInitializePoolIfNecessary(address,address,uint24,uint160)",
        token0,
        token1,
        spec.fee,
        layout.sqrt_price_x96,
    )
    txs = [Tx(lp, manager, create, f"create pool {label}", gas=DEPLOY_GAS)]
    sqrt_p = layout.sqrt_price_x96 / Q96
    for ticks, pos in layout.ranges:
        held = amounts_for(pos.liquidity, sqrt_p, pos.sqrt_lower, pos.sqrt_upper)
        amount0, amount1 = (math.ceil(x) + 1 for x in held)
        params = (token0, token1, spec.fee, *ticks, amount0, amount1, 0, 0, lp, DEADLINE)
        mint = encode_call(f"mint({MINT_PARAMS})", params)
        txs.append(Tx(lp, manager, mint, f"add liquidity {label} {ticks}"))
        lp_needs[symbol0] += amount0
        lp_needs[symbol1] += amount1
    return txs


def _read_pools(rpc: Rpc, factory: str, tokens: dict[str, str]) -> list[UniswapPool]:
    pools = []
    for spec in UNISWAP_POOLS:
        symbol0, symbol1 = sorted_pair(spec, tokens)
        token0, token1 = tokens[symbol0], tokens[symbol1]
        (address,) = decode_result(
            ["address"],
            rpc.eth_call(factory, encode_call("getPool(address,address,uint24)", token0, token1, spec.fee)),
        )
        pools.append(UniswapPool(symbol0, symbol1, token0, token1, spec.fee, to_checksum_address(address)))
    return pools
