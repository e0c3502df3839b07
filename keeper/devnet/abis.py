"""Regenerate ``abis/`` from the pinned npm artifacts: ``python -m keeper.devnet.abis`` (``make abis``).

Each file holds only the functions and events the keeper calls or decodes, copied verbatim from the
artifact of the contract (or interface) that declares them, so the codec in `keeper.chain.abi` is
built from exactly what the deployed code was compiled from. A test regenerates every file and
fails on any difference. Sources:

- Aave V3.0: ``@aave/core-v3`` hardhat artifacts (IPool, IPoolAddressesProvider, IAaveOracle, the
  aToken and debt token interfaces, and IERC20Detailed as the common ERC-20 view); ``POOL_REVISION``
  is declared by the Pool contract, not the interface;
- Aave V3.6: the devnet's solc-js 0.8.27 build of ``@aave-dao/aave-v3-origin`` (cached after the
  first compile): IPool, and ``POOL_REVISION`` from PoolInstance; IPoolConfigurator's events that
  change liquidation rules; every custom error of the ``Errors`` library (to name reverts);
- Morpho Blue 1.0: the solc build of its sources the devnet already does and caches (IMorpho's
  functions; the events live in EventsLib; IOracle, IIrm);
- Chainlink: ``@chainlink/contracts`` ABI of AggregatorV2V3Interface (``latestRoundData``,
  ``decimals`` and the ``AnswerUpdated`` event, which only the V2 half declares);
- Multicall3: ``viem``'s ``multicall3Abi`` (read with node: viem ships it as JavaScript);
- the keeper's own ``LiquidationExecutor`` (deploy/executor, solc-js build, cached): the entry points,
  events and custom errors the keeper calls and decodes;
- Uniswap V3: ``@uniswap/v3-periphery``'s QuoterV2 artifact (``quoteExactInputSingle``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keeper.errors import UsageError

from .toolchain import (
    NPM_HINT,
    REPO_ROOT,
    Toolchain,
    aave_artifact,
    compiled_aave_v36,
    compiled_contracts,
    compiled_executor,
    toolchain,
    uniswap_artifact,
)

ABIS_DIR = REPO_ROOT / "abis"

Fragment = dict[str, Any]
Loader = Callable[[Toolchain, str], list[Fragment]]


def _aave(chain: Toolchain, name: str) -> list[Fragment]:
    return aave_artifact(chain, name).abi


def _solc(chain: Toolchain, name: str) -> list[Fragment]:
    return compiled_contracts(chain)[name].abi


def _aave36(chain: Toolchain, name: str) -> list[Fragment]:
    return compiled_aave_v36(chain)[name].abi


def _executor(chain: Toolchain, name: str) -> list[Fragment]:
    return compiled_executor(chain).abi


def _uniswap(chain: Toolchain, name: str) -> list[Fragment]:
    return uniswap_artifact(chain, name).abi


def _chainlink(chain: Toolchain, name: str) -> list[Fragment]:
    path = chain.require("@chainlink/contracts") / "abi" / "v0.8" / f"{name}.json"
    loaded: list[Fragment] = json.loads(path.read_text())
    return loaded


def _viem(chain: Toolchain, name: str) -> list[Fragment]:
    chain.require("viem")
    node = shutil.which("node")
    if node is None:
        raise UsageError("node is not on PATH: viem ships its ABIs as JavaScript")
    script = f"process.stdout.write(JSON.stringify(require('viem').{name}))"
    proc = subprocess.run(
        [node, "-e", script], cwd=chain.devnet_dir, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise UsageError(f"viem {name}: {proc.stderr.strip()[-300:]} ({NPM_HINT})")
    loaded: list[Fragment] = json.loads(proc.stdout)
    return loaded


@dataclass(frozen=True)
class Part:
    """Named entries of one artifact's ABI."""

    loader: Loader
    artifact: str
    names: tuple[str, ...]
    kind: str = "function"

    def fragments(self, chain: Toolchain) -> list[Fragment]:
        abi = self.loader(chain, self.artifact)
        if not self.names:  # every entry of the kind, sorted by name (a library's errors)
            return sorted((f for f in abi if f.get("type") == self.kind), key=lambda f: str(f["name"]))
        picked = []
        for name in self.names:
            found = [f for f in abi if f.get("type") == self.kind and f.get("name") == name]
            if len(found) != 1:
                raise UsageError(f"{self.artifact}: expected one {self.kind} {name}, found {len(found)}")
            picked.append(found[0])
        return picked


