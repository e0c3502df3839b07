"""Where the devnet's third-party parts live, and how they become deployable bytecode.

Nothing third-party is committed: `npm ci` in deploy/devnet installs Anvil, the Aave V3
artifacts, the Morpho Blue sources, the Uniswap V3 core and periphery artifacts, Chainlink
interfaces, solc-js and viem (for Multicall3's creation code). Solidity is compiled once with
solc-js and cached outside git.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from keeper.errors import UsageError
from keeper.execution.executor_contract import ExecutorBuild

REPO_ROOT = Path(__file__).resolve().parents[2]
NPM_HINT = "run `npm ci` in deploy/devnet (or `make setup`)"

SOLC_SETTINGS: dict[str, Any] = {
    # Morpho Blue's production settings (foundry.toml of morpho-blue 1.0.0).
    "optimizer": {"enabled": True, "runs": 999999},
    "viaIR": True,
    "evmVersion": "paris",
    "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}},
}

OWN_CONTRACTS = ("SettableFeed", "FeedRatioOracle", "KinkedIrm", "MorphoMathHarness", "PoolRevisionOverride")
"""deploy/devnet/contracts. MorphoMathHarness and PoolRevisionOverride are never deployed by
`devnet up`: the integration tests use them (Morpho's MathLib/SharesMathLib; a pool that reports
another Aave release), and compiling them here shares the one cached build."""


@dataclass(frozen=True)
class Toolchain:
    devnet_dir: Path
    cache_dir: Path

    @property
    def node_modules(self) -> Path:
        return self.devnet_dir / "node_modules"

    def require(self, package: str) -> Path:
        path = self.node_modules / package
        if not path.is_dir():
            raise UsageError(f"npm package {package} is missing from {self.node_modules}: {NPM_HINT}")
        return path


def toolchain(devnet_dir: Path | None = None) -> Toolchain:
    """The devnet toolchain rooted at ``deploy/devnet`` (``KEEPER_DEVNET_DIR`` overrides)."""
    root = devnet_dir or Path(os.environ.get("KEEPER_DEVNET_DIR", REPO_ROOT / "deploy" / "devnet"))
    cache_root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return Toolchain(devnet_dir=root, cache_dir=cache_root / "keeper" / "devnet")


def find_anvil(chain: Toolchain) -> str:
    """Anvil from ``$ANVIL``, then deploy/devnet/node_modules, then ``PATH``."""
    explicit = os.environ.get("ANVIL")
    if explicit:
        if not (Path(explicit).is_file() and os.access(explicit, os.X_OK)):
            raise UsageError(f"ANVIL={explicit} is not an executable file")
        return explicit
    bundled = chain.node_modules / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
    if bundled.is_file():
        return str(bundled)
    on_path = shutil.which("anvil")
    if on_path:
        return on_path
    raise UsageError(f"anvil not found (set ANVIL, or {NPM_HINT})")


# --- Aave V3: published hardhat artifacts, libraries linked at deploy time -------------------


@dataclass(frozen=True)
class Artifact:
    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    link_references: dict[str, dict[str, list[dict[str, int]]]]

    def linked(self, libraries: dict[str, str]) -> bytes:
        return link_bytecode(self.bytecode, self.link_references, libraries)


def link_bytecode(
    bytecode: str, link_references: dict[str, dict[str, list[dict[str, int]]]], libraries: dict[str, str]
) -> bytes:
    """Replace each library placeholder (``start`` is a byte offset into the code) and decode."""
    code = list(bytecode.removeprefix("0x"))
    for by_name in link_references.values():
        for name, spots in by_name.items():
            if name not in libraries:
                raise UsageError(f"library {name} must be deployed before linking")
            address = libraries[name].removeprefix("0x").lower()
            for spot in spots:
                start = 2 * spot["start"]
                code[start : start + 2 * spot["length"]] = address
    return bytes.fromhex("".join(code))


@cache
def _aave_index(artifacts_dir: Path) -> dict[str, Path]:
    return {p.stem: p for p in artifacts_dir.rglob("*.json") if not p.name.endswith(".dbg.json")}


def aave_artifact(chain: Toolchain, name: str) -> Artifact:
    artifacts_dir = chain.require("@aave/core-v3") / "artifacts" / "contracts"
    path = _aave_index(artifacts_dir).get(name)
    if path is None:
        raise UsageError(f"Aave artifact {name} not found under {artifacts_dir}: {NPM_HINT}")
    raw = json.loads(path.read_text())
    return Artifact(name, raw["abi"], raw["bytecode"], raw.get("linkReferences", {}))


# --- Uniswap V3: published hardhat artifacts, no libraries to link ----------------------------

UNISWAP_ARTIFACTS = {
    "UniswapV3Factory": ("@uniswap/v3-core", "UniswapV3Factory.sol"),
    "UniswapV3Pool": ("@uniswap/v3-core", "UniswapV3Pool.sol"),
    "SwapRouter": ("@uniswap/v3-periphery", "SwapRouter.sol"),
    "QuoterV2": ("@uniswap/v3-periphery", "lens/QuoterV2.sol"),
    "NonfungiblePositionManager": ("@uniswap/v3-periphery", "NonfungiblePositionManager.sol"),
}


def uniswap_artifact(chain: Toolchain, name: str) -> Artifact:
    package, source = UNISWAP_ARTIFACTS[name]
    path = chain.require(package) / "artifacts" / "contracts" / source / f"{name}.json"
    if not path.is_file():
        raise UsageError(f"Uniswap artifact {name} not found at {path}: {NPM_HINT}")
    raw = json.loads(path.read_text())
    return Artifact(name, raw["abi"], raw["bytecode"], raw.get("linkReferences", {}))


def pool_init_code_hash(chain: Toolchain) -> bytes:
    """`PoolAddress.POOL_INIT_CODE_HASH` as the periphery's own source declares it: the router,
    quoter and position manager compute every pool's address with it."""
    source = chain.require("@uniswap/v3-periphery") / "contracts" / "libraries" / "PoolAddress.sol"
    match = re.search(r"POOL_INIT_CODE_HASH\s*=\s*0x([0-9a-fA-F]{64})", source.read_text())
    if match is None:
        raise UsageError(f"POOL_INIT_CODE_HASH not found in {source}: {NPM_HINT}")
    return bytes.fromhex(match.group(1))


