"""A chain without Multicall3 at its canonical address: one line naming what is missing, and
``chain.multicall3`` pointing the keeper at another deployment.

On a snapshot of the shared 1-second devnet, the canonical address's code is removed
(`anvil_setCode` to empty): `keeper positions`, `keeper check-config` and `keeper run` each stop
with one line naming ``chain.multicall3``. The same bytecode put at another address and named in
the config, `keeper check-config` reports it, `keeper run` follows blocks through it and `keeper positions`
reports the healths the pool itself computes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from keeper.chain.multicall import MULTICALL3, words
from keeper.config import load_config
from keeper.devnet.abi import encode_call
from tests.support.config import changed, keeper_config, write_config
from tests.support.devnet import Devnet
from tests.support.keeper import KEEPER_KEY, KeeperProcess, named, run_keeper

OTHER = "0x000000000000000000000000000000000000CA13"
"""Where the test deploys Multicall3's code instead (nothing lives there on the devnet)."""
ENV = dict(os.environ, KEEPER_PRIVATE_KEY=KEEPER_KEY)


@pytest.fixture
def without_canonical(timed_devnet: Devnet) -> Iterator[str]:
    """The devnet with the canonical Multicall3 gone; yields its runtime code."""
    rpc = timed_devnet.rpc
    code = rpc.call("eth_getCode", [MULTICALL3, "latest"])
    assert len(code) > 2, "the devnet deploys Multicall3 at its canonical address"
    snapshot = rpc.call("evm_snapshot")
    rpc.call("anvil_setCode", [MULTICALL3, "0x"])
    try:
        yield code
    finally:
        assert rpc.call("evm_revert", [snapshot]) is True
        rpc.call("anvil_dropAllTransactions")
        assert rpc.call("eth_getCode", [MULTICALL3, "latest"]) == code


def with_multicall(config: Path, address: str) -> Path:
    """The config at ``config`` with ``chain.multicall3 = address``, written back in place."""
    return write_config(changed(load_config(config, {}), {"chain": {"multicall3": address}}), config)


def positions(config: Path) -> tuple[int, str, str]:
    proc = run_keeper("positions", "--config", str(config), "--json", env=ENV)
    return proc.returncode, proc.stdout, proc.stderr


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("keeper: ")]


def test_a_missing_multicall3_is_one_line_and_another_deployment_works(
    timed_devnet: Devnet, without_canonical: str, tmp_path: Path
) -> None:
    (tmp_path / "canonical").mkdir()
    canonical = keeper_config(timed_devnet, tmp_path / "canonical", "dry-run")
    missing = f"keeper: error: chain.multicall3: no contract code at {MULTICALL3} on this chain"
    for command in ("positions", "check-config", "run"):
        proc = run_keeper(command, "--config", str(canonical), env=ENV)
        assert proc.returncode == 2, (command, proc.stderr[-500:])
        assert [line.split(" (")[0] for line in error_lines(proc.stderr)] == [missing], command
        assert "Traceback" not in proc.stderr
    assert not (tmp_path / "canonical" / "store.sqlite").exists(), "run refused before opening a store"

    rpc = timed_devnet.rpc
    rpc.call("anvil_setCode", [OTHER, without_canonical])
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config = with_multicall(keeper_config(timed_devnet, run_dir, "dry-run"), OTHER)
    checked = run_keeper("check-config", "--config", str(config), env=ENV)
    assert checked.returncode == 0, checked.stderr[-500:]
    assert f"multicall3    {OTHER}" in checked.stdout

    keeper = KeeperProcess(config)
    ready = keeper.wait_for(named("keeper_ready"), timeout_s=90)
    keeper.wait_for(lambda e: e.get("event") == "block_handled" and e["block"] > ready["block"])
    assert keeper.stop() == 0, keeper.lines[-5:]
    assert [e for e in keeper.events if e.get("level") == "error"] == []

    code, out, err = positions(config)  # from the run's store, every health read through OTHER
    assert code == 0, err[-500:]
    listed = json.loads(out)
    pool = timed_devnet.summary["aave"]["pool"]
    aave = [p for p in listed["positions"] if p["protocol"] == "aave_v3"]
    assert len(aave) >= 900 and len(listed["positions"]) >= 1_800
    for row in aave[:: len(aave) // 25]:
        raw = rpc.eth_call(pool, encode_call("getUserAccountData(address)", row["user"]), listed["block"])
        assert row["health_factor_wad"] == str(words(raw)[5]), row["user"]
