"""The keeper's own `LiquidationExecutor` on the real devnet: capital-free liquidations, and its guards.

A fresh account holding only ETH deploys it with `keeper executor deploy`; after a -25 % WETH crash
it liquidates Aave v3.6 positions with a Morpho flash loan and with Aave's own `flashLoanSimple`, a
Morpho position through Morpho's liquidate callback, and a batch, each selling the seized collateral
on the devnet's Uniswap V3 pools. Every profit lands at the beneficiary and nothing stays behind;
every refusal (wrong caller, forged callback, swap or profit under its floor, a race already lost)
reverts, and the early guard's gas is measured.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from eth_account import Account
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from keeper.chain.abi import Contract
from keeper.devnet.aave_market import FLASH_LOAN_PREMIUM_BPS
from keeper.devnet.abi import decode_result, encode_call
from keeper.devnet.accounts import user_addresses
from keeper.devnet.feeds import set_price
from keeper.devnet.rpc import Rpc
from keeper.devnet.toolchain import compiled_executor, toolchain
from keeper.execution.executor_contract import ExecutorBuild
from tests.conftest import Devnet, run_keeper

from .helpers import account_data, view

pytestmark = pytest.mark.integration

OWNER_KEY = "0x" + keccak(text="executor-owner").hex()
OTHER_KEY = "0x" + keccak(text="executor-other-owner").hex()
BENEFICIARY = to_checksum_address("0x" + keccak(text="executor-beneficiary").hex()[-40:])
STRANGER = to_checksum_address("0x" + keccak(text="executor-stranger").hex()[-40:])
AAVE_MORPHO_FLASH, AAVE_AAVE_FLASH, MORPHO_CALLBACK = 0, 1, 2
TX_GAS = 3_000_000
LIQUIDATION_CALL = (
    "0x" + keccak(text="LiquidationCall(address,address,address,uint256,uint256,address,bool)").hex()
)
MORPHO_LIQUIDATE = (
    "0x" + keccak(text="Liquidate(bytes32,address,address,uint256,uint256,uint256,uint256,uint256)").hex()
)
AAVE_FLASH_LOAN = "0x" + keccak(text="FlashLoan(address,address,address,uint256,uint8,uint256,uint16)").hex()
MORPHO_FLASH_LOAN = "0x" + keccak(text="FlashLoan(address,address,uint256)").hex()
GAS: dict[str, int] = {}
"""Gas used per path, printed at the end of the module (run with -s to see it)."""


@dataclass(frozen=True)
class Deployed:
    devnet: Devnet
    build: ExecutorBuild
    report: dict[str, Any]
    owner: str

    @property
    def rpc(self) -> Rpc:
        return self.devnet.rpc

    @property
    def executor(self) -> str:
        return str(self.report["executor"])

    @property
    def abi(self) -> Contract:
        return self.build.contract


def keeper_env(key: str) -> dict[str, str]:
    return {**os.environ, "KEEPER_PRIVATE_KEY": key}


def deploy(devnet: Devnet, key: str, *extra: str) -> dict[str, Any]:
    proc = run_keeper("executor", "deploy", "--config", str(devnet.config_path), *extra, env=keeper_env(key))
    assert proc.returncode == 0, proc.stderr[-2000:]
    report: dict[str, Any] = json.loads(proc.stdout)
    return report


def fund(rpc: Rpc, key: str) -> str:
    address = str(Account.from_key(key).address)
    rpc.call("anvil_setBalance", [address, hex(10**19)])
    return address


def assert_aave_flash_loans_on(devnet: Devnet) -> None:
    """The devnet lists its borrowable reserves with flash loans on and mainnet's 0.05 % premium."""
    rpc, aave = devnet.rpc, devnet.summary["aave"]
    assert view(rpc, aave["pool"], "FLASHLOAN_PREMIUM_TOTAL()", ["uint128"]) == (FLASH_LOAN_PREMIUM_BPS,)


