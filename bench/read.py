"""Time the CPU side of one block's read: encoding and decoding ``read_pool_and_users`` and
``read_markets_and_positions`` for many users, with the node's answers replayed from memory.

    .venv/bin/python -m bench.read [--users 20000] [--repeat 5]

Not a test: it measures. The node is a replay (answers computed once per distinct request and
cached), so what is timed is the keeper's own work per block: building every call, the Multicall3
envelope, and decoding every result into the protocol's state; the replay's lookups cost the same
whatever the keeper's codec. Comparable across commits, since it only uses the readers' signatures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from eth_abi.abi import decode, encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from keeper.protocols.aave_v3.reader import PoolAddresses, read_pool_and_users
from keeper.protocols.morpho_blue.reader import read_markets_and_positions
from keeper.protocols.morpho_blue.state import MarketParams

BLOCK = 1_000


def _sel(signature: str) -> bytes:
    return keccak(text=signature)[:4]


def _addr(tag: int) -> str:
    return to_checksum_address(tag.to_bytes(20, "big"))


Answer = Callable[[str, bytes], bytes]


class Replay:
    """Answers eth_call to Multicall3 by selector; each distinct request is computed once."""

    def __init__(self, answers: dict[bytes, Answer]) -> None:
        self.answers = answers
        self.cache: dict[str, str] = {}

    async def request(self, method: str, params: Sequence[Any] = ()) -> Any:
        raise NotImplementedError(method)

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        return [self._answer(params[0]["data"]) for _, params in calls]

    def _answer(self, data: str) -> str:
        cached = self.cache.get(data)
        if cached is None:
            (items,) = decode(["(address,bool,bytes)[]"], bytes.fromhex(data[10:]))
            results = [
                (True, self.answers[call[:4]](to_checksum_address(t), call[4:])) for t, _, call in items
            ]
            cached = "0x" + encode(["(bool,bytes)[]"], [results]).hex()
            self.cache[data] = cached
        return cached


def _words(*values: int) -> bytes:
    return b"".join(v.to_bytes(32, "big") for v in values)


def aave_replay(assets: list[str]) -> Replay:
    index = {a: i for i, a in enumerate(assets)}

    def reserve(_: str, arg: bytes) -> bytes:
        i = index[to_checksum_address(arg[12:32])]
        config = 8000 | 8250 << 16 | 10500 << 32 | 18 << 48 | 1 << 56 | 1 << 58 | (1 if i == 2 else 0) << 168
        tokens = [int.from_bytes(bytes.fromhex(_addr(0xA000 + 16 * i + k)[2:]), "big") for k in range(4)]
        ray = 10**27
        return _words(config, ray + i, 10**25, ray + 2 * i, 2 * 10**25, 0, 1_700_000_000, i, *tokens, 0, 0, 0)

    def emode(_: str, arg: bytes) -> bytes:
        return encode(
            ["(uint16,uint16,uint16,address,string)"], [(9300, 9500, 10100, "0x" + "00" * 20, "stable")]
        )

    return Replay(
        {
            _sel("getReservesList()"): lambda t, a: encode(["address[]"], [assets]),
            _sel("getReserveData(address)"): reserve,
            _sel("getAssetPrice(address)"): lambda t, a: _words(2000 * 10**8),
            _sel("totalSupply()"): lambda t, a: _words(0),
            _sel("balanceOf(address)"): lambda t, a: _words(10**24),
            _sel("getSourceOfAsset(address)"): lambda t, a: _words(0xFEED),
            _sel("latestRoundData()"): lambda t, a: _words(1, 2000 * 10**8, 1_700_000_000, 1_700_000_000, 1),
            _sel("getUserConfiguration(address)"): lambda t, a: _words(
                0b011001
            ),  # collateral 0, debt 1 and 2
            _sel("getEModeCategoryData(uint8)"): emode,
            _sel("getUserEMode(address)"): lambda t, a: _words(0),
            _sel("scaledBalanceOf(address)"): lambda t, a: _words(int.from_bytes(a[-8:], "big") * 10**6),
        }
    )


def morpho_replay() -> Replay:
    return Replay(
        {
            _sel("market(bytes32)"): lambda t, a: _words(
                10**24, 10**30, 5 * 10**23, 5 * 10**29, 1_700_000_000, 0
            ),
            _sel("price()"): lambda t, a: _words(2000 * 10**36),
            _sel("position(bytes32,address)"): lambda t, a: _words(0, int.from_bytes(a[-8:], "big"), 10**18),
            _sel(
                "borrowRateView((address,address,address,address,uint256),(uint128,uint128,uint128,uint128,uint128,uint128))"
            ): lambda t, a: _words(10**9),
        }
    )


def _timed(run: Callable[[], Any], repeat: int) -> list[float]:
    run()  # warms the replay's cache: later runs time the keeper only
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        timings.append((time.perf_counter() - start) * 1000)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.read", description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    users = [_addr(0x10_0000 + i) for i in range(args.users)]

    assets = [_addr(0xE000 + i) for i in range(3)]
    addresses = PoolAddresses(_addr(0x1), _addr(0x2), _addr(0x3))
    aave = aave_replay(assets)
    state, _ = asyncio.run(read_pool_and_users(aave, addresses, BLOCK, [], None))

    def read_aave() -> Any:
        return asyncio.run(read_pool_and_users(aave, addresses, BLOCK, users, state))

    oracle, irm = _addr(0xC1), _addr(0xC2)
    markets = [
        MarketParams("0x" + bytes([i + 1]).hex() * 32, _addr(0xD0 + i), _addr(0xD8), oracle, irm, 86 * 10**16)
        for i in range(3)
    ]
    positions = [(markets[i % 3].id, user) for i, user in enumerate(users)]
    morpho = morpho_replay()

    def read_morpho() -> Any:
        return asyncio.run(read_markets_and_positions(morpho, _addr(0x4), BLOCK, markets, positions))

    results = {}
    for name, run in (
        ("aave_v3 read_pool_and_users", read_aave),
        ("morpho_blue read_markets_and_positions", read_morpho),
    ):
        timings = _timed(run, args.repeat)
        results[name] = {"median_ms": statistics.median(timings), "min_ms": min(timings)}
        median, best = statistics.median(timings), min(timings)
        print(f"| {name} | {args.users:,} users | {median:.1f} ms median | {best:.1f} ms min |")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
