"""Adapters built from the validated config: the one place that maps a protocol kind to its adapter."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from keeper.config import AaveV3Config, Config, MorphoBlueConfig, ProtocolConfig
from keeper.protocols.aave_v3 import events as aave_events
from keeper.protocols.aave_v3.adapter import AaveV3Adapter
from keeper.protocols.base import LendingAdapter
from keeper.protocols.morpho_blue import events as morpho_events
from keeper.protocols.morpho_blue.adapter import MorphoBlueAdapter


def build_adapter(protocol: ProtocolConfig) -> LendingAdapter:
    if isinstance(protocol, AaveV3Config):
        return AaveV3Adapter(protocol.name, protocol.pool_addresses_provider)
    if isinstance(protocol, MorphoBlueConfig):
        return MorphoBlueAdapter(protocol.name, protocol.address, protocol.markets)
    raise AssertionError(f"unhandled protocol kind {protocol!r}")


def build_adapters(config: Config) -> list[tuple[ProtocolConfig, LendingAdapter]]:
    return [(protocol, build_adapter(protocol)) for protocol in config.protocols]


def liquidation_events(logs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every liquidation in these logs (a receipt's), as the protocol's own event describes it."""
    found = []
    for entry in logs:
        event = aave_events.liquidation(entry) or morpho_events.liquidation(entry)
        if event is not None:
            found.append(event | {"contract": entry["address"]})
    return found
