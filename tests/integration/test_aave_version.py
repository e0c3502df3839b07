"""Aave version detection on real pools: both devnet versions pass; a pool reporting another release
is refused in one line.

The unsupported pool is the devnet's own v3.6 pool with `PoolRevisionOverride` (deploy/devnet/contracts)
installed behind its proxy: every call still runs the real v3.6 code, but ``POOL_REVISION()`` says 11,
what v3.7 reports. The chain is reverted after each test.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import structlog.testing

from keeper.chain.rpc import HttpRpc
from keeper.config import load_config
from keeper.devnet.abi import decode_result, encode_args, encode_call
from keeper.devnet.accounts import DEPLOYER_INDEX, dev_account
from keeper.devnet.rpc import Executor
from keeper.devnet.toolchain import compiled_contracts, toolchain
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
IMPLEMENTATION_SLOT = "0x360894a13ba1a3210667c828492db98dca3e2076cc3735a920a3ca505d382bbc"
"""EIP-1967: where Aave's InitializableImmutableAdminUpgradeabilityProxy keeps its implementation."""
V3_7_REVISION = 11
REFUSAL = (
    "keeper: error: protocols.aave.pool_addresses_provider: Aave v3.7+ (POOL_REVISION 11) is not supported "
    "yet; supported: v3.0.x, v3.6 (set protocols.aave.allow_unsupported_version = true to run anyway: "
    "health and liquidations will be computed with v3.0.x rules and can be wrong)"
)


def report_revision(devnet: Devnet, revision: int) -> str:
    """Make the devnet's pool report ``revision``; returns its PoolAddressesProvider."""
    rpc, provider = devnet.rpc, devnet.summary["aave"]["pool_addresses_provider"]
    pool = devnet.summary["aave"]["pool"]
    word = rpc.call("eth_getStorageAt", [pool, IMPLEMENTATION_SLOT, "latest"])
    implementation = "0x" + word[-40:]
    artifact = compiled_contracts(toolchain())["PoolRevisionOverride"]
    rpc.call("evm_setAutomine", [False])  # the executor mines its own blocks
    try:
        override = Executor(rpc).deploy(
            dev_account(DEPLOYER_INDEX).address,
            artifact.linked({}) + encode_args("(address,uint256)", implementation, revision),
            "PoolRevisionOverride",
        )
    finally:
        rpc.call("evm_setAutomine", [True])
    rpc.call("anvil_setStorageAt", [pool, IMPLEMENTATION_SLOT, "0x" + override[2:].lower().rjust(64, "0")])
    (reported,) = decode_result(["uint256"], rpc.eth_call(pool, encode_call("POOL_REVISION()")))
    assert reported == revision, "the override is not in front of the pool"
    (reserves,) = decode_result(["address[]"], rpc.eth_call(pool, encode_call("getReservesList()")))
    assert len(reserves) >= 4, "the pool's own code no longer answers behind the override"
    return str(provider)


def aave_variant(devnet: Devnet, tmp_path: Path, **aave: object) -> Path:
    """The devnet's config with the aave protocol's keys changed (the other protocols as they are)."""
    protocols = load_config(devnet.config_path, {}).model_dump(mode="json", exclude_none=True)["protocols"]
    changed = [{**p, **aave} if p["kind"] == "aave_v3" else p for p in protocols]
    return variant(devnet, tmp_path / "keeper.toml", {"protocols": changed, "metrics": {"listen": ""}})


def keeper(*args: str) -> tuple[int, str, list[str]]:
    proc = run_keeper(*args, env=ENV)
    return proc.returncode, proc.stdout, proc.stderr.strip().splitlines()


async def refreshed(devnet: Devnet, provider: str, allow: bool) -> tuple[AaveV3Adapter, BlockRef]:
    adapter = AaveV3Adapter("aave", provider, allow)
    async with HttpRpc(devnet.summary["rpc_url"]) as rpc:
        block = await head(rpc)
        await adapter.refresh(rpc, block, [])
    return adapter, block


@pytest.mark.parametrize(
    ("fixture", "version", "revision"),
    [("devnet", AaveVersion.V3_6, 10), ("large_devnet_v30", AaveVersion.V3_0, 1)],
)
async def test_both_devnet_versions_are_detected_and_check_config_says_so(
    request: pytest.FixtureRequest, fixture: str, version: AaveVersion, revision: int
) -> None:
    devnet: Devnet = request.getfixturevalue(fixture)
    provider = devnet.summary["aave"]["pool_addresses_provider"]
    with structlog.testing.capture_logs() as logs:
        adapter, _ = await refreshed(devnet, provider, allow=False)
    assert adapter.version is not None and adapter.version.version is version
    assert [e for e in logs if e["event"].startswith("aave_version")] == [
        {
            "event": "aave_version_detected",
            "log_level": "info",
            "protocol": "aave",
            "pool": devnet.summary["aave"]["pool"],
            "revision": revision,
            "version": version.value,
        }
    ]
    code, out, err = keeper("check-config", "--config", str(devnet.config_path))
    assert code == 0, err
    assert f"version       aave: Aave {version.label} (POOL_REVISION {revision})\n" in out
    assert "version       morpho" not in out  # Morpho Blue has one version: no line


async def test_another_release_is_detected_and_refused_by_the_adapter(chain: Devnet) -> None:
    provider = report_revision(chain, V3_7_REVISION)
    with pytest.raises(UsageError) as caught:
        await refreshed(chain, provider, allow=False)
    assert str(caught.value) == REFUSAL.removeprefix("keeper: error: ")
    adapter, _ = await refreshed(chain, provider, allow=True)
    assert adapter.version is not None and adapter.version.version is AaveVersion.V3_7_PLUS
    assert adapter.version.probes.emode_ltvzero_bitmap


@pytest.mark.parametrize("command", [["positions"], ["check-config"], ["run", "--dry-run"]])
def test_commands_on_another_release_stop_with_one_line(
    chain: Devnet, tmp_path: Path, command: list[str]
) -> None:
    config = aave_variant(chain, tmp_path, pool_addresses_provider=report_revision(chain, V3_7_REVISION))
    code, out, err = keeper(*command, "--config", str(config))
    assert code == 2, err
    assert err[-1] == REFUSAL and err.count(REFUSAL) == 1
    assert not any("Traceback" in line or "keeper: " in line for line in err[:-1])
    assert out == ""  # no report, no JSON, no log line on stdout


def test_the_override_gets_past_detection(chain: Devnet, tmp_path: Path) -> None:
    provider = report_revision(chain, V3_7_REVISION)
    config = aave_variant(chain, tmp_path, pool_addresses_provider=provider, allow_unsupported_version=True)
    code, out, err = keeper("check-config", "--config", str(config))
    assert code == 0, err
    assert "version       aave: Aave v3.7+ (POOL_REVISION 11)\n" in out
    code, out, err = keeper("positions", "--config", str(config), "--json")
    assert code == 0, err[-5:]
    assert not any("Traceback" in line for line in err)
    assert any("aave_version_unsupported_overridden" in line for line in err)
