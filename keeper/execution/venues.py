"""The Uniswap V3 pools the flash strategy sells on, read once per block, so swaps are computed locally.

At start-up the venue's factory is asked for a pool per (token pair, fee tier) among the tracked
protocols' tokens; pools that exist get their ``token0`` and ``tickSpacing`` read once. Every block
(in one `aggregate3`, whatever the number of opportunities) each followed pool's ``slot0``,
``liquidity``, the tick-bitmap words around its price and the ``liquidityNet`` of the initialized
ticks in them are read; a tick newly initialized since the last read costs a second, small round.
`keeper.math.uniswap_v3.exact_input` then prices any sale inside that window exactly; outside it,
or for a pool not followed (`MAX_POOLS`), the planner asks QuoterV2 as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from keeper.chain.abi import contract
from keeper.chain.multicall import Call, Result, aggregate3
from keeper.chain.rpc import BlockTag, Rpc
from keeper.math.uniswap_v3 import PoolState, exact_input

FACTORY = contract("uniswap_v3/IUniswapV3Factory")
GET_POOL = FACTORY.fn("getPool")
POOL = contract("uniswap_v3/IUniswapV3Pool")
SLOT0, LIQUIDITY, TICK_BITMAP, TICKS = (
    POOL.fn("slot0"),
    POOL.fn("liquidity"),
    POOL.fn("tickBitmap"),
    POOL.fn("ticks"),
)
TOKEN0, TICK_SPACING = POOL.fn("token0"), POOL.fn("tickSpacing")
BALANCE_OF = contract("common/IERC20").fn("balanceOf")
FLASHLOAN_PREMIUM_TOTAL = contract("aave_v3_6/IPool").fn("FLASHLOAN_PREMIUM_TOTAL")
ZERO = "0x" + "00" * 20
WORDS_EACH_SIDE = 2
"""Bitmap words read on each side of the price's word: a word spans 256 tick spacings, so two cover
a move of about x4.6 in a 0.3 % pool, ±29 % per word in a 0.05 % one and ±2.6 % in a 0.01 % one."""
MAX_POOLS = 64
"""Pools followed per block at most (the rest are quoted by QuoterV2 when a sale needs them)."""


@dataclass(frozen=True, slots=True)
class Pool:
    address: str
    token0: str
    token1: str
    fee: int
    tick_spacing: int


@dataclass
class PoolBook:
    """The followed pools and their state at the last block read."""

    pools: dict[tuple[str, str, int], Pool] = field(default_factory=dict)
    """(token0, token1, fee) -> pool, tokens lower-cased and sorted."""
    states: dict[str, PoolState] = field(default_factory=dict)
    """pool address -> its state at the last block read (absent: not read, or unreadable)."""
    block: BlockTag | None = None
    searched: frozenset[str] = frozenset()
    """Lower-cased tokens whose pairs the factory was asked about: a pair of two of them with no
    entry in ``pools`` has no pool on that tier (or one this book does not follow)."""

    def absent(self, token_in: str, token_out: str, fee: int) -> bool:
        a, b = sorted((token_in.lower(), token_out.lower()))
        return {a, b} <= self.searched and (a, b, fee) not in self.pools

    def state(self, token_in: str, token_out: str, fee: int) -> tuple[PoolState, bool] | None:
        """The pool selling ``token_in`` for ``token_out`` at ``fee``, and whether that is zero for one."""
        a, b = sorted((token_in.lower(), token_out.lower()))
        pool = self.pools.get((a, b, fee))
        state = None if pool is None else self.states.get(pool.address)
        if pool is None or state is None:
            return None
        return state, token_in.lower() == pool.token0.lower()


async def discover_pools(rpc: Rpc, factory: str, tokens: Iterable[str], fee_tiers: Iterable[int]) -> PoolBook:
    """Every existing pool among ``tokens`` on the given tiers (two `aggregate3` rounds)."""
    searched = sorted({t.lower() for t in tokens})
    keys = [(a, b, fee) for a, b in combinations(searched, 2) for fee in fee_tiers]
    found = await aggregate3(
        rpc, [Call(factory, GET_POOL.call(a, b, fee), allow_failure=True) for a, b, fee in keys], "latest"
    )
    existing = [
        (key, GET_POOL.value(r.data))
        for key, r in zip(keys, found, strict=True)
        if r.success and len(r.data) >= 32
    ]
    existing = [(key, address) for key, address in existing if address.lower() != ZERO][:MAX_POOLS]
    calls = [
        Call(address, fn.call(), allow_failure=True)
        for _, address in existing
        for fn in (TOKEN0, TICK_SPACING)
    ]
    answers = await aggregate3(rpc, calls, "latest")
    book = PoolBook(searched=frozenset(searched) if len(existing) < MAX_POOLS else frozenset())
    for index, ((a, b, fee), address) in enumerate(existing):
        token0, spacing = answers[2 * index], answers[2 * index + 1]
        if not (token0.success and spacing.success):
            continue
        first = str(TOKEN0.value(token0.data))
        if first.lower() != a:
            continue  # not a Uniswap V3 pool as the factory described it
        book.pools[(a, b, fee)] = Pool(address, a, b, fee, int(TICK_SPACING.value(spacing.data)))
    return book


def _words_around(tick: int, spacing: int) -> range:
    word = (tick // spacing) >> 8
    return range(word - WORDS_EACH_SIDE, word + WORDS_EACH_SIDE + 1)


def _initialized(word: int, bitmap: int, spacing: int) -> list[int]:
    return [((word << 8) + bit) * spacing for bit in range(256) if bitmap >> bit & 1]


@dataclass
class _Reading:
    """One pool's answers so far in this block's read."""

    slot0: Result
    liquidity: Result
    bitmaps: dict[int, int] = field(default_factory=dict)
    nets: dict[int, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.slot0.success and self.liquidity.success and len(self.slot0.data) >= 64

    @property
    def tick(self) -> int:
        return int(SLOT0.decode(self.slot0.data)["tick"])


async def refresh_pools(rpc: Rpc, book: PoolBook, block: BlockTag) -> None:
    """Every followed pool's state at ``block``: price, liquidity, the bitmap words around the price
    and the initialized ticks' ``liquidityNet``. One round when the price stayed in last block's
    window and no tick was initialized since; words or ticks not known yet cost a round each."""
    pools = list(book.pools.values())
    first: list[Call] = []
    asked: list[tuple[list[int], list[int]]] = []
    for pool in pools:
        previous = book.states.get(pool.address)
        words = list(_words_around(previous.tick, pool.tick_spacing)) if previous else []
        ticks = sorted(previous.liquidity_net) if previous else []
        asked.append((words, ticks))
        first += [Call(pool.address, fn.call(), allow_failure=True) for fn in (SLOT0, LIQUIDITY)]
        first += [Call(pool.address, TICK_BITMAP.call(w), allow_failure=True) for w in words]
        first += [Call(pool.address, TICKS.call(t), allow_failure=True) for t in ticks]
    answers = iter(await aggregate3(rpc, first, block))
    readings: dict[str, _Reading] = {}
    for pool, (words, ticks) in zip(pools, asked, strict=True):
        reading = _Reading(next(answers), next(answers))
        reading.bitmaps = _decoded(words, answers, TICK_BITMAP.value)
        reading.nets = _decoded(ticks, answers, _liquidity_net)
        if reading.ok:
            readings[pool.address] = reading
    followed = [p for p in pools if p.address in readings]
    missing_words = [
        (p, w)
        for p in followed
        for w in _words_around(readings[p.address].tick, p.tick_spacing)
        if w not in readings[p.address].bitmaps
    ]
    for (pool, word), value in await _fetch(rpc, missing_words, TICK_BITMAP.call, TICK_BITMAP.value, block):
        readings[pool.address].bitmaps[word] = value
    missing_ticks = [
        (p, t)
        for p in followed
        for w in _words_around(readings[p.address].tick, p.tick_spacing)
        for t in _initialized(w, readings[p.address].bitmaps.get(w, 0), p.tick_spacing)
        if t not in readings[p.address].nets
    ]
    for (pool, tick), value in await _fetch(rpc, missing_ticks, TICKS.call, _liquidity_net, block):
        readings[pool.address].nets[tick] = value
    book.states = {p.address: s for p in pools if (s := _state(p, readings.get(p.address))) is not None}
    book.block = block


def _liquidity_net(data: bytes) -> int:
    return int(TICKS.decode(data)["liquidityNet"])


def _decoded(keys: list[int], answers: Iterator[Result], decode: Callable[[bytes], Any]) -> dict[int, int]:
    out = {}
    for key in keys:
        answer = next(answers)
        if answer.success and len(answer.data) >= 32:
            out[key] = int(decode(answer.data))
    return out


async def _fetch(
    rpc: Rpc,
    wanted: list[tuple[Pool, int]],
    call: Callable[[int], bytes],
    decode: Callable[[bytes], Any],
    block: BlockTag,
) -> list[tuple[tuple[Pool, int], int]]:
    """One view of many pools, each with its own integer argument, in one round; failures left out."""
    if not wanted:
        return []
    results = await aggregate3(
        rpc, [Call(p.address, call(arg), allow_failure=True) for p, arg in wanted], block
    )
    return [
        (key, int(decode(r.data)))
        for key, r in zip(wanted, results, strict=True)
        if r.success and len(r.data) >= 32
    ]


def _state(pool: Pool, reading: _Reading | None) -> PoolState | None:
    """The pool's state when every word of its window and every initialized tick in it answered."""
    if reading is None:
        return None
    words = _words_around(reading.tick, pool.tick_spacing)
    if any(word not in reading.bitmaps for word in words):
        return None
    initialized = [t for w in words for t in _initialized(w, reading.bitmaps[w], pool.tick_spacing)]
    if any(t not in reading.nets for t in initialized):
        return None
    return PoolState(
        sqrt_price_x96=int(SLOT0.decode(reading.slot0.data)["sqrtPriceX96"]),
        tick=reading.tick,
        liquidity=int(LIQUIDITY.value(reading.liquidity.data)),
        fee=pool.fee,
        tick_spacing=pool.tick_spacing,
        liquidity_net={t: reading.nets[t] for t in initialized},
        word_range=(words.start, words.stop - 1),
    )


