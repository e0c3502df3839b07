"""The committed abis/ are exactly what `keeper.devnet.abis` produces from the pinned npm artifacts.

A differing file means an ABI was edited by hand or a pin moved: run ``make abis`` and review the diff.
Morpho Blue's and Aave v3.6's ABIs come from the devnet's solc builds (cached after the first compile),
hence the mark.
"""

from __future__ import annotations

import pytest

from keeper.devnet.abis import ABIS_DIR, NEEDS_SOLC, SPEC, generate
from keeper.devnet.toolchain import toolchain

FROM_NPM = sorted(set(SPEC) - NEEDS_SOLC)


def _committed(name: str) -> str:
    return (ABIS_DIR / f"{name}.json").read_text()


@pytest.mark.parametrize("name", FROM_NPM)
def test_npm_artifact_abis_are_regenerated_unchanged(name: str) -> None:
    (text,) = generate(toolchain(), [name]).values()
    assert _committed(name) == text


@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(NEEDS_SOLC))
def test_solc_built_abis_are_regenerated_unchanged(name: str) -> None:
    (text,) = generate(toolchain(), [name]).values()
    assert _committed(name) == text


def test_every_abi_file_is_generated() -> None:
    on_disk = {str(p.relative_to(ABIS_DIR).with_suffix("")) for p in ABIS_DIR.rglob("*.json")}
    assert on_disk == set(SPEC)
    solc_built = {"morpho_blue_1_0/IMorpho", "morpho_blue_1_0/IOracle", "morpho_blue_1_0/IIrm"}
    aave_v3_6 = {"aave_v3_6/IPool", "aave_v3_6/IPoolConfigurator", "aave_v3_6/Errors"}
    assert solc_built | aave_v3_6 | {"keeper/LiquidationExecutor"} == NEEDS_SOLC
