"""The functional core stays pure: importing it loads no network, database or event-loop machinery.

Checked transitively in a fresh interpreter, so an indirect import (a pure module pulling in the
RPC client through a type) fails here, not in a review.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PURE_MODULES = [
    "keeper.risk.prices",
    "keeper.protocols.screening",
    "keeper.protocols.aave_v3.screen",
    "keeper.protocols.morpho_blue.screen",
    "keeper.risk.opportunity",
    "keeper.math",
    "keeper.chain.types",
    "keeper.protocols.base",
    "keeper.protocols.aave_v3.state",
    "keeper.protocols.aave_v3.math",
    "keeper.protocols.aave_v3.liquidation",
    "keeper.protocols.aave_v3.events",
    "keeper.protocols.aave_v3.version",
    "keeper.protocols.morpho_blue.state",
    "keeper.protocols.morpho_blue.math",
    "keeper.protocols.morpho_blue.liquidation",
    "keeper.protocols.morpho_blue.events",
    "keeper.execution.gas",
    "keeper.execution.guard",
    "keeper.state.guardstate",
    "keeper.state.txstate",
    "keeper.execution.nonces",
    "keeper.chain.abi",
    "keeper.chain.abi_params",
    "keeper.fork.report",
]
FORBIDDEN = {"aiohttp", "asyncio", "web3", "sqlite3", "requests", "keeper.chain", "keeper.devnet"}
"""(``socket`` itself is loaded by ``importlib.metadata`` under eth_utils; no network code is.)"""
IO_PACKAGES = ("keeper.chain", "keeper.devnet")
CHAIN_DATA = {"keeper.chain", "keeper.chain.types", "keeper.chain.abi", "keeper.chain.abi_params"}
"""The chain layer's plain data types (`BlockRef`, `LogFilter`), its docstring-only package, and the ABI
codec (eth_abi, eth_utils, json, importlib: the event decoders are built from it): no I/O."""


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_module_imports_no_io(module: str) -> None:
    probe = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    loaded = set(
        json.loads(
            subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
        )
    )
    offending = sorted(
        n
        for n in loaded
        if n not in CHAIN_DATA
        and (n in FORBIDDEN or n.split(".")[0] in FORBIDDEN or n.startswith(IO_PACKAGES))
    )
    assert offending == []


def test_the_rest_of_the_chain_layer_still_counts_as_io() -> None:
    """The allowance names modules, not the package: the RPC side of chain stays forbidden."""
    probe = "import json, sys, keeper.chain.multicall; print(json.dumps(sorted(sys.modules)))"
    loaded = set(
        json.loads(
            subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
        )
    )
    assert "keeper.chain.multicall" in loaded - CHAIN_DATA
    assert {"asyncio", "aiohttp"} <= loaded