@pytest.fixture(scope="module")
def deployed(devnet: Devnet) -> Iterator[Deployed]:
    """One deployment and one crash for the whole module; each test reverts to this state."""
    rpc = devnet.rpc
    start = rpc.call("evm_snapshot")
    try:
        assert_aave_flash_loans_on(devnet)
        owner = fund(rpc, OWNER_KEY)
        report = deploy(devnet, OWNER_KEY, "--beneficiary", BENEFICIARY)
        set_price(rpc, "WETH", move=Decimal("-25"))
        yield Deployed(devnet, compiled_executor(toolchain()), report, owner)
    finally:
        assert rpc.call("evm_revert", [start]) is True
        rpc.call("anvil_dropAllTransactions")
        print("\nLiquidationExecutor gas used:", json.dumps(GAS, indent=1))


@pytest.fixture
def ex(deployed: Deployed) -> Iterator[Deployed]:
    rpc = deployed.rpc
    snapshot = rpc.call("evm_snapshot")
    try:
        yield deployed
    finally:
        assert rpc.call("evm_revert", [snapshot]) is True
        rpc.call("anvil_dropAllTransactions")


# --- reading and sending ---------------------------------------------------------------------


def raw_call(rpc: Rpc, sender: str, to: str, data: bytes) -> tuple[bytes | None, bytes]:
    """``(result, b"")`` or ``(None, revert data)``: the devnet Rpc hides the revert data."""
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "eth_call",
        "params": [{"from": sender, "to": to, "data": "0x" + data.hex(), "gas": hex(TX_GAS)}, "latest"],
    }
    reply = requests.post(rpc.url, json=body, timeout=30).json()
    if "error" in reply:
        return None, bytes.fromhex(str(reply["error"].get("data") or "0x")[2:])
    return bytes.fromhex(reply["result"][2:]), b""


def send(rpc: Rpc, sender: str, to: str, data: bytes) -> dict[str, Any]:
    tx_hash = rpc.call(
        "eth_sendTransaction", [{"from": sender, "to": to, "data": "0x" + data.hex(), "gas": hex(TX_GAS)}]
    )
    for _ in range(500):
        receipt = rpc.call("eth_getTransactionReceipt", [tx_hash])
        if receipt is not None:
            return dict(receipt)
    raise AssertionError("not mined")


def balance(rpc: Rpc, token: str, holder: str) -> int:
    (value,) = view(rpc, token, "balanceOf(address)", ["uint256"], holder)
    return int(value)


def error_selector(ex: Deployed, name: str) -> bytes:
    inputs = next(e for e in ex.build.abi if e.get("type") == "error" and e["name"] == name)["inputs"]
    return keccak(text=f"{name}({','.join(i['type'] for i in inputs)})")[:4]


def logs(receipt: dict[str, Any], topic: str) -> list[dict[str, Any]]:
    return [log for log in receipt["logs"] if log["topics"][0] == topic]


def liquidated_profits(ex: Deployed, receipt: dict[str, Any]) -> list[int]:
    event = ex.abi.event("Liquidated")
    return [int(event.decode(log)["profit"]) for log in receipt["logs"] if event.matches(log)]


def tokens(ex: Deployed) -> list[str]:
    return list(ex.devnet.summary["aave"]["reserves"].values())


# --- opportunities -------------------------------------------------------------------------------


def fee_for(ex: Deployed, a: str, b: str) -> int:
    pair = {a.lower(), b.lower()}
    pools = ex.devnet.summary["uniswap_v3"]["pools"]
    return min(int(p["fee"]) for p in pools if {p["token0"].lower(), p["token1"].lower()} == pair)


def params(ex: Deployed, route: int, user: str, collateral: str, debt: str, **given: Any) -> dict[str, Any]:
    summary = ex.devnet.summary
    zero = "0x" + "00" * 20
    values: dict[str, Any] = {
        "route": route,
        "pool": summary["aave"]["pool"],
        "morpho": summary["morpho"]["address"],
        "router": summary["uniswap_v3"]["swap_router"],
        "user": user,
        "collateral": collateral,
        "debt": debt,
        "debtToCover": 0,
        "market": {"loanToken": zero, "collateralToken": zero, "oracle": zero, "irm": zero, "lltv": 0},
        "seizedAssets": 0,
        "repaidShares": 0,
        "fee": fee_for(ex, collateral, debt),
        "amountOutMinimum": 0,
        "minProfit": 0,
    }
    return values | given


