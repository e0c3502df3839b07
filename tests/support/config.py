"""Keeper configs for tests and benchmarks, built through the config model (`keeper.config`).

A variant is the devnet's own config with some keys changed, validated by the same schema the keeper
uses, then written back as TOML: a renamed key or a bad value fails here, in the test, not as a silent
no-op of a text substitution. (Only the tests of malformed files edit TOML text, on purpose.)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from keeper.config import Config, load_config, parse_config

from .devnet import Devnet
from .ports import free_port

Changes = Mapping[str, Any]
"""Section -> key -> value (``{"execution": {"mode": "live"}}``); ``protocols`` is a whole list."""


def changed(config: Config, changes: Changes) -> Config:
    """``config`` with ``changes`` merged into its sections, validated as the keeper would."""
    data = config.model_dump(mode="json", exclude_none=True)
    for section, values in changes.items():
        if isinstance(values, Mapping):
            data[section] = {**data.get(section, {}), **values}
        else:
            data[section] = values
    return parse_config(data, "test config")


def write_config(config: Config, path: Path) -> Path:
    path.write_text(toml_text(config))
    assert load_config(path, {}) == config, "the TOML written does not load back as the same config"
    return path


def toml_text(config: Config) -> str:
    """The config as TOML: one table per section, ``[[protocols]]`` per protocol; defaults omitted."""
    data = config.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
    lines: list[str] = []
    for section, values in data.items():
        tables = values if isinstance(values, list) else [values]
        for table in tables:
            lines.append(f"[[{section}]]" if isinstance(values, list) else f"[{section}]")
            lines += [f"{key} = {json.dumps(value)}" for key, value in table.items()]
            lines.append("")
    return "\n".join(lines)


def variant(devnet: Devnet, path: Path, changes: Changes) -> Path:
    """The devnet's config with ``changes``, written to ``path``; its store next to it unless the
    changes name one (the devnet's relative store path would land in the working directory, shared
    by every test that forgot it)."""
    own_store = {"store": {"path": str(path.parent / "store.sqlite")}}
    return write_config(changed(load_config(devnet.config_path, {}), {**own_store, **changes}), path)


def keeper_config(devnet: Devnet, directory: Path, mode: str, **execution: object) -> Path:
    """The devnet's config with its own store, the given execution mode (and extra execution keys)
    and the status server on a free port, written to ``directory / "keeper.toml"``."""
    changes = {
        "execution": {"mode": mode, **execution},
        "store": {"path": str(directory / "store.sqlite")},
        "metrics": {"listen": f"127.0.0.1:{free_port()}"},  # never a fixed port
    }
    return variant(devnet, directory / "keeper.toml", changes)
