"""The registry is the one place protocol kinds are listed: every config kind has an entry, and every
entry builds an adapter that carries the whole `LendingAdapter` interface the engine relies on."""

from __future__ import annotations

import inspect
from typing import Any, get_args

import pytest

from keeper.config import ProtocolConfig
from keeper.protocols.base import LendingAdapter
from keeper.protocols.registry import KINDS, build_adapter

ADDRESS = "0x" + "11" * 20


def config_models() -> dict[str, Any]:
    union, _field = get_args(ProtocolConfig)
    return {get_args(model.model_fields["kind"].annotation)[0]: model for model in get_args(union)}


SECTIONS: dict[str, dict[str, Any]] = {
    "aave_v3": {"kind": "aave_v3", "name": "aave", "pool_addresses_provider": ADDRESS},
    "morpho_blue": {"kind": "morpho_blue", "name": "morpho", "address": ADDRESS},
}


def test_every_config_kind_has_a_registry_entry_and_no_entry_lacks_a_config() -> None:
    assert set(config_models()) == set(KINDS)


def interface() -> set[str]:
    return {
        name
        for cls in LendingAdapter.__mro__
        if cls.__module__ == "keeper.protocols.base"
        for name, member in vars(cls).items()
        if inspect.isfunction(member) and not name.startswith("_")
    }


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_kind_builds_an_adapter_with_the_whole_interface(kind: str) -> None:
    adapter = build_adapter(config_models()[kind].model_validate(SECTIONS[kind]))
    assert adapter.protocol == kind and adapter.name == SECTIONS[kind]["name"]
    missing = {name for name in interface() if not callable(getattr(adapter, name, None))}
    assert not missing
    assert {"snapshot", "screen", "share_cash", "feed_updates", "shocked", "quote"} <= interface()
    snapshot = adapter.snapshot()  # before any refresh: empty, never an error
    assert not snapshot.prices and not snapshot.spenders
    assert len(adapter.screen().estimates(0, None)) == 0
