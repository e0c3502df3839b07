"""`keeper stress` agrees with the exact health code: the shock it predicts, applied for real on the
devnet, makes exactly the positions it named liquidatable."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from keeper.devnet.feeds import set_price
from tests.conftest import Devnet, run_keeper

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
