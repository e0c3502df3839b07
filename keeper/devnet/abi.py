"""Call encoding for the devnet deployer: selector + eth_abi, no contract objects.

web3's contract layer costs ~0.6 ms per encoded call; seeding thousands of borrowers encodes
tens of thousands, so the deployer works with signatures and precomputed selectors instead.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from eth_abi.abi import decode, encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from keeper.chain.multicall import selector


def arg_types(signature: str) -> list[str]:
    """Split the parenthesised argument list of a signature at top-level commas."""
    inner = signature[signature.index("(") + 1 : signature.rindex(")")]
    types: list[str] = []
    depth = 0
    start = 0
    for i, char in enumerate(inner):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            types.append(inner[start:i])
            start = i + 1
    if inner:
        types.append(inner[start:])
    return types


def encode_call(signature: str, *args: Any) -> bytes:
    return selector(signature) + encode(_parsed_types(signature), list(args))


def encode_args(signature: str, *args: Any) -> bytes:
    """Constructor arguments: the same encoding without a selector."""
    return encode(_parsed_types(signature), list(args))


def decode_result(types: list[str], data: bytes) -> tuple[Any, ...]:
    return tuple(decode(types, data))


@cache
def _parsed_types(signature: str) -> list[str]:
    return arg_types(signature)


def create_address(sender: str, nonce: int) -> str:
    """Address of a contract created by ``sender`` at ``nonce`` (RLP of [sender, nonce])."""
    sender_bytes = bytes.fromhex(sender[2:])
    if nonce == 0:
        nonce_rlp = b"\x80"
    elif nonce < 0x80:
        nonce_rlp = bytes([nonce])
    else:
        raw = nonce.to_bytes((nonce.bit_length() + 7) // 8, "big")
        nonce_rlp = bytes([0x80 + len(raw)]) + raw
    payload = b"\x94" + sender_bytes + nonce_rlp
    rlp = bytes([0xC0 + len(payload)]) + payload
    return to_checksum_address(keccak(rlp)[12:])
