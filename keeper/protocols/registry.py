"""Protocol kinds: the one table that maps a config ``kind`` to its adapter and its liquidation event.

A new protocol, or a new version of one, is a folder under ``keeper/protocols`` and one line here
(plus its config model in `keeper.config`); nothing else in the keeper names a concrete adapter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from keeper.config import ProtocolConfig
from keeper.protocols.aave_v3 import events as aave_events
from keeper.protocols.aave_v3.adapter import AaveV3Adapter
from keeper.protocols.base import LendingAdapter
from keeper.protocols.morpho_blue import events as morpho_events
from keeper.protocols.morpho_blue.adapter import MorphoBlueAdapter


@dataclass(frozen=True, slots=True)
class ProtocolKind:
    adapter: Callable[[Any], LendingAdapter]
    """Builds the adapter from its validated config section."""
    liquidation: Callable[[dict[str, Any]], dict[str, Any] | None]
    """Decodes the protocol's liquidation event from a log (None for any other log)."""


KINDS: dict[str, ProtocolKind] = {
    "aave_v3": ProtocolKind(AaveV3Adapter.from_config, aave_events.liquidation),
    "morpho_blue": ProtocolKind(MorphoBlueAdapter.from_config, morpho_events.liquidation),
}


def build_adapter(protocol: ProtocolConfig) -> LendingAdapter:
    kind = KINDS.get(protocol.kind)
    if kind is None:
        raise AssertionError(f"protocol kind {protocol.kind!r} has a config model but no registry entry")
    return kind.adapter(protocol)


def liquidation_events(logs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every liquidation in these logs (a receipt's), as the protocol's own event describes it."""
    found = []
    for entry in logs:
        for kind in KINDS.values():
            event = kind.liquidation(entry)
            if event is not None:
                found.append(event | {"contract": entry["address"]})
                break
    return found
