"""Aave version detection on real pools: the devnet's v3.0.x passes; a real v3.6 pool is refused in one line.

The v3.6 pool is the smallest real one: the npm sources compiled with solc-js 0.8.27, deployed on the
session devnet (reverted after each test) as upstream's procedures do — PoolAddressesProvider, the V2
rate strategy, the five linked libraries, ``PoolInstance(provider, strategy)`` behind the provider's
proxy (``setPoolImpl``). No oracle and no reserves: detection runs before anything else is read, and
with the override the keeper gets past it to an empty pool.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import structlog.testing

from keeper.chain.rpc import HttpRpc
from keeper.config import load_config
from keeper.devnet.abi import decode_result, encode_args, encode_call
from keeper.devnet.accounts import DEPLOYER_INDEX, dev_account
from keeper.devnet.rpc import Executor, Tx
from keeper.devnet.toolchain import compiled_aave_v36, toolchain
from keeper.errors import UsageError
from keeper.protocols.aave_v3.adapter import AaveV3Adapter
from keeper.protocols.aave_v3.version import AaveVersion
from keeper.protocols.base import BlockRef
from tests.conftest import Devnet, run_keeper
from tests.integration.adapter_support import head
from tests.support.config import variant

pytestmark = pytest.mark.integration

KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
ENV = {"KEEPER_PRIVATE_KEY": KEY, "PATH": ""}
LIBRARIES = ("BorrowLogic", "FlashLoanLogic", "LiquidationLogic", "PoolLogic", "SupplyLogic")
REFUSAL = (
    "keeper: error: protocols.aave.pool_addresses_provider: Aave v3.6 (POOL_REVISION 10) is not supported "
    "yet; supported: v3.0.x (set protocols.aave.allow_unsupported_version = true to run anyway: health "
    "is computed with v3.6 rules, liquidations are not implemented for it and none will be sent)"
)


def deploy_v36_pool(devnet: Devnet) -> str:
    """A real, empty Aave v3.6 market; returns its PoolAddressesProvider."""
    artifacts = compiled_aave_v36(toolchain())
    owner = dev_account(DEPLOYER_INDEX).address
    rpc = devnet.rpc
    ex = Executor(rpc)

    def deploy(name: str, ctor: bytes = b"", libs: dict[str, str] | None = None) -> str:
        return ex.deploy(owner, artifacts[name].linked(libs or {}) + ctor, name)

    rpc.call("evm_setAutomine", [False])
    try:
        provider = deploy("PoolAddressesProvider", encode_args("(string,address)", "v3.6-probe", owner))
        strategy = deploy("DefaultReserveInterestRateStrategyV2", encode_args("(address)", provider))
        libs: dict[str, str] = {}
        for name in LIBRARIES:  # FlashLoanLogic links BorrowLogic, deployed first
            libs[name] = deploy(name, libs=libs)
        impl = deploy("PoolInstance", encode_args("(address,address)", provider, strategy), libs)
        ex.execute([Tx(owner, provider, encode_call("setPoolImpl(address)", impl), "setPoolImpl")])
    finally:
        rpc.call("evm_setAutomine", [True])
    (pool,) = decode_result(["address"], rpc.eth_call(provider, encode_call("getPool()")))
    (revision,) = decode_result(["uint256"], rpc.eth_call(str(pool), encode_call("POOL_REVISION()")))
    assert revision == 10, "not the v3.6 pool this test is about"
    return provider


def aave_variant(devnet: Devnet, tmp_path: Path, **aave: object) -> Path:
    """The devnet's config with the aave protocol's keys changed (the other protocols as they are)."""
    protocols = load_config(devnet.config_path, {}).model_dump(mode="json", exclude_none=True)["protocols"]
    changed = [{**p, **aave} if p["kind"] == "aave_v3" else p for p in protocols]
    assert changed != protocols
    return variant(devnet, tmp_path / "keeper.toml", {"protocols": changed})


def keeper(*args: str) -> tuple[int, str, list[str]]:
    proc = run_keeper(*args, env=ENV)
    return proc.returncode, proc.stdout, proc.stderr.strip().splitlines()


async def refreshed(devnet: Devnet, provider: str, allow: bool) -> tuple[AaveV3Adapter, BlockRef]:
    adapter = AaveV3Adapter("aave", provider, allow)
    async with HttpRpc(devnet.summary["rpc_url"]) as rpc:
        block = await head(rpc)
        await adapter.refresh(rpc, block, [])
    return adapter, block


async def test_the_devnet_pool_is_v3_0_and_check_config_says_so(devnet: Devnet) -> None:
    provider = devnet.summary["aave"]["pool_addresses_provider"]
    with structlog.testing.capture_logs() as logs:
        adapter, _ = await refreshed(devnet, provider, allow=False)
    assert adapter.version is not None and adapter.version.version is AaveVersion.V3_0
    assert [e for e in logs if e["event"].startswith("aave_version")] == [
        {
            "event": "aave_version_detected",
            "log_level": "info",
            "protocol": "aave",
            "pool": devnet.summary["aave"]["pool"],
            "revision": 1,
            "version": "3.0.x",
        }
    ]
    assert adapter.version.revision == 1  # @aave/core-v3 1.19.3's Pool
    code, out, err = keeper("check-config", "--config", str(devnet.config_path))
    assert code == 0, err
    assert "version       aave: Aave v3.0.x (POOL_REVISION 1)\n" in out
    assert "version       morpho" not in out  # Morpho Blue has one version: no line


async def test_a_v36_pool_is_detected_and_refused_by_the_adapter(chain: Devnet) -> None:
    provider = deploy_v36_pool(chain)
    with pytest.raises(UsageError) as caught:
        await refreshed(chain, provider, allow=False)
    assert str(caught.value) == REFUSAL.removeprefix("keeper: error: ")
    adapter, _ = await refreshed(chain, provider, allow=True)
    assert adapter.version is not None and adapter.version.version is AaveVersion.V3_6
    assert adapter.version.probes.emode_ltvzero_bitmap and adapter.health(0) == []
    assert adapter.pool_state is not None and adapter.pool_state.reserves == {}


@pytest.mark.parametrize("command", [["positions"], ["check-config"]])
def test_commands_on_a_v36_pool_stop_with_one_line(chain: Devnet, tmp_path: Path, command: list[str]) -> None:
    config = aave_variant(chain, tmp_path, pool_addresses_provider=deploy_v36_pool(chain))
    code, out, err = keeper(*command, "--config", str(config))
    assert code == 2, err
    assert err[-1] == REFUSAL and err.count(REFUSAL) == 1
    assert not any("Traceback" in line or "keeper: error" in line for line in err[:-1])
    assert out == ""  # no report, no JSON, no log line


def test_keeper_run_on_a_v36_pool_stops_with_the_same_line(chain: Devnet, tmp_path: Path) -> None:
    provider = deploy_v36_pool(chain)
    protocols = load_config(chain.config_path, {}).model_dump(mode="json", exclude_none=True)["protocols"]
    protocols = [
        {**p, "pool_addresses_provider": provider} if p["kind"] == "aave_v3" else p for p in protocols
    ]
    config = variant(chain, tmp_path / "keeper.toml", {"protocols": protocols, "metrics": {"listen": ""}})
    code, _, err = keeper("run", "--dry-run", "--config", str(config))
    assert code == 2, err
    assert err[-1] == REFUSAL
    assert not any("Traceback" in line or "keeper: " in line for line in err[:-1])


def test_the_override_gets_past_detection_to_an_empty_pool(chain: Devnet, tmp_path: Path) -> None:
    provider = deploy_v36_pool(chain)
    config = aave_variant(chain, tmp_path, pool_addresses_provider=provider, allow_unsupported_version=True)
    code, out, err = keeper("check-config", "--config", str(config))
    assert code == 0, err
    assert "version       aave: Aave v3.6 (POOL_REVISION 10)\n" in out
    code, out, err = keeper("positions", "--config", str(config), "--json")
    assert code == 0, err[-5:]
    assert not any("Traceback" in line for line in err)
    assert '"protocol": "aave_v3"' not in out  # an empty pool: nothing to list