@dataclass
class VenueBook:
    """What the flash planner asks every block with opportunities, read before it is asked: the
    followed pools, Morpho's balance of each debt token (its flash loans are free) and each Aave
    pool's flash premium. Read once per block, with the block's receipts, whatever the number of
    opportunities."""

    pools: PoolBook
    lender_balances: dict[str, int] = field(default_factory=dict)
    premiums: dict[str, int] = field(default_factory=dict)

    def no_pool(self, token_in: str, token_out: str, fee: int) -> bool:
        """The factory has no pool for the pair on that tier (the quoter would only revert)."""
        return self.pools.absent(token_in, token_out, fee)

    _sales: dict[tuple[str, str, int, int], int | None] = field(default_factory=dict)
    """This block's computed sales: a block plans its first waves, then all of them again with the
    rest (running totals), so the same sale is asked more than once. Cleared at each refresh."""

    def sale(self, token_in: str, token_out: str, fee: int, amount: int) -> int | None:
        """What selling ``amount`` pays on that pool at the block read, if it can be computed here."""
        key = (token_in, token_out, fee, amount)
        if key not in self._sales:
            self._sales[key] = self._computed_sale(token_in, token_out, fee, amount)
        return self._sales[key]

    def forget_sales(self) -> None:
        self._sales.clear()

    def _computed_sale(self, token_in: str, token_out: str, fee: int, amount: int) -> int | None:
        found = self.pools.state(token_in, token_out, fee)
        if found is None:
            return None
        state, zero_for_one = found
        out = exact_input(state, zero_for_one, amount)
        return out if out else None


