"""Multicall3 ``aggregate3``: many view calls evaluated against one block in one round trip.

Encoding is written out by hand (it is a fixed, simple ABI shape): eth_abi costs tens of
microseconds per element, which adds up at 100,000 calls; a test checks this encoder against eth_abi.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol, runtime_checkable

from eth_utils.crypto import keccak

from keeper.errors import KeeperError

from .abi import contract
from .rpc import BlockTag, Rpc, block_param

MULTICALL3 = "0xcA11bde05977b3631167028862bE2a173976CA11"
"""Deployed at the same address on every major chain (and by `keeper devnet up`); the default of
``chain.multicall3``."""

AGGREGATE3_SELECTOR = contract("common/Multicall3").fn("aggregate3").selector
"""From the ABI; the encoder below writes the ``(address,bool,bytes)[]`` argument by hand, for speed."""
MAX_CALLS_PER_CHUNK = 500
MAX_CALLDATA_BYTES_PER_CHUNK = 120_000
"""Kept well under common node limits on request size and eth_call gas for one aggregate3."""
MAX_REQUEST_BYTES = 900_000
"""One HTTP request carries chunks up to about this much hex calldata: nodes cap bodies (Anvil at
2 MiB) and aiohttp blocks the loop on bodies over 1 MiB; larger reads go out as several requests at once."""


@dataclass(frozen=True, slots=True)
class Call:
    target: str
    data: bytes
    allow_failure: bool = False


@dataclass(frozen=True, slots=True)
class Result:
    success: bool
    data: bytes


class MulticallError(KeeperError):
    """A call that was not allowed to fail reverted, or the node returned something unparseable."""


@runtime_checkable
class MulticallAt(Protocol):
    """An `Rpc` that knows where this chain's Multicall3 is (`RpcPool`, from ``chain.multicall3``)."""

    multicall3: str


def multicall_address(rpc: Rpc) -> str:
    """The Multicall3 reads through ``rpc`` go to: the pool's configured one, else the canonical."""
    return rpc.multicall3 if isinstance(rpc, MulticallAt) else MULTICALL3


def _word(value: int) -> bytes:
    return value.to_bytes(32, "big")


def _padded(data: bytes) -> bytes:
    return data + b"\x00" * (-len(data) % 32)


def encode_aggregate3(calls: Sequence[Call]) -> bytes:
    """Calldata for ``aggregate3((address,bool,bytes)[])``."""
    tuples = []
    for call in calls:
        tuples.append(
            bytes(12)
            + bytes.fromhex(call.target[2:])
            + _word(int(call.allow_failure))
            + _word(0x60)
            + _word(len(call.data))
            + _padded(call.data)
        )
    offsets = []
    position = 32 * len(tuples)
    for encoded in tuples:
        offsets.append(_word(position))
        position += len(encoded)
    return AGGREGATE3_SELECTOR + _word(0x20) + _word(len(calls)) + b"".join(offsets) + b"".join(tuples)


def decode_aggregate3(raw: bytes) -> list[Result]:
    """Return value ``(bool,bytes)[]`` of ``aggregate3``."""
    try:
        base = int.from_bytes(raw[0:32], "big")
        count = int.from_bytes(raw[base : base + 32], "big")
        items = base + 32
        results = []
        for index in range(count):
            start = items + int.from_bytes(raw[items + 32 * index : items + 32 * index + 32], "big")
            success = raw[start + 31] == 1
            data_at = start + int.from_bytes(raw[start + 32 : start + 64], "big")
            length = int.from_bytes(raw[data_at : data_at + 32], "big")
            data = raw[data_at + 32 : data_at + 32 + length]
            if len(data) != length:
                raise MulticallError("aggregate3 result truncated")
            results.append(Result(success, data))
    except IndexError as exc:
        raise MulticallError(f"aggregate3 result malformed ({len(raw)} bytes)") from exc
    return results


def chunks(
    calls: Sequence[Call],
    max_calls: int = MAX_CALLS_PER_CHUNK,
    max_bytes: int = MAX_CALLDATA_BYTES_PER_CHUNK,
) -> Iterator[Sequence[Call]]:
    """Consecutive slices bounded by call count and by encoded size (~ 128 bytes + data per call)."""
    start = 0
    size = 0
    for index, call in enumerate(calls):
        cost = 160 + len(call.data)
        if index > start and (index - start >= max_calls or size + cost > max_bytes):
            yield calls[start:index]
            start, size = index, 0
        size += cost
    if start < len(calls):
        yield calls[start:]


async def aggregate3(
    rpc: Rpc,
    calls: Sequence[Call],
    block: BlockTag,
    multicall: str | None = None,
    max_calls: int = MAX_CALLS_PER_CHUNK,
) -> list[Result]:
    """All calls at one block, chunked, in as few JSON-RPC batches as body limits allow; failures only
    where allowed. ``multicall`` defaults to `multicall_address` of ``rpc``."""
    if not calls:
        return []
    multicall = multicall or multicall_address(rpc)
    tag = block_param(block)
    pieces = list(chunks(calls, max_calls))
    encoded = ["0x" + encode_aggregate3(piece).hex() for piece in pieces]
    groups: list[list[tuple[str, list[Any]]]] = [[]]
    size = 0
    for data in encoded:
        if groups[-1] and size + len(data) > MAX_REQUEST_BYTES:
            groups.append([])
            size = 0
        groups[-1].append(("eth_call", [{"to": multicall, "data": data}, tag]))
        size += len(data)
    replies = [reply for group in await asyncio.gather(*(rpc.batch(g) for g in groups)) for reply in group]
    results: list[Result] = []
    for piece, reply in zip(pieces, replies, strict=True):
        if reply == "0x":  # an eth_call to an address without code returns no data at all
            raise MulticallError(
                f"chain.multicall3: no Multicall3 contract at {multicall} (aggregate3 returned no data); "
                "deploy one or set chain.multicall3 to this chain's deployment"
            )
        decoded = decode_aggregate3(bytes.fromhex(reply[2:]))
        if len(decoded) != len(piece):
            raise MulticallError(f"aggregate3 returned {len(decoded)} results for {len(piece)} calls")
        results += decoded
    for call, result in zip(calls, results, strict=True):
        if not result.success and not call.allow_failure:
            raise MulticallError(f"call to {call.target} selector 0x{call.data[:4].hex()} reverted")
    return results


@cache
def selector(signature: str) -> bytes:
    """4-byte selector of a canonical signature such as ``getUserEMode(address)``.

    For the devnet's deployer and tests; the keeper's own calls take theirs from `keeper.chain.abi`."""
    return keccak(text=signature)[:4]


def address_arg(address: str) -> bytes:
    """One ABI-encoded address argument."""
    return bytes(12) + bytes.fromhex(address[2:])


def uint_arg(value: int) -> bytes:
    return _word(value)


def words(data: bytes) -> list[int]:
    """A static return value as its 32-byte words (uints, bools, addresses all fit)."""
    return [int.from_bytes(data[i : i + 32], "big") for i in range(0, len(data) - len(data) % 32, 32)]
