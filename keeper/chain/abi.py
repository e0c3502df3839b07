"""The ABI codec: calls, results and events built from the JSON ABIs in ``abis/``, by name, once.

``POOL = contract("aave_v3_0/IPool")`` loads ``abis/aave_v3_0/IPool.json`` (shipped inside the
package, so an installed keeper finds it too); ``POOL.fn("getReserveData").call(asset)`` is the
calldata, ``.decode(data)`` the named fields; ``POOL.event("LiquidationCall").topic`` and
``.decode(log)`` the same for logs, indexed fields included. A contract whose ABI differs from the one
the keeper was written against fails here, by name, instead of being read wrong by word position.

Speed: the hot path of a block read decodes thousands of one-word results (``scaledBalanceOf``,
``position``). Selectors, canonical types and a per-word converter plan are computed at import;
static inputs and outputs are encoded and decoded word by word (eth_abi costs ~5 µs per call, the
plan a fraction of that); only dynamic types (strings, arrays, bytes) go through eth_abi. A test
checks both paths against eth_abi.

Values: uint/int as ``int``, ``bool``, addresses checksummed, ``bytesN`` as lowercase ``0x`` hex
(the form market ids take in logs), ``bytes`` as ``bytes``, ``string`` as ``str``, tuples as dicts by
component name. Pure: eth_abi, eth_utils, json and importlib only (no I/O stack), so the pure event
decoders can use it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Collection, Mapping, Sequence
from functools import cache
from importlib import resources
from typing import Any, Generic, TypeVar

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_utils.crypto import keccak

from .abi_params import (
    AbiError,
    Param,
    Word,
    decoder,
    encoder,
    from_eth_abi,
    to_eth_abi,
    word_decoder,
)

__all__ = [
    "AbiError",
    "Binding",
    "Contract",
    "CustomError",
    "Event",
    "Function",
    "Param",
    "abi_text",
    "camel",
    "contract",
]

T = TypeVar("T")


class _Record:
    """A list of parameters decoded into named fields; static ones word by word, else via eth_abi.

    ``struct``: the parameters are the components of one encoded tuple (a function returning a
    struct). Static, that is the same bytes as the components side by side; dynamic, the tuple is
    behind an offset and eth_abi decodes it whole.
    """

    def __init__(self, params: Sequence[Param], what: str, struct: Param | None = None) -> None:
        self.params = tuple(params)
        self.what = what
        self.fields = tuple(p.name for p in self.params)
        self.struct = struct
        self.types = [struct.canonical] if struct is not None else [p.canonical for p in self.params]
        sizes = [p.static_words for p in self.params]
        self.words = sum(s for s in sizes if s is not None) if None not in sizes else None
        self.readers = [decoder(p) for p in self.params] if self.words is not None else []
        flat = self.words is not None and all(p.type != "tuple" for p in self.params)
        self.flat: list[Word] | None = [word_decoder(p.type) for p in self.params] if flat else None
        self.all_uint = flat and all(p.type.startswith("uint") for p in self.params)
        self.offsets = range(0, 32 * (self.words or 0), 32)

    def fast(self) -> Callable[[bytes], tuple[Any, ...]] | None:
        """A decoder for all-uint static records (market, position, balances), fewer branches per row."""
        if not self.all_uint:
            return None
        size, offsets, what, from_bytes = 32 * (self.words or 0), self.offsets, self.what, int.from_bytes

        def values(data: bytes) -> tuple[Any, ...]:
            if len(data) < size:
                raise AbiError(f"{what}: {len(data)} bytes, expected {size}")
            return tuple([from_bytes(data[i : i + 32], "big") for i in offsets])

        return values

    def values(self, data: bytes) -> tuple[Any, ...]:
        if self.words is None:
            try:
                raw = abi_decode(self.types, data)
            except Exception as exc:  # eth_abi raises several unrelated types
                raise AbiError(f"{self.what}: cannot decode {len(data)} bytes: {exc}") from exc
            if self.struct is not None:
                (raw,) = raw
            return tuple(from_eth_abi(p, v) for p, v in zip(self.params, raw, strict=True))
        if len(data) < 32 * self.words:
            raise AbiError(f"{self.what}: {len(data)} bytes, expected {32 * self.words}")
        if self.all_uint:  # the common case (market, position, balances): no conversion at all
            return tuple([int.from_bytes(data[i : i + 32], "big") for i in self.offsets])
        if self.flat is not None:
            words = [int.from_bytes(data[i : i + 32], "big") for i in self.offsets]
            return tuple([convert(word) for convert, word in zip(self.flat, words, strict=True)])
        words = [int.from_bytes(data[i : i + 32], "big") for i in range(0, 32 * self.words, 32)]
        out = []
        at = 0
        for read in self.readers:
            value, at = read(words, at)
            out.append(value)
        return tuple(out)


class Function:
    """One function of an ABI: its selector, calldata encoder and result decoder."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.name: str = raw["name"]
        self.inputs = tuple(Param.parse(p, i) for i, p in enumerate(raw.get("inputs", ())))
        outputs = tuple(Param.parse(p, i) for i, p in enumerate(raw.get("outputs", ())))
        self.signature = f"{self.name}({','.join(p.canonical for p in self.inputs)})"
        self.selector = keccak(text=self.signature)[:4]
        self._static_inputs = all(p.static_words is not None for p in self.inputs)
        self._encoders = [encoder(p) for p in self.inputs] if self._static_inputs else []
        self._input_types = [p.canonical for p in self.inputs]
        self.call: Callable[..., bytes] = self._fast_call() or self._call
        """Calldata: selector and arguments (tuples as mappings by component name, or sequences).
        An attribute, not a method: one- and two-word calls get a closure without the general checks."""
        self.outputs = outputs
        # one unnamed-or-not tuple output (a returned struct): its components are the fields
        struct = outputs[0] if len(outputs) == 1 and outputs[0].type == "tuple" else None
        record = struct.components if struct is not None else outputs
        self._record = _Record(record, f"{self.name} result", struct)
        self.fields = self._record.fields
        self.values: Callable[[bytes], tuple[Any, ...]] = self._record.fast() or self._record.values
        """The result's fields in ABI order (what `Binding.fill` takes); all-uint records get a closure."""
        self._single: Word | None = None
        if len(record) == 1 and record[0].static_words == 1 and record[0].type != "tuple":
            self._single = word_decoder(record[0].type)

    def _fast_call(self) -> Callable[..., bytes] | None:
        """Calldata builders for zero, one or two one-word arguments (the per-user views)."""
        if not self._static_inputs or any(p.type == "tuple" for p in self.inputs) or len(self.inputs) > 2:
            return None
        selector, encoders = self.selector, self._encoders
        if not encoders:
            return lambda: selector
        if len(encoders) == 1:
            (first,) = encoders
            return lambda a: selector + first(a)
        first, second = encoders
        return lambda a, b: selector + first(a) + second(b)

    def _call(self, *args: Any) -> bytes:
        if len(args) != len(self.inputs):
            raise AbiError(f"{self.signature} takes {len(self.inputs)} arguments, given {len(args)}")
        if self._static_inputs:
            return self.selector + b"".join(e(a) for e, a in zip(self._encoders, args, strict=True))
        converted = [to_eth_abi(p, a) for p, a in zip(self.inputs, args, strict=True)]
        return self.selector + abi_encode(self._input_types, converted)

    def decode(self, data: bytes) -> dict[str, Any]:
        """The result as named fields (a returned struct: its components)."""
        return dict(zip(self.fields, self._record.values(data), strict=True))

    def value(self, data: bytes) -> Any:
        """The result's only field (a one-member struct unwraps); one-word fields skip the general decoder."""
        if self._single is not None:
            if len(data) < 32:
                raise AbiError(f"{self.name} result: {len(data)} bytes, expected 32")
            return self._single(int.from_bytes(data[:32], "big"))
        if len(self.fields) != 1:
            raise AbiError(f"{self.name} returns {len(self.fields)} fields: use decode()")
        return self._record.values(data)[0]