def _functions(loader: Loader, artifact: str, *names: str) -> Part:
    return Part(loader, artifact, names)


def _events(loader: Loader, artifact: str, *names: str) -> Part:
    return Part(loader, artifact, names, "event")


def _all_errors(loader: Loader, artifact: str) -> Part:
    return Part(loader, artifact, (), "error")


SPEC: dict[str, tuple[Part, ...]] = {
    "aave_v3_0/IPool": (
        _functions(
            _aave,
            "IPool",
            "getReservesList",
            "getReserveData",
            "getUserConfiguration",
            "getUserEMode",
            "getEModeCategoryData",
            "liquidationCall",
        ),
        _functions(_aave, "Pool", "POOL_REVISION"),
        _events(
            _aave,
            "IPool",
            "Supply",
            "MintUnbacked",
            "Withdraw",
            "Borrow",
            "Repay",
            "SwapBorrowRateMode",
            "RebalanceStableBorrowRate",
            "UserEModeSet",
            "ReserveUsedAsCollateralEnabled",
            "ReserveUsedAsCollateralDisabled",
            "LiquidationCall",
        ),
    ),
    "aave_v3_6/IPool": (
        _functions(
            _aave36,
            "IPool",
            "getReservesList",
            "getReserveData",
            "getUserConfiguration",
            "getUserEMode",
            "getEModeCategoryData",
            "getEModeCategoryCollateralConfig",
            "getEModeCategoryCollateralBitmap",
            "getEModeCategoryBorrowableBitmap",
            "getEModeCategoryLtvzeroBitmap",
            "getLiquidationGracePeriod",
            "getReserveDeficit",
            "getVirtualUnderlyingBalance",
            "RESERVE_INTEREST_RATE_STRATEGY",
            "liquidationCall",
            "FLASHLOAN_PREMIUM_TOTAL",
        ),
        _functions(_aave36, "PoolInstance", "POOL_REVISION"),
        _events(
            _aave36,
            "IPool",
            "Supply",
            "Withdraw",
            "Borrow",
            "Repay",
            "UserEModeSet",
            "ReserveUsedAsCollateralEnabled",
            "ReserveUsedAsCollateralDisabled",
            "ReserveDataUpdated",
            "LiquidationCall",
            "DeficitCreated",
            "DeficitCovered",
        ),
    ),
    "aave_v3_6/IPoolConfigurator": (
        _events(
            _aave36,
            "IPoolConfigurator",
            "AssetCollateralInEModeChanged",
            "AssetBorrowableInEModeChanged",
            "AssetLtvzeroInEModeChanged",
            "EModeCategoryAdded",
            "LiquidationGracePeriodChanged",
            "LiquidationGracePeriodDisabled",
            "CollateralConfigurationChanged",
            "LiquidationProtocolFeeChanged",
            "ReservePaused",
            "ReserveFrozen",
            "ReserveActive",
        ),
    ),
    "aave_v3_6/Errors": (_all_errors(_aave36, "Errors"),),
    "aave_v3_0/IPoolAddressesProvider": (
        _functions(_aave, "IPoolAddressesProvider", "getPool", "getPriceOracle", "getPoolConfigurator"),
    ),
    "aave_v3_0/IAaveOracle": (_functions(_aave, "IAaveOracle", "getAssetPrice", "getSourceOfAsset"),),
    "aave_v3_0/IAToken": (
        _functions(_aave, "IAToken", "scaledBalanceOf"),
        _events(_aave, "IAToken", "BalanceTransfer"),
    ),
    "aave_v3_0/IVariableDebtToken": (_functions(_aave, "IVariableDebtToken", "scaledBalanceOf"),),
    "aave_v3_0/IStableDebtToken": (
        _functions(
            _aave, "IStableDebtToken", "principalBalanceOf", "getUserStableRate", "getUserLastUpdated"
        ),
    ),
    "morpho_blue_1_0/IMorpho": (
        _functions(_solc, "IMorpho", "idToMarketParams", "market", "position", "liquidate"),
        _events(
            _solc,
            "EventsLib",
            "CreateMarket",
            "SupplyCollateral",
            "WithdrawCollateral",
            "Borrow",
            "Repay",
            "Liquidate",
        ),
    ),
    "morpho_blue_1_0/IOracle": (_functions(_solc, "IOracle", "price"),),
    "morpho_blue_1_0/IIrm": (_functions(_solc, "IIrm", "borrowRateView"),),
    "common/IERC20": (
        _functions(
            _aave, "IERC20Detailed", "balanceOf", "allowance", "approve", "totalSupply", "symbol", "decimals"
        ),
        _events(_aave, "IERC20Detailed", "Transfer"),
    ),
    "common/AggregatorV3Interface": (
        _functions(_chainlink, "AggregatorV2V3Interface", "latestRoundData", "decimals"),
        _events(_chainlink, "AggregatorV2V3Interface", "AnswerUpdated"),
    ),
    "common/Multicall3": (_functions(_viem, "multicall3Abi", "aggregate3"),),
    "keeper/LiquidationExecutor": (
        _functions(_executor, "LiquidationExecutor", "liquidate", "liquidateBatch", "owner", "beneficiary"),
        _events(_executor, "LiquidationExecutor", "Liquidated", "Skipped"),
        _all_errors(_executor, "LiquidationExecutor"),
    ),
    "uniswap_v3/IQuoterV2": (_functions(_uniswap, "QuoterV2", "quoteExactInputSingle"),),
    "uniswap_v3/IUniswapV3Factory": (_functions(_uniswap, "UniswapV3Factory", "getPool"),),
    "uniswap_v3/IUniswapV3Pool": (
        _functions(
            _uniswap, "UniswapV3Pool", "slot0", "liquidity", "tickBitmap", "ticks", "token0", "tickSpacing"
        ),
    ),
}
"""``abis/<name>.json`` -> the artifact entries it holds, functions first, in this order."""

NEEDS_SOLC = frozenset(
    name for name, parts in SPEC.items() if any(p.loader in (_solc, _aave36, _executor) for p in parts)
)
"""ABIs read from a solc-js build (slow the first time, then cached), not from shipped artifacts."""


def render(fragments: Sequence[Fragment]) -> str:
    return json.dumps(list(fragments), indent=2) + "\n"


def generate(chain: Toolchain, names: Sequence[str] | None = None) -> dict[str, str]:
    """``name -> file text`` for the given ABIs (all by default)."""
    return {
        name: render([f for part in SPEC[name] for f in part.fragments(chain)])
        for name in (names if names is not None else list(SPEC))
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m keeper.devnet.abis", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ABIS_DIR, help="target directory (default: abis/)")
    parser.add_argument("--check", action="store_true", help="only report files that differ; exit 1 if any")
    args = parser.parse_args(argv)
    try:
        texts = generate(toolchain())
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stale = []
    for name, text in texts.items():
        path = args.out / f"{name}.json"
        if path.is_file() and path.read_text() == text:
            continue
        stale.append(name)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    for name in stale:
        print(f"{'differs' if args.check else 'written'}: {args.out / name}.json")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
