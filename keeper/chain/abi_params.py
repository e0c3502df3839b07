"""ABI parameters and their word-level codecs, the building blocks of `keeper.chain.abi`.

Static types are encoded and decoded word by word (a fraction of eth_abi's cost per call); dynamic
ones (strings, bytes, arrays) go through eth_abi. Pure: eth_abi and eth_utils only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from eth_utils.address import to_checksum_address

from keeper.errors import KeeperError

Word = Callable[[int], Any]


class AbiError(KeeperError, ValueError):
    """An ABI, a name or a value does not fit: fix the ABI file or the code that names it."""


@dataclasses.dataclass(frozen=True, slots=True)
class Param:
    name: str
    type: str
    """As written in the ABI: ``uint256``, ``tuple``, ``tuple[]``, ``address[]``..."""
    components: tuple[Param, ...] = ()
    indexed: bool = False

    @classmethod
    def parse(cls, raw: Mapping[str, Any], position: int = 0) -> Param:
        """An unnamed parameter (``returns (uint256, uint256)``) is named by its position: "0", "1"."""
        parts = tuple(cls.parse(c, i) for i, c in enumerate(raw.get("components", ())))
        return cls(raw.get("name") or str(position), raw["type"], parts, bool(raw.get("indexed", False)))

    @property
    def canonical(self) -> str:
        """The type as a signature spells it: tuples expanded, e.g. ``(address,uint256)[]``."""
        if self.type.startswith("tuple"):
            return "(" + ",".join(c.canonical for c in self.components) + ")" + self.type[5:]
        return self.type

    @property
    def static_words(self) -> int | None:
        """Head size in words when the type is static (no strings, bytes or arrays), else None."""
        if self.type == "tuple":
            sizes = [c.static_words for c in self.components]
            return None if None in sizes else sum(s for s in sizes if s is not None)
        if self.type in ("string", "bytes") or self.type.endswith("]"):
            return None
        return 1


def _signed(word: int) -> int:
    return word - (1 << 256) if word >> 255 else word


def _address(word: int) -> str:
    return to_checksum_address(word.to_bytes(32, "big")[12:])


def word_decoder(kind: str) -> Word:
    if kind.startswith("uint"):
        return int
    if kind.startswith("int"):
        return _signed
    if kind == "bool":
        return bool
    if kind == "address":
        return _address
    if kind.startswith("bytes"):
        size = int(kind[5:])
        return lambda word: "0x" + word.to_bytes(32, "big")[:size].hex()
    raise AbiError(f"no word decoder for {kind}")


def _fixed_bytes(value: bytes | str, size: int) -> bytes:
    raw = bytes.fromhex(value[2:]) if isinstance(value, str) else value
    if len(raw) != size:
        raise AbiError(f"bytes{size} value has {len(raw)} bytes")
    return raw


_PAD12 = bytes(12)


def _encode_address(value: str | bytes) -> bytes:
    raw = bytes.fromhex(value[2:]) if isinstance(value, str) else value
    if len(raw) != 20:
        raise AbiError(f"address value has {len(raw)} bytes")
    return _PAD12 + raw


def _word_encoder(kind: str) -> Callable[[Any], bytes]:
    if kind.startswith("uint") or kind == "bool":
        return lambda value: int(value).to_bytes(32, "big")
    if kind.startswith("int"):
        return lambda value: int(value).to_bytes(32, "big", signed=True)
    if kind == "address":
        return _encode_address
    if kind == "bytes32":  # market ids: no padding to add
        return lambda value: _fixed_bytes(value, 32)
    if kind.startswith("bytes"):
        size = int(kind[5:])
        return lambda value: _fixed_bytes(value, size).ljust(32, b"\x00")
    raise AbiError(f"no word encoder for {kind}")


def decoder(param: Param) -> Callable[[Sequence[int], int], tuple[Any, int]]:
    """Reads a static ``param`` from a list of words at an index; returns (value, next index)."""
    if param.type != "tuple":
        convert = word_decoder(param.type)
        return lambda words, at: (convert(words[at]), at + 1)
    parts = [(c.name, decoder(c)) for c in param.components]

    def read(words: Sequence[int], at: int) -> tuple[Any, int]:
        fields = {}
        for name, part in parts:
            fields[name], at = part(words, at)
        return fields, at

    return read


def encoder(param: Param) -> Callable[[Any], bytes]:
    """Encodes a static ``param``; a tuple takes a mapping by component name or a sequence."""
    if param.type != "tuple":
        return _word_encoder(param.type)
    parts = [(c.name, encoder(c)) for c in param.components]

    def write(value: Any) -> bytes:
        if isinstance(value, Mapping):
            return b"".join(part(value[name]) for name, part in parts)
        if len(value) != len(parts):
            raise AbiError(f"tuple of {len(parts)} components given {len(value)} values")
        return b"".join(part(v) for (_, part), v in zip(parts, value, strict=True))

    return write


def from_eth_abi(param: Param, value: Any) -> Any:
    """eth_abi's output in this codec's conventions (checksummed addresses, hex bytesN, dicts)."""
    if param.type.endswith("]"):
        inner = dataclasses.replace(param, type=param.type[: param.type.rindex("[")])
        return [from_eth_abi(inner, v) for v in value]
    if param.type == "tuple":
        return {c.name: from_eth_abi(c, v) for c, v in zip(param.components, value, strict=True)}
    if param.type == "address":
        return to_checksum_address(value)
    if param.type.startswith("bytes") and param.type != "bytes":
        return "0x" + bytes(value).hex()
    return value


def to_eth_abi(param: Param, value: Any) -> Any:
    if param.type.endswith("]"):
        inner = dataclasses.replace(param, type=param.type[: param.type.rindex("[")])
        return [to_eth_abi(inner, v) for v in value]
    if param.type == "tuple":
        values = [value[c.name] for c in param.components] if isinstance(value, Mapping) else value
        return tuple(to_eth_abi(c, v) for c, v in zip(param.components, values, strict=True))
    if param.type.startswith("bytes") and isinstance(value, str):
        return bytes.fromhex(value[2:])
    return value