class Event:
    """One event of an ABI: its topic0 and a log decoder (indexed fields from topics, others from data)."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.name: str = raw["name"]
        self.inputs = tuple(Param.parse(p, i) for i, p in enumerate(raw.get("inputs", ())))
        self.signature = f"{self.name}({','.join(p.canonical for p in self.inputs)})"
        self.topic = "0x" + keccak(text=self.signature).hex()
        self.fields = tuple(p.name for p in self.inputs)
        indexed = [p for p in self.inputs if p.indexed]
        self._indexed = [
            (p.name, word_decoder(p.type) if p.static_words == 1 and p.type != "tuple" else _topic_hash)
            for p in indexed
        ]
        self._data = _Record([p for p in self.inputs if not p.indexed], f"{self.name} data")

    def topic_index(self, field: str) -> int:
        """Which topic carries the indexed ``field`` (topic 0 is the signature)."""
        names = [name for name, _ in self._indexed]
        if field not in names:
            raise AbiError(f"event {self.signature} has no indexed field {field}")
        return 1 + names.index(field)

    def matches(self, log: Mapping[str, Any]) -> bool:
        """This event, with its indexed fields where the ABI puts them (else `decode` would refuse it)."""
        topics = log["topics"]
        return len(topics) == 1 + len(self._indexed) and topics[0] == self.topic

    def decode(self, log: Mapping[str, Any]) -> dict[str, Any]:
        """Every field by name, from a log with hex ``topics`` and ``data`` as JSON-RPC returns them."""
        topics = log["topics"]
        if len(topics) != 1 + len(self._indexed) or topics[0] != self.topic:
            raise AbiError(f"log is not a {self.signature} event")
        pairs = zip(self._indexed, topics[1:], strict=True)
        fields = {name: convert(int(topic, 16)) for (name, convert), topic in pairs}
        data = log["data"]
        raw = bytes.fromhex(data[2:]) if isinstance(data, str) else bytes(data)
        fields.update(zip(self._data.fields, self._data.values(raw), strict=True))
        return {name: fields[name] for name in self.fields}


class CustomError:
    """One custom error of an ABI: its selector and argument decoder (what a revert returns)."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.name: str = raw["name"]
        self.inputs = tuple(Param.parse(p, i) for i, p in enumerate(raw.get("inputs", ())))
        self.signature = f"{self.name}({','.join(p.canonical for p in self.inputs)})"
        self.selector = keccak(text=self.signature)[:4]
        self._record = _Record(self.inputs, f"{self.name} error")

    def describe(self, data: bytes) -> str:
        """``Name(arg, ...)`` from revert data that starts with this selector."""
        if not self.inputs:
            return f"{self.name}()"
        try:
            values = self._record.values(data[4:])
        except (AbiError, ValueError):
            return f"{self.name}(<undecodable arguments>)"
        return f"{self.name}({', '.join(repr(v) for v in values)})"


