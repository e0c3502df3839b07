"""Adapters built from the validated config: the one place that maps a protocol kind to its adapter."""

from __future__ import annotations

from keeper.config import AaveV3Config, Config, MorphoBlueConfig, ProtocolConfig
from keeper.protocols.aave_v3.adapter import AaveV3Adapter
from keeper.protocols.base import LendingAdapter
from keeper.protocols.morpho_blue.adapter import MorphoBlueAdapter


def build_adapter(protocol: ProtocolConfig) -> LendingAdapter:
    if isinstance(protocol, AaveV3Config):
        return AaveV3Adapter(protocol.name, protocol.pool_addresses_provider)
    if isinstance(protocol, MorphoBlueConfig):
        return MorphoBlueAdapter(protocol.name, protocol.address, protocol.markets)
    raise AssertionError(f"unhandled protocol kind {protocol!r}")


def build_adapters(config: Config) -> list[tuple[ProtocolConfig, LendingAdapter]]:
    return [(protocol, build_adapter(protocol)) for protocol in config.protocols]