# --- Solidity compiled with solc-js: Morpho Blue and the devnet's own contracts -------------


def compiled_contracts(chain: Toolchain) -> dict[str, Artifact]:
    """Morpho, EventsLib and the devnet's own contracts, compiled once and cached by content."""
    morpho_src = chain.require("@morpho-org/morpho-blue") / "src"
    sources = {"@morpho-org/morpho-blue/src/Morpho.sol": morpho_src / "Morpho.sol"}
    sources |= {f"contracts/{n}.sol": chain.devnet_dir / "contracts" / f"{n}.sol" for n in OWN_CONTRACTS}
    artifacts = _artifacts_from_output(_cached_build(chain, "solc", sources, SOLC_SETTINGS))
    # solc 0.8.19 leaves library events out of Morpho's ABI; a keeper needs them.
    events = [e for e in artifacts["EventsLib"].abi if e["type"] == "event"]
    morpho = artifacts["Morpho"]
    artifacts["Morpho"] = Artifact("Morpho", morpho.abi + events, morpho.bytecode, {})
    return artifacts


AAVE_V36 = "@aave-dao/aave-v3-origin/src/contracts"
AAVE_V36_SOURCES = (
    "instances/PoolInstance.sol",
    "instances/PoolConfiguratorInstance.sol",
    "instances/ATokenInstance.sol",
    "instances/VariableDebtTokenInstance.sol",
    "protocol/configuration/PoolAddressesProvider.sol",
    "protocol/configuration/ACLManager.sol",
    "misc/AaveOracle.sol",
    "misc/DefaultReserveInterestRateStrategyV2.sol",
    "helpers/AaveProtocolDataProvider.sol",
)
"""The Aave v3.6 core a market needs; libraries and interfaces come in through their imports."""
AAVE_V36_SETTINGS: dict[str, Any] = {
    # foundry.toml of aave-v3-origin v3.6.0 (legacy pipeline: no via-IR), npm layout for OpenZeppelin.
    "optimizer": {"enabled": True, "runs": 200},
    "evmVersion": "shanghai",
    "metadata": {"bytecodeHash": "none"},
    "remappings": ["openzeppelin-contracts/contracts/=@openzeppelin/contracts/"],
    "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object", "evm.bytecode.linkReferences"]}},
}


def compiled_aave_v36(chain: Toolchain) -> dict[str, Artifact]:
    """Aave v3.6 (pool, configurator, tokens, oracle, ACL, provider, rate strategy V2, data provider
    and the libraries they link), compiled from the npm sources with solc-js 0.8.27 once, cached.

    Names are the contracts' own (``PoolInstance``, ``LiquidationLogic``, ``IPool``...); when two
    files declare one name, the first source in path order wins.
    """
    root = chain.require(AAVE_V36)
    chain.require("@openzeppelin/contracts")
    sources = {f"{AAVE_V36}/{name}": root / name for name in AAVE_V36_SOURCES}
    output = _cached_build(chain, "solc-0.8.27", sources, AAVE_V36_SETTINGS)
    artifacts: dict[str, Artifact] = {}
    for _path, by_name in sorted(output["contracts"].items()):
        for name, contract in by_name.items():
            bytecode = contract["evm"]["bytecode"]
            links = bytecode.get("linkReferences", {})
            artifacts.setdefault(name, Artifact(name, contract["abi"], bytecode["object"], links))
    return artifacts


AAVE_V36_MATH_HARNESS = "AaveV36MathHarness"
"""deploy/devnet/contracts: exposes v3.6's WadRayMath, PercentageMath and MathUtils to the integration
tests; never deployed by `devnet up`. It is its own small build, so adding it changed no core artifact."""