def _topic_hash(word: int) -> str:
    """An indexed dynamic value is stored as its keccak hash: all a log can tell."""
    return "0x" + word.to_bytes(32, "big").hex()


class Contract:
    """The functions and events of one ABI file, by name."""

    def __init__(self, name: str, abi: Sequence[Mapping[str, Any]]) -> None:
        self.name = name
        self.functions = {f["name"]: Function(f) for f in abi if f.get("type") == "function"}
        self.events = {e["name"]: Event(e) for e in abi if e.get("type") == "event"}
        self.errors = {e["name"]: CustomError(e) for e in abi if e.get("type") == "error"}

    def fn(self, name: str) -> Function:
        try:
            return self.functions[name]
        except KeyError:
            raise AbiError(f"{self.name} has no function {name} (abis/{self.name}.json)") from None

    def event(self, name: str) -> Event:
        try:
            return self.events[name]
        except KeyError:
            raise AbiError(f"{self.name} has no event {name} (abis/{self.name}.json)") from None


def abi_text(name: str) -> str:
    """The JSON text of ``abis/<name>.json`` as packaged with ``keeper``."""
    path = resources.files("keeper").joinpath("abis", *f"{name}.json".split("/"))
    if not path.is_file():
        raise AbiError(f"no ABI {name}: abis/{name}.json is not packaged with keeper")
    return path.read_text()


@cache
def contract(name: str) -> Contract:
    """``contract("aave_v3_0/IPool")``: built once per process."""
    return Contract(name, json.loads(abi_text(name)))


def camel(field: str) -> str:
    """``total_borrow_shares`` -> ``totalBorrowShares``: how Solidity spells a dataclass field."""
    head, *rest = field.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


BINDINGS: list[Binding[Any]] = []
"""Every binding built so far (a test walks them)."""


class Binding(Generic[T]):
    """A dataclass filled by name from an ABI record (a result, a struct, an event's fields).

    Each dataclass field comes from the ABI field of the same name (snake_case of the Solidity name,
    or ``renames[field]``) unless it is in ``given`` (the caller supplies it). Checked when built, at
    import: a field the ABI lacks, or a rename to a name the ABI lacks, is an `AbiError`.
    """

    def __init__(
        self,
        cls: type[T],
        fields: Sequence[str],
        renames: Mapping[str, str] | None = None,
        given: Collection[str] = (),
        source: str = "",
    ) -> None:
        self.cls = cls
        self.source = source or cls.__name__
        renames = dict(renames or {})
        names = [f.name for f in dataclasses.fields(cls) if f.init]  # type: ignore[arg-type]
        unknown = (set(renames) | set(given)) - set(names)
        if unknown:
            raise AbiError(f"{cls.__name__} has no fields {sorted(unknown)} ({self.source})")
        self.mapping: dict[str, str] = {}
        for name in names:
            if name in given:
                continue
            abi_name = renames.get(name, camel(name))
            if abi_name not in fields:
                raise AbiError(f"{cls.__name__}.{name}: {self.source} has no field {abi_name} {list(fields)}")
            self.mapping[name] = abi_name
        self.given = frozenset(given)
        self._index = [(name, list(fields).index(abi_name)) for name, abi_name in self.mapping.items()]
        in_order = not self.given and [i for _, i in self._index] == list(range(len(fields)))
        self._positional = in_order and list(self.mapping) == names
        self.fill: Callable[..., T] = self._fill
        """The dataclass from the record's values in ABI order (`Function.values`) and the given fields."""
        if self._positional:  # same fields, same order: the dataclass itself, no keyword dict per row
            self.fill = lambda values, **given: cls(*values, **given)
        BINDINGS.append(self)

    def _fill(self, values: Sequence[Any], **given: Any) -> T:
        return self.cls(**{name: values[i] for name, i in self._index}, **given)

    def fill_named(self, fields: Mapping[str, Any], **given: Any) -> T:
        """The dataclass from named fields (`Function.decode`, `Event.decode`, a decoded struct)."""
        return self.cls(**{name: fields[abi_name] for name, abi_name in self.mapping.items()}, **given)

    def named(self, value: T) -> dict[str, Any]:
        """The inverse: the ABI fields (as a call argument) from a dataclass instance."""
        return {abi_name: getattr(value, name) for name, abi_name in self.mapping.items()}
