"""A price crash makes positions liquidatable by the contracts' own numbers; manual liquidations work."""

from __future__ import annotations

from typing import Any

import pytest

from keeper.devnet.abi import encode_call
from keeper.devnet.inspect import aave_health, morpho_health
from keeper.devnet.morpho import MARKET_PARAMS
from keeper.errors import DevnetError
from tests.conftest import Devnet, run_keeper

from .helpers import MAX_UINT, WAD, account_data, send, view


def crash_weth(devnet: Devnet, percent: str = "-25") -> None:
    proc = run_keeper(
        "devnet", "price", "--rpc", devnet.summary["rpc_url"], "--asset", "WETH", "--move", percent
    )
    assert proc.returncode == 0, proc.stderr


def test_seeded_spread_has_near_liquidation_borrowers_but_none_liquidatable(devnet: Devnet) -> None:
    healths = aave_health(devnet.rpc, devnet.summary["aave"]["pool"])
    cases = sum(len(users) for users in devnet.summary["aave"]["cases"].values())
    assert len(healths) == devnet.summary["aave"]["borrowers"] + cases
    hfs = [h.health_factor_wad for h in healths]
    assert min(hfs) >= WAD
    assert any(hf < WAD * 105 // 100 for hf in hfs)
    assert any(hf > 2 * WAD for hf in hfs)


def test_aave_crash_then_liquidation_call_succeeds(chain: Devnet) -> None:
    rpc, s = chain.rpc, chain.summary
    pool, keeper = s["aave"]["pool"], s["keeper_address"]
    crash_weth(chain)
    unhealthy = [h for h in aave_health(rpc, pool) if h.health_factor_wad < WAD]
    assert unhealthy
    weth = s["aave"]["reserves"]["WETH"]
    data_provider = s["aave"]["data_provider"]
    victim, debt_token = _weth_backed_victim(
        rpc, data_provider, s["aave"]["reserves"], [h.user for h in unhealthy]
    )
    debt_before = account_data(rpc, pool, victim)[1]
    assert send(rpc, keeper, debt_token, "approve(address,uint256)", pool, MAX_UINT)["status"] == "0x1"
    receipt = send(
        rpc,
        keeper,
        pool,
        "liquidationCall(address,address,address,uint256,bool)",
        weth,
        debt_token,
        victim,
        MAX_UINT,
        False,
    )
    assert receipt["status"] == "0x1"
    assert account_data(rpc, pool, victim)[1] < debt_before
    (keeper_weth,) = view(rpc, weth, "balanceOf(address)", ["uint256"], keeper)
    assert keeper_weth > 0


def _weth_backed_victim(
    rpc: Any, data_provider: str, reserves: dict[str, str], users: list[str]
) -> tuple[str, str]:
    out = ["uint256"] * 5 + ["uint256", "uint256", "uint40", "bool"]
    for user in users:
        weth_row = view(
            rpc, data_provider, "getUserReserveData(address,address)", out, reserves["WETH"], user
        )
        if weth_row[0] == 0:
            continue
        for symbol, token in reserves.items():
            row = view(rpc, data_provider, "getUserReserveData(address,address)", out, token, user)
            if symbol != "WETH" and row[2] > 0:  # currentVariableDebt
                return user, token
    raise AssertionError("no unhealthy WETH-backed borrower")


def test_morpho_crash_then_liquidate_succeeds(chain: Devnet) -> None:
    rpc, s = chain.rpc, chain.summary
    morpho, keeper = s["morpho"]["address"], s["keeper_address"]
    crash_weth(chain)
    markets = {m["id"]: m for m in s["morpho"]["market_params"]}
    for market in markets.values():
        send(rpc, keeper, morpho, f"accrueInterest({MARKET_PARAMS})", _params(market))
    unhealthy = [h for h in morpho_health(rpc, morpho) if h.health_factor_wad < WAD]
    assert unhealthy
    victim = unhealthy[0]
    market = markets[victim.market]
    mp = _params(market)
    position = bytes.fromhex(victim.market[2:])
    _, _, collateral_before = view(
        rpc, morpho, "position(bytes32,address)", ["uint256", "uint128", "uint128"], position, victim.user
    )
    assert (
        send(rpc, keeper, market["loan_token"], "approve(address,uint256)", morpho, MAX_UINT)["status"]
        == "0x1"
    )
    seized = collateral_before // 4
    receipt = send(
        rpc,
        keeper,
        morpho,
        f"liquidate({MARKET_PARAMS},address,uint256,uint256,bytes)",
        mp,
        victim.user,
        seized,
        0,
        b"",
    )
    assert receipt["status"] == "0x1"
    _, _, collateral_after = view(
        rpc, morpho, "position(bytes32,address)", ["uint256", "uint128", "uint128"], position, victim.user
    )
    assert collateral_after == collateral_before - seized


def test_healthy_position_cannot_be_liquidated(devnet: Devnet) -> None:
    """Before any crash the pool refuses: HealthFactorNotBelowThreshold() (0x930bb771; v3.0.x: error 45)."""
    rpc, s = devnet.rpc, devnet.summary
    pool = s["aave"]["pool"]
    user = aave_health(rpc, pool)[0].user
    data = encode_call(
        "liquidationCall(address,address,address,uint256,bool)",
        s["aave"]["reserves"]["WETH"],
        s["aave"]["reserves"]["USDC"],
        user,
        MAX_UINT,
        False,
    )
    call = {"from": s["keeper_address"], "to": pool, "data": "0x" + data.hex()}
    with pytest.raises(DevnetError, match="0x930bb771"):
        rpc.call("eth_call", [call, "latest"])


def _params(market: dict[str, Any]) -> tuple[str, str, str, str, int]:
    return (
        market["loan_token"],
        market["collateral_token"],
        market["oracle"],
        market["irm"],
        int(market["lltv"]),
    )