def compiled_aave_v36_math_harness(chain: Toolchain) -> Artifact:
    """The v3.6 math harness, compiled with v3.6's compiler and settings (seconds, cached by content)."""
    chain.require(AAVE_V36)
    name = AAVE_V36_MATH_HARNESS
    sources = {f"contracts/{name}.sol": chain.devnet_dir / "contracts" / f"{name}.sol"}
    output = _cached_build(chain, "solc-0.8.27", sources, AAVE_V36_SETTINGS)
    return _artifacts_from_output(output)[name]


EXECUTOR_SOURCE = REPO_ROOT / "deploy" / "executor" / "LiquidationExecutor.sol"
"""The keeper's own flash-loan executor: not a devnet part, `keeper executor deploy` ships it anywhere."""
EXECUTOR_SETTINGS: dict[str, Any] = {
    # Legacy pipeline (compiles in ~3 s; no stack-depth trouble), many runs: it runs on every liquidation.
    # No metadata hash: the runtime code `keeper check-config` compares is the code, not the comments.
    "optimizer": {"enabled": True, "runs": 10000},
    "evmVersion": "paris",
    "metadata": {"bytecodeHash": "none"},
    "outputSelection": {
        "*": {
            "*": [
                "abi",
                "evm.bytecode.object",
                "evm.deployedBytecode.object",
                "evm.deployedBytecode.immutableReferences",
            ]
        }
    },
}


def compiled_executor(chain: Toolchain) -> ExecutorBuild:
    """`LiquidationExecutor` from deploy/executor, compiled with solc-js 0.8.19 once and cached."""
    sources = {"executor/LiquidationExecutor.sol": EXECUTOR_SOURCE}
    output = _cached_build(chain, "solc", sources, EXECUTOR_SETTINGS)
    contract = output["contracts"]["executor/LiquidationExecutor.sol"]["LiquidationExecutor"]
    runtime = contract["evm"]["deployedBytecode"]
    spans = tuple(
        (spot["start"], spot["length"])
        for spots in runtime.get("immutableReferences", {}).values()
        for spot in spots
    )
    return ExecutorBuild(
        abi=contract["abi"],
        creation_code=bytes.fromhex(contract["evm"]["bytecode"]["object"]),
        runtime_code=bytes.fromhex(runtime["object"]),
        immutable_spans=tuple(sorted(spans)),
    )


def _cached_build(
    chain: Toolchain, compiler: str, sources: dict[str, Path], settings: dict[str, Any]
) -> dict[str, Any]:
    """solc's standard JSON output for ``sources``, cached under a digest of everything it reads
    directly (compiler version, settings, source files; imports follow the pinned npm packages)."""
    chain.require(compiler)
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    digest.update((chain.node_modules / compiler / "package.json").read_bytes())
    for name, path in sorted(sources.items()):
        digest.update(name.encode() + path.read_bytes())
    prefix = "solc" if compiler == "solc" else compiler
    cached = chain.cache_dir / f"{prefix}-{digest.hexdigest()[:16]}.json"
    if not cached.is_file():
        output = _run_solc(chain, compiler, sources, settings)
        chain.cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp")
        tmp.write_text(json.dumps(output))
        tmp.replace(cached)
    result: dict[str, Any] = json.loads(cached.read_text())
    return result


def _run_solc(
    chain: Toolchain, compiler: str, sources: dict[str, Path], settings: dict[str, Any]
) -> dict[str, Any]:
    job = {"sources": {k: str(v) for k, v in sources.items()}, "settings": settings, "solc": compiler}
    node = shutil.which("node")
    if node is None:
        raise UsageError("node is not on PATH: the devnet compiles Solidity with solc-js")
    proc = subprocess.run(
        [node, str(chain.devnet_dir / "compile.js")],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise UsageError(f"solc-js failed: {proc.stderr.strip()[-500:]}")
    output: dict[str, Any] = json.loads(proc.stdout)
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise UsageError(f"solc-js: {errors[0].get('formattedMessage', errors[0])}")
    return output


def _artifacts_from_output(output: dict[str, Any]) -> dict[str, Artifact]:
    artifacts: dict[str, Artifact] = {}
    for by_name in output["contracts"].values():
        for name, contract in by_name.items():
            code = contract["evm"]["bytecode"]["object"]
            artifacts[name] = Artifact(name, contract["abi"], code, {})
    return artifacts


def multicall3_creation_code(chain: Toolchain) -> bytes:
    """Multicall3's creation bytecode as shipped by the viem package."""
    source = chain.require("viem") / "_cjs" / "constants" / "contracts.js"
    match = re.search(r"multicall3Bytecode\s*=\s*'0x([0-9a-fA-F]+)'", source.read_text())
    if match is None:
        raise UsageError(f"multicall3Bytecode not found in {source}: {NPM_HINT}")
    return bytes.fromhex(match.group(1))
