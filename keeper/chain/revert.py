"""Name a revert: ``Error(string)``, ``Panic(uint256)`` or a custom error of any packaged ABI.

Aave v3.4+ reverts with custom errors (``MustNotLeaveDust()`` is four bytes, ``0xb629b0e4``); a
node reports them as ``execution reverted`` plus data, or as ``custom error 0x…``. Skip reasons and
logs should say the name. Pure: the table is built once from ``abis/`` (`keeper.chain.abi`).
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

from eth_abi.abi import decode as abi_decode

from .abi import CustomError, contract

ERROR_STRING = bytes.fromhex("08c379a0")
"""``Error(string)``: ``require(cond, "reason")`` and ``revert("reason")``."""
PANIC = bytes.fromhex("4e487b71")
"""``Panic(uint256)``: 0x01 assert, 0x11 arithmetic over/underflow, 0x12 division by zero, ..."""


@cache
def known_errors() -> dict[bytes, CustomError]:
    """Selector -> custom error, over every ABI packaged with keeper."""
    root = resources.files("keeper").joinpath("abis")
    errors: dict[bytes, CustomError] = {}
    for folder in sorted(root.iterdir(), key=lambda p: p.name):
        if not folder.is_dir():
            continue
        for file in sorted(folder.iterdir(), key=lambda p: p.name):
            if file.name.endswith(".json"):
                for error in contract(f"{folder.name}/{file.name[:-5]}").errors.values():
                    errors.setdefault(error.selector, error)
    return errors


def describe_revert(data: bytes) -> str:
    """What a revert's data says, by name; ``0x…`` hex when no packaged ABI knows the selector."""
    if not data:
        return "reverted without data"
    selector = data[:4]
    if selector == ERROR_STRING:
        try:
            (reason,) = abi_decode(["string"], data[4:])
        except Exception:
            return f"Error(<undecodable 0x{data[4:].hex()}>)"
        return f"Error({reason!r})"
    if selector == PANIC and len(data) >= 36:
        return f"Panic(0x{int.from_bytes(data[4:36], 'big'):02x})"
    error = known_errors().get(selector)
    if error is None:
        return f"0x{data.hex()}"
    return error.describe(data)


def revert_data(error_data: Any) -> bytes | None:
    """The revert bytes inside a JSON-RPC error's ``data`` (a hex string, or an object holding one)."""
    if isinstance(error_data, dict):
        error_data = error_data.get("data")
    if isinstance(error_data, str) and error_data.startswith("0x"):
        try:
            return bytes.fromhex(error_data[2:])
        except ValueError:
            return None
    return None
