"""`keeper stress` agrees with the exact health code: the shock it predicts, applied for real on the
devnet, makes exactly the positions it named liquidatable."""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path

import pytest

from keeper.devnet.feeds import set_price
from tests.conftest import Devnet, run_keeper
from tests.support.config import keeper_config
from tests.support.keeper import KEEPER_KEY

pytestmark = pytest.mark.integration


def test_stress_predicts_the_positions_a_real_shock_makes_liquidatable(chain: Devnet) -> None:
    config = str(chain.config_path)
    proc = run_keeper("stress", "--config", config, "--shock", "WETH=-30", "--shock", "wbtc=-20", "--json")
    assert proc.returncode == 0, proc.stderr
    predicted = json.loads(proc.stdout)
    assert predicted["shocks"] == {"WETH": "-30.0", "WBTC": "-20.0"}
    before = json.loads(run_keeper("positions", "--config", config, "--json").stdout)
    set_price(chain.rpc, "WETH", move=Decimal("-30"))
    set_price(chain.rpc, "WBTC", move=Decimal("-20"))
    after = json.loads(run_keeper("positions", "--config", config, "--json").stdout)
    for protocol in predicted["protocols"]:
        kind = {"aave": "aave_v3", "morpho": "morpho_blue"}[protocol["name"]]
        real = {p["user"] for p in after["positions"] if p["protocol"] == kind and p["liquidatable"]}
        now = {p["user"] for p in before["positions"] if p["protocol"] == kind and p["liquidatable"]}
        assert set(protocol["positions"]) == real, protocol["name"]
        assert protocol["liquidatable_before"] == len(now) == 0
        assert protocol["liquidatable_after"] == len(real) > 0
        assert sum(int(v) for v in protocol["debt_to_cover"].values()) > 0


def test_stress_names_an_unknown_asset(devnet: Devnet) -> None:
    proc = run_keeper("stress", "--config", str(devnet.config_path), "--shock", "DOGE=-50")
    assert proc.returncode == 2
    assert (
        proc.stderr.strip().splitlines()[-1].startswith("keeper: error: --shock DOGE: unknown asset; tracked")
    )


def test_stress_reports_what_the_flash_strategy_would_make(chain: Devnet, tmp_path: Path) -> None:
    """With an executor configured, the shock's liquidations are planned as `keeper run` plans them
    (QuoterV2 at head, outputs moved by the shock): each one either would be sent or is counted under
    a reason, the profits are in the debt tokens that would be repaid, and a wider slippage bound lowers
    the floors the contract would enforce."""
    env = {**os.environ, "KEEPER_PRIVATE_KEY": KEEPER_KEY}
    deployed = run_keeper("executor", "deploy", "--config", str(chain.config_path), env=env)
    assert deployed.returncode == 0, deployed.stderr
    executor = json.loads(deployed.stdout)["executor"]
    config = keeper_config(chain, tmp_path, "dry-run", strategy="flash", executor=executor)
    reports = {}
    for slippage in ("100", "1000"):
        wide = {**env, "KEEPER_EXECUTION__MAX_SLIPPAGE_BPS": slippage}
        proc = run_keeper("stress", "--config", str(config), "--shock", "WETH=-30", "--json", env=wide)
        assert proc.returncode == 0, proc.stderr
        reports[slippage] = json.loads(proc.stdout)
    narrow, wide_report = reports["100"], reports["1000"]
    for protocol, flash in zip(narrow["protocols"], narrow["flash"], strict=True):
        assert flash["name"] == protocol["name"]
        assert flash["sendable"] > 0
        assert flash["sendable"] + sum(flash["refused"].values()) <= protocol["liquidatable_after"]
        assert set(flash["expected_profit"]) <= set(protocol["debt_to_cover"])
        assert all(int(v) > 0 for v in flash["expected_profit"].values())
        assert int(flash["floor_profit_wei"]) > 0 and flash["gas"] >= 400_000 * flash["sendable"]
    floors = [sum(int(f["floor_profit_wei"]) for f in r["flash"]) for r in (narrow, wide_report)]
    assert floors[1] < floors[0]
    plain = run_keeper("stress", "--config", str(chain.config_path), "--shock", "WETH=-30", "--json")
    assert "flash" not in json.loads(plain.stdout)  # the inventory strategy: no executor, no flash part