async def refresh_venue_book(
    rpc: Rpc,
    book: VenueBook,
    lender: str | None,
    tokens: Iterable[str],
    aave_pools: Iterable[str],
    block: BlockTag,
) -> None:
    """The book at ``block``: pools (`refresh_pools`) and, in one round beside them, the lender's
    balances and the premiums. What does not answer is left out (the planner then asks itself)."""
    tokens, aave_pools = sorted(set(tokens)) if lender else [], sorted(set(aave_pools))
    calls = [Call(t, BALANCE_OF.call(lender), allow_failure=True) for t in tokens]
    calls += [Call(p, FLASHLOAN_PREMIUM_TOTAL.call(), allow_failure=True) for p in aave_pools]
    try:
        pools = refresh_pools(rpc, book.pools, block)
        _, results = await asyncio.gather(pools, aggregate3(rpc, calls, block))
    finally:
        book.forget_sales()  # the pools moved (or may have, in part): every sale is computed again
    words = [int.from_bytes(r.data[:32], "big") if r.success and len(r.data) >= 32 else None for r in results]
    book.lender_balances = {t: w for t, w in zip(tokens, words[: len(tokens)], strict=True) if w is not None}
    book.premiums = {p: w for p, w in zip(aave_pools, words[len(tokens) :], strict=True) if w is not None}