def simulate(ex: Deployed, p: dict[str, Any]) -> int | None:
    """The profit the executor would make now (an eth_call from the owner), or None if it reverts."""
    result, _ = raw_call(ex.rpc, ex.owner, ex.executor, ex.abi.fn("liquidate").call(p))
    return None if result is None else int.from_bytes(result[:32], "big")


def aave_opportunities(
    ex: Deployed, route: int, count: int, skip: frozenset[str] = frozenset()
) -> list[dict[str, Any]]:
    """``count`` liquidatable Aave borrowers (WETH collateral), a quarter of one debt each, that the
    executor liquidates at a profit by ``route``; one per user."""
    summary, rpc = ex.devnet.summary, ex.rpc
    reserves, provider = summary["aave"]["reserves"], summary["aave"]["data_provider"]
    weth = reserves["WETH"]
    found: list[dict[str, Any]] = []
    for user in user_addresses("aave", summary["aave"]["borrowers"], summary["seed"]):
        if user in skip or account_data(rpc, summary["aave"]["pool"], user)[5] >= 10**18:
            continue
        (supplied,) = view(rpc, provider, "getUserReserveData(address,address)", ["uint256"], weth, user)
        if supplied == 0:
            continue
        for symbol in ("USDC", "DAI", "WBTC"):
            words = view(
                rpc, provider, "getUserReserveData(address,address)", ["uint256"] * 3, reserves[symbol], user
            )
            if words[2] == 0:
                continue
            p = params(ex, route, user, weth, reserves[symbol], debtToCover=int(words[2]) // 4)
            profit = simulate(ex, p)
            if profit:
                found.append(p | {"expected": profit})
                break
        if len(found) == count:
            return found
    raise AssertionError(f"only {len(found)} profitable Aave liquidations by route {route}")


def morpho_opportunity(ex: Deployed) -> dict[str, Any]:
    """A liquidatable borrower of the WETH/USDC market: half its collateral seized."""
    summary, rpc = ex.devnet.summary, ex.rpc
    market = next(m for m in summary["morpho"]["market_params"] if m["collateral"] == "WETH")
    mp = {
        "loanToken": market["loan_token"],
        "collateralToken": market["collateral_token"],
        "oracle": market["oracle"],
        "irm": market["irm"],
        "lltv": int(market["lltv"]),
    }
    morpho = summary["morpho"]["address"]
    position = "position(bytes32,address)"
    for user in user_addresses("morpho", summary["morpho"]["borrowers"], summary["seed"]):
        _, shares, collateral = view(
            rpc, morpho, position, ["uint256"] * 3, bytes.fromhex(market["id"][2:]), user
        )
        if shares == 0 or collateral < 2:
            continue
        p = params(
            ex,
            MORPHO_CALLBACK,
            user,
            mp["collateralToken"],
            mp["loanToken"],
            market=mp,
            seizedAssets=collateral // 2,
        )
        profit = simulate(ex, p)
        if profit:
            return p | {"expected": profit}
    raise AssertionError("no profitable Morpho liquidation")


def healthy_aave_user(ex: Deployed) -> str:
    summary = ex.devnet.summary
    return next(
        u
        for u in user_addresses("aave", summary["aave"]["borrowers"], summary["seed"])
        if 10**18 < account_data(ex.rpc, summary["aave"]["pool"], u)[5] < 2**255
    )


def strip(p: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in p.items() if k != "expected"}


def liquidate(ex: Deployed, p: dict[str, Any], label: str) -> dict[str, Any]:
    """Send one liquidation from the owner; check the profit moved to the beneficiary, nothing stayed."""
    before = balance(ex.rpc, p["debt"], BENEFICIARY)
    receipt = send(ex.rpc, ex.owner, ex.executor, ex.abi.fn("liquidate").call(strip(p)))
    assert int(receipt["status"], 16) == 1, label
    GAS[label] = int(receipt["gasUsed"], 16)
    (profit,) = liquidated_profits(ex, receipt)
    assert profit > 0 and balance(ex.rpc, p["debt"], BENEFICIARY) - before == profit
    assert all(balance(ex.rpc, token, ex.executor) == 0 for token in tokens(ex))
    return receipt


# --- the proofs ------------------------------------------------------------------------------------


def test_deployed_by_a_fresh_eth_only_account(ex: Deployed) -> None:
    report = ex.report
    assert report["owner"] == ex.owner and report["beneficiary"] == BENEFICIARY
    assert int(report["gas_used"]) > 100_000 and report["tx"].startswith("0x")
    (owner,) = view(ex.rpc, ex.executor, "owner()", ["address"])
    assert to_checksum_address(owner) == ex.owner
    assert all(balance(ex.rpc, token, ex.owner) == 0 for token in tokens(ex))  # it holds only ETH


def test_aave_liquidation_with_a_morpho_flash_loan(ex: Deployed) -> None:
    (p,) = aave_opportunities(ex, AAVE_MORPHO_FLASH, 1)
    receipt = liquidate(ex, p, "aave_via_morpho_flash")
    (call,) = logs(receipt, LIQUIDATION_CALL)
    assert to_checksum_address("0x" + call["topics"][3][-40:]) == p["user"]
    assert len(logs(receipt, MORPHO_FLASH_LOAN)) == 1


def test_aave_liquidation_with_aave_flash_loan_pays_the_premium(ex: Deployed) -> None:
    (p,) = aave_opportunities(ex, AAVE_AAVE_FLASH, 1)
    receipt = liquidate(ex, p, "aave_via_aave_flash")
    (call,) = logs(receipt, LIQUIDATION_CALL)
    assert to_checksum_address("0x" + call["topics"][3][-40:]) == p["user"]
    (flash,) = logs(receipt, AAVE_FLASH_LOAN)
    words = bytes.fromhex(flash["data"][2:])
    amount, premium = int.from_bytes(words[32:64], "big"), int.from_bytes(words[96:128], "big")
    assert amount == p["debtToCover"] and premium > 0


def test_morpho_liquidation_through_its_callback(ex: Deployed) -> None:
    p = morpho_opportunity(ex)
    receipt = liquidate(ex, p, "morpho_callback")
    (event,) = logs(receipt, MORPHO_LIQUIDATE)
    assert to_checksum_address("0x" + event["topics"][3][-40:]) == p["user"]
    assert not logs(receipt, MORPHO_FLASH_LOAN)  # no flash loan needed


def test_batch_liquidates_each_and_pays_the_sum(ex: Deployed) -> None:
    items = [*aave_opportunities(ex, AAVE_MORPHO_FLASH, 2), morpho_opportunity(ex)]
    items += aave_opportunities(ex, AAVE_AAVE_FLASH, 1, skip=frozenset(i["user"] for i in items))
    debts = {i["debt"] for i in items}
    before = {d: balance(ex.rpc, d, BENEFICIARY) for d in debts}
    receipt = send(ex.rpc, ex.owner, ex.executor, ex.abi.fn("liquidateBatch").call([strip(i) for i in items]))
    assert int(receipt["status"], 16) == 1
    GAS[f"batch_of_{len(items)}"] = int(receipt["gasUsed"], 16)
    profits = liquidated_profits(ex, receipt)
    assert len(profits) == len(items) and not [
        log for log in receipt["logs"] if ex.abi.event("Skipped").matches(log)
    ]
    for debt in debts:
        gained = sum(p for p, i in zip(profits, items, strict=True) if i["debt"] == debt)
        assert balance(ex.rpc, debt, BENEFICIARY) - before[debt] == gained > 0
    assert all(balance(ex.rpc, token, ex.executor) == 0 for token in tokens(ex))
    users = {to_checksum_address("0x" + log["topics"][3][-40:]) for log in logs(receipt, LIQUIDATION_CALL)}
    users |= {to_checksum_address("0x" + log["topics"][3][-40:]) for log in logs(receipt, MORPHO_LIQUIDATE)}
    assert users == {i["user"] for i in items}


def test_batch_skips_a_bad_item_and_keeps_the_good_ones(ex: Deployed) -> None:
    good = aave_opportunities(ex, AAVE_MORPHO_FLASH, 2)
    bad = params(
        ex,
        AAVE_MORPHO_FLASH,
        healthy_aave_user(ex),
        good[0]["collateral"],
        good[0]["debt"],
        debtToCover=10**6,
    )
    items = [good[0], bad, good[1]]
    receipt = send(ex.rpc, ex.owner, ex.executor, ex.abi.fn("liquidateBatch").call([strip(i) for i in items]))
    assert int(receipt["status"], 16) == 1
    assert len(liquidated_profits(ex, receipt)) == 2
    skipped_event = ex.abi.event("Skipped")
    (skipped,) = [skipped_event.decode(log) for log in receipt["logs"] if skipped_event.matches(log)]
    assert skipped["index"] == 1 and bytes(skipped["reason"])[:4] == error_selector(ex, "NotLiquidatable")
    assert {
        to_checksum_address("0x" + log["topics"][3][-40:]) for log in logs(receipt, LIQUIDATION_CALL)
    } == {
        good[0]["user"],
        good[1]["user"],
    }


def test_early_guard_reverts_cheaply_on_a_healthy_position(ex: Deployed) -> None:
    (full,) = aave_opportunities(ex, AAVE_AAVE_FLASH, 1)
    user = healthy_aave_user(ex)
    p = params(ex, AAVE_AAVE_FLASH, user, full["collateral"], full["debt"], debtToCover=full["debtToCover"])
    data = ex.abi.fn("liquidate").call(p)
    result, revert = raw_call(ex.rpc, ex.owner, ex.executor, data)
    assert result is None and revert[:4] == error_selector(ex, "NotLiquidatable")
    receipt = send(ex.rpc, ex.owner, ex.executor, data)
    assert int(receipt["status"], 16) == 0
    guard_gas = int(receipt["gasUsed"], 16)
    GAS["early_guard_revert"] = guard_gas
    full_receipt = liquidate(ex, full, "aave_via_aave_flash_for_guard")
    assert guard_gas * 4 < int(full_receipt["gasUsed"], 16)


def scaled_position(ex: Deployed, p: dict[str, Any]) -> list[int]:
    """The user's scaled aToken and variable-debt balances of the pair: what a liquidation moves,
    and, unlike health or values, not what a second of interest moves."""
    provider = ex.devnet.summary["aave"]["data_provider"]
    out = []
    for asset in (p["collateral"], p["debt"]):
        raw = ex.rpc.eth_call(provider, encode_call("getReserveTokensAddresses(address)", asset))
        a_token, _, variable_debt = decode_result(["address", "address", "address"], raw)
        for token in (a_token, variable_debt):
            scaled = ex.rpc.eth_call(str(token), encode_call("scaledBalanceOf(address)", p["user"]))
            out.append(int.from_bytes(scaled[:32], "big"))
    return out


def test_swap_under_its_minimum_reverts_everything(ex: Deployed) -> None:
    (p,) = aave_opportunities(ex, AAVE_MORPHO_FLASH, 1)
    before = scaled_position(ex, p), balance(ex.rpc, p["debt"], BENEFICIARY)
    assert any(before[0])
    too_much = strip(p) | {"amountOutMinimum": 2**200}
    receipt = send(ex.rpc, ex.owner, ex.executor, ex.abi.fn("liquidate").call(too_much))
    assert int(receipt["status"], 16) == 0 and not receipt["logs"]
    assert (scaled_position(ex, p), balance(ex.rpc, p["debt"], BENEFICIARY)) == before


def test_profit_under_its_floor_reverts(ex: Deployed) -> None:
    (p,) = aave_opportunities(ex, AAVE_AAVE_FLASH, 1)
    greedy = strip(p) | {"minProfit": p["expected"] + 1}
    result, revert = raw_call(ex.rpc, ex.owner, ex.executor, ex.abi.fn("liquidate").call(greedy))
    assert result is None and revert[:4] == error_selector(ex, "ProfitTooLow")
    receipt = send(ex.rpc, ex.owner, ex.executor, ex.abi.fn("liquidate").call(greedy))
    assert int(receipt["status"], 16) == 0 and not receipt["logs"]
    assert simulate(ex, strip(p) | {"minProfit": p["expected"]}) == p["expected"]  # the floor is inclusive


def test_nobody_but_the_owner_and_the_protocols_gets_in(ex: Deployed) -> None:
    (p,) = aave_opportunities(ex, AAVE_MORPHO_FLASH, 1)
    fn = ex.abi.fn
    not_owner = error_selector(ex, "NotOwner")
    for data in (
        fn("liquidate").call(strip(p)),
        fn("liquidateBatch").call([strip(p)]),
        fn("rescue").call(p["debt"], STRANGER, 1),
    ):
        result, revert = raw_call(ex.rpc, STRANGER, ex.executor, data)
        assert result is None and revert[:4] == not_owner
    result, revert = raw_call(ex.rpc, ex.owner, ex.executor, fn("liquidateOneOfBatch").call(strip(p)))
    assert result is None and revert[:4] == error_selector(ex, "OnlySelf")
    payload = bytes(64)
    unexpected = error_selector(ex, "UnexpectedCallback")
    summary = ex.devnet.summary
    for sender in (STRANGER, summary["aave"]["pool"], summary["morpho"]["address"]):  # outside an owner call
        for data in (
            fn("executeOperation").call(p["debt"], 10**6, 0, ex.executor, payload),
            fn("onMorphoFlashLoan").call(10**6, payload),
            fn("onMorphoLiquidate").call(10**6, payload),
        ):
            result, revert = raw_call(ex.rpc, sender, ex.executor, data)
            assert result is None and revert[:4] == unexpected


def test_rescue_returns_stray_tokens_to_the_owner_chosen_address(ex: Deployed) -> None:
    usdc = ex.devnet.summary["aave"]["reserves"]["USDC"]
    keeper = ex.devnet.summary["keeper_address"]
    erc20 = Contract(
        "IERC20",
        [
            {
                "type": "function",
                "name": "transfer",
                "inputs": [{"name": "to", "type": "address"}, {"name": "amount", "type": "uint256"}],
                "outputs": [{"name": "", "type": "bool"}],
            }
        ],
    )
    send(ex.rpc, keeper, usdc, erc20.fn("transfer").call(ex.executor, 12345))
    receipt = send(ex.rpc, ex.owner, ex.executor, ex.abi.fn("rescue").call(usdc, STRANGER, 12345))
    assert int(receipt["status"], 16) == 1
    assert balance(ex.rpc, usdc, ex.executor) == 0 and balance(ex.rpc, usdc, STRANGER) == 12345


# --- check-config ------------------------------------------------------------------------------


def check_config(ex: Deployed, executor: str, key: str = OWNER_KEY) -> tuple[int, str, str]:
    env = keeper_env(key) | {"KEEPER_EXECUTION__EXECUTOR": executor}
    proc = run_keeper("check-config", "--config", str(ex.devnet.config_path), env=env)
    lines = proc.stderr.strip().splitlines()
    return proc.returncode, proc.stdout, lines[-1] if lines else ""


def test_check_config_accepts_the_deployed_executor(ex: Deployed) -> None:
    code, out, err = check_config(ex, ex.executor)
    assert code == 0, err
    assert f"executor      {ex.executor}: LiquidationExecutor, owned by the signer" in out


@pytest.mark.parametrize("case", ["no code", "other code", "other owner"])
def test_check_config_refuses_a_wrong_executor_in_one_line(ex: Deployed, case: str) -> None:
    if case == "no code":
        address, message = STRANGER, "has no contract code"
    elif case == "other code":
        address, message = ex.devnet.summary["morpho"]["address"], "is not this keeper's LiquidationExecutor"
    else:
        other = fund(ex.rpc, OTHER_KEY)
        report = deploy(ex.devnet, OTHER_KEY)
        assert report["owner"] == other and report["beneficiary"] == other  # the default beneficiary
        address, message = report["executor"], f"is owned by {other}, not by the configured signer {ex.owner}"
    code, out, err = check_config(ex, address)
    assert code == 2 and not out
    assert err.startswith("keeper: error: execution.executor: ") and message in err
    assert len(err.splitlines()) == 1


def test_deploy_errors_are_one_line(ex: Deployed, tmp_path: Path) -> None:
    broke = "0x" + keccak(text="executor-no-eth").hex()  # no ETH for gas
    proc = run_keeper("executor", "deploy", "--config", str(ex.devnet.config_path), env=keeper_env(broke))
    assert proc.returncode == 2 and proc.stderr.startswith("keeper: error: executor deployment: signer ")
    assert "Traceback" not in proc.stderr and not proc.stdout
    proc = run_keeper(
        "executor",
        "deploy",
        "--config",
        str(ex.devnet.config_path),
        "--beneficiary",
        "0x12",
        env=keeper_env(OWNER_KEY),
    )
    assert proc.returncode == 2 and "--beneficiary" in proc.stderr and "Traceback" not in proc.stderr
