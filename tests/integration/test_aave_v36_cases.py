"""The v3.6 devnet's case borrowers exercise each v3.3+ liquidation rule, shown by the contracts.

After the -25 % WETH crash the keeper account liquidates each case for real (at the head block's
own timestamp, so the views read just before are exactly the state the liquidation sees) and the
pool's events and views show the rule: the close factor's 100 % / 50 %-of-the-position, the dust
rule's `MustNotLeaveDust()`, deficits and the bad-debt burn, reserve-LT-0 collateral counted and
seized, and a liquidation grace period. Every test runs on a snapshot reverted afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pytest
import requests
from eth_utils.crypto import keccak

from keeper.devnet.abi import encode_call
from keeper.devnet.cases import CASES, CLOSE_FACTOR_THRESHOLD_BASE, GRACE_ASSET, MIN_LEFTOVER_BASE
from keeper.devnet.feeds import set_price
from keeper.devnet.rpc import Rpc
from keeper.devnet.spec import CASE_ASSETS, CASE_EMODE, asset
from tests.conftest import Devnet, reverted_after
from tests.support.devnet import running_devnet

from .helpers import MAX_UINT, WAD, account_data, send, view

pytestmark = pytest.mark.integration

BORROWERS = 20
LIQUIDATION_CALL = (
    "0x" + keccak(text="LiquidationCall(address,address,address,uint256,uint256,address,bool)").hex()
)
DEFICIT_CREATED = "0x" + keccak(text="DeficitCreated(address,address,uint256)").hex()
MUST_NOT_LEAVE_DUST = "0xb629b0e4"
LIQUIDATION_GRACE_SENTINEL_CHECK_FAILED = "0x9e3e6060"
LIQUIDATE = "liquidationCall(address,address,address,uint256,bool)"
CLOSE_FACTOR_HF = 95 * WAD // 100


@pytest.fixture(scope="module")
def cases36(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    config_out = tmp_path_factory.mktemp("cases36") / "devnet.toml"
    with running_devnet(config_out, BORROWERS, 5, "--aave-version", "3.6") as devnet:
        yield devnet


@pytest.fixture
def chain(cases36: Devnet) -> Iterator[Devnet]:
    yield from reverted_after(cases36)


@pytest.fixture
def crashed(chain: Devnet) -> Devnet:
    set_price(chain.rpc, "WETH", move=Decimal("-25"))
    return chain


@contextmanager
def snapshot(rpc: Rpc) -> Iterator[None]:
    taken = rpc.call("evm_snapshot")
    try:
        yield
    finally:
        assert rpc.call("evm_revert", [taken]) is True
        rpc.call("anvil_dropAllTransactions")


class Market:
    """The pool's views for one devnet, by symbol."""

    def __init__(self, devnet: Devnet) -> None:
        self.rpc, s = devnet.rpc, devnet.summary
        self.pool, self.oracle, self.keeper = s["aave"]["pool"], s["aave"]["oracle"], s["keeper_address"]
        self.tokens: dict[str, str] = s["aave"]["reserves"]
        self.cases: dict[str, list[str]] = s["aave"]["cases"]

    def token_of(self, address: str) -> str:
        return next(sym for sym, token in self.tokens.items() if token.lower() == address.lower())

    def price(self, symbol: str) -> int:
        return int(view(self.rpc, self.oracle, "getAssetPrice(address)", ["uint256"], self.tokens[symbol])[0])

    def _balance(self, getter: str, symbol: str, user: str) -> int:
        (token,) = view(self.rpc, self.pool, f"{getter}(address)", ["address"], self.tokens[symbol])
        return int(view(self.rpc, token, "balanceOf(address)", ["uint256"], user)[0])

    def collateral(self, symbol: str, user: str) -> int:
        return self._balance("getReserveAToken", symbol, user)

    def debt(self, symbol: str, user: str) -> int:
        return self._balance("getReserveVariableDebtToken", symbol, user)

    def held(self, user: str) -> tuple[list[str], list[str]]:
        """(collateral symbols, debt symbols) the user holds, in reserve order."""
        return (
            [s for s in self.tokens if self.collateral(s, user)],
            [s for s in self.tokens if self.debt(s, user)],
        )

    def base(self, symbol: str, amount: int, *, ceil: bool = False) -> int:
        unit = 10 ** asset(symbol).decimals
        return -(-amount * self.price(symbol) // unit) if ceil else amount * self.price(symbol) // unit

    def health(self, user: str) -> int:
        return account_data(self.rpc, self.pool, user)[5]

    def call_liquidation(self, collateral: str, debt: str, user: str, amount: int) -> str | None:
        """eth_call of the liquidation from the keeper: None if it succeeds, else the revert data."""
        data = encode_call(LIQUIDATE, self.tokens[collateral], self.tokens[debt], user, amount, False)
        body = {"from": self.keeper, "to": self.pool, "data": "0x" + data.hex()}
        reply = requests.post(
            self.rpc.url,
            json={"jsonrpc": "2.0", "id": 1, "method": "eth_call", "params": [body, "latest"]},
            timeout=30,
        ).json()
        return None if "error" not in reply else str(reply["error"].get("data"))

    def liquidate(self, collateral: str, debt: str, user: str, amount: int = MAX_UINT) -> dict[str, Any]:
        """A real liquidation mined at the head block's own timestamp (no interest since the views)."""
        head = self.rpc.call("eth_getBlockByNumber", ["latest", False])
        self.rpc.call("evm_setNextBlockTimestamp", [head["timestamp"]])
        receipt = send(
            self.rpc,
            self.keeper,
            self.pool,
            LIQUIDATE,
            self.tokens[collateral],
            self.tokens[debt],
            user,
            amount,
            False,
        )
        assert int(receipt["status"], 16) == 1, f"liquidation of {user} reverted"
        return receipt


def _words(data: str) -> list[int]:
    raw = bytes.fromhex(data[2:])
    return [int.from_bytes(raw[i : i + 32], "big") for i in range(0, len(raw), 32)]


def repaid_and_seized(receipt: dict[str, Any]) -> tuple[int, int]:
    (event,) = [log for log in receipt["logs"] if log["topics"][0] == LIQUIDATION_CALL]
    debt, seized, *_ = _words(event["data"])
    return debt, seized


def deficits(receipt: dict[str, Any]) -> list[tuple[str, int]]:
    """(debt asset, amount) of every DeficitCreated the liquidation emitted."""
    return [
        ("0x" + log["topics"][2][-40:], _words(log["data"])[0])
        for log in receipt["logs"]
        if log["topics"][0] == DEFICIT_CREATED
    ]


def test_cases_are_listed_and_healthy_before_the_crash(chain: Devnet) -> None:
    market = Market(chain)
    assert {name: len(users) for name, users in market.cases.items()} == {
        name: sum(1 for c in CASES if c.name == name) for name in dict.fromkeys(c.name for c in CASES)
    }
    for users in market.cases.values():
        for user in users:
            collateral, debt, *_, hf = account_data(market.rpc, market.pool, user)
            assert collateral > 0 and debt > 0
            assert hf >= WAD, f"{user} is liquidatable before the crash"


def test_close_factor_full_small(crashed: Devnet) -> None:
    market = Market(crashed)
    for user in market.cases["close_factor_full_small"]:
        assert CLOSE_FACTOR_HF < market.health(user) < WAD
        [coll], [debt] = market.held(user)
        owed = market.debt(debt, user)
        assert market.base(coll, market.collateral(coll, user)) < CLOSE_FACTOR_THRESHOLD_BASE
        assert market.base(debt, owed, ceil=True) < CLOSE_FACTOR_THRESHOLD_BASE
        repaid, seized = repaid_and_seized(market.liquidate(coll, debt, user))
        assert repaid == owed and market.debt(debt, user) == 0  # 100 % at HF > 0.95
        assert seized > 0 and market.collateral(coll, user) > 0


def test_close_factor_half_is_half_of_the_whole_position(crashed: Devnet) -> None:
    market = Market(crashed)
    two_debts = 0
    for user in market.cases["close_factor_half"]:
        assert CLOSE_FACTOR_HF < market.health(user) < WAD
        colls, debts = market.held(user)
        coll, debt = colls[0], debts[0]
        owed = market.debt(debt, user)
        assert market.base(coll, market.collateral(coll, user)) >= CLOSE_FACTOR_THRESHOLD_BASE
        assert market.base(debt, owed, ceil=True) >= CLOSE_FACTOR_THRESHOLD_BASE
        total_debt_base = account_data(market.rpc, market.pool, user)[1]
        half_base = (total_debt_base * 5000 + 5000) // 10_000  # percentMul(D, 50 %)
        expected = half_base * 10 ** asset(debt).decimals // market.price(debt)
        with snapshot(market.rpc):
            repaid, _ = repaid_and_seized(market.liquidate(coll, debt, user))
            assert repaid == expected < owed
            # The burn is scaled down (floor) and the balance read back up (ceil): 1 wei may stay.
            assert 0 <= market.debt(debt, user) - (owed - repaid) <= 1
        if len(debts) > 1:
            two_debts += 1
            assert repaid > owed * 6 // 10  # half of all debt, far more than half of this reserve's
    assert two_debts == 1


def test_close_factor_full_deep(crashed: Devnet) -> None:
    market = Market(crashed)
    for user in market.cases["close_factor_full_deep"]:
        assert market.health(user) <= CLOSE_FACTOR_HF
        [coll], [debt] = market.held(user)
        owed = market.debt(debt, user)
        assert market.base(coll, market.collateral(coll, user)) >= CLOSE_FACTOR_THRESHOLD_BASE
        assert market.base(debt, owed, ceil=True) >= CLOSE_FACTOR_THRESHOLD_BASE
        repaid, _ = repaid_and_seized(market.liquidate(coll, debt, user))
        assert repaid == owed and market.debt(debt, user) == 0
        assert market.collateral(coll, user) > 0, "a full-deep case must not be a deficit case"


def test_dust_debt(crashed: Devnet) -> None:
    market = Market(crashed)
    for user in market.cases["dust_debt"]:
        assert CLOSE_FACTOR_HF < market.health(user) < WAD
        [coll], debts = market.held(user)
        assert len(debts) == 2
        # Reserve order is not the plan's order: the dusty reserve is the one over half of all debt.
        total_debt_base = account_data(market.rpc, market.pool, user)[1]
        dusty = next(
            d for d in debts if 2 * market.base(d, market.debt(d, user), ceil=True) > total_debt_base
        )
        other = next(d for d in debts if d != dusty)
        owed = market.debt(dusty, user)
        half = (total_debt_base * 5000 + 5000) // 10_000 * 10 ** asset(dusty).decimals // market.price(dusty)
        assert 0 < market.base(dusty, owed - half, ceil=True) < MIN_LEFTOVER_BASE
        assert market.call_liquidation(coll, dusty, user, MAX_UINT) == MUST_NOT_LEAVE_DUST
        smaller = owed // 2
        with snapshot(market.rpc):
            assert repaid_and_seized(market.liquidate(coll, dusty, user, smaller))[0] == smaller
        with snapshot(market.rpc):
            other_owed = market.debt(other, user)
            assert repaid_and_seized(market.liquidate(coll, other, user))[0] == other_owed


def test_dust_collateral(crashed: Devnet) -> None:
    market = Market(crashed)
    for user in market.cases["dust_collateral"]:
        assert CLOSE_FACTOR_HF < market.health(user) < WAD
        colls, [debt] = market.held(user)
        assert set(colls) == {"WETH", "WBTC"}
        assert market.call_liquidation("WETH", debt, user, MAX_UINT) == MUST_NOT_LEAVE_DUST
        smaller = market.debt(debt, user) // 4
        with snapshot(market.rpc):
            before = market.collateral("WETH", user)
            repaid, seized = repaid_and_seized(market.liquidate("WETH", debt, user, smaller))
            assert repaid == smaller
            assert market.base("WETH", market.collateral("WETH", user)) >= MIN_LEFTOVER_BASE
            assert market.collateral("WETH", user) <= before - seized
        assert market.call_liquidation("WBTC", debt, user, MAX_UINT) is None  # the other collateral


def test_deficit_and_bad_debt_burn(crashed: Devnet) -> None:
    market = Market(crashed)
    two_debts = 0
    for user in market.cases["deficit"]:
        [coll], debts = market.held(user)
        collateral_base, debt_base, *_ = account_data(market.rpc, market.pool, user)
        assert collateral_base < debt_base
        owed = {d: market.debt(d, user) for d in debts}
        before = {
            d: view(market.rpc, market.pool, "getReserveDeficit(address)", ["uint256"], market.tokens[d])[0]
            for d in debts
        }
        with snapshot(market.rpc):
            # The largest debt reserve: its bonus-inflated collateral claim exceeds the balance.
            first = max(debts, key=lambda d: market.base(d, owed[d]))
            receipt = market.liquidate(coll, first, user)
            repaid, seized = repaid_and_seized(receipt)
            created = deficits(receipt)
            assert sorted(market.token_of(a) for a, _ in created) == sorted(debts)
            for address, amount in created:
                symbol = market.token_of(address)
                expected = owed[symbol] - (repaid if symbol == first else 0)
                assert amount == expected > 0
                (after,) = view(market.rpc, market.pool, "getReserveDeficit(address)", ["uint256"], address)
                assert after == before[symbol] + amount
            assert market.collateral(coll, user) == 0 and seized > 0
            assert account_data(market.rpc, market.pool, user)[:2] == (0, 0)
        two_debts += len(debts) == 2
    assert two_debts == 1


def test_lt_zero_collateral_counts_and_is_liquidatable(crashed: Devnet) -> None:
    market = Market(crashed)
    (emc,) = (a.symbol for a in CASE_ASSETS if a.emode_category == CASE_EMODE.category_id)
    (config,) = view(market.rpc, market.pool, "getConfiguration(address)", ["uint256"], market.tokens[emc])
    assert (config >> 16) & 0xFFFF == 0, "EMC's reserve liquidation threshold is not 0"
    reserve_id = view(
        market.rpc, market.pool, "getReserveData(address)", ["uint256"] * 7 + ["uint16"], market.tokens[emc]
    )[7]
    for user in market.cases["lt_zero"]:
        assert view(market.rpc, market.pool, "getUserEMode(address)", ["uint256"], user) == (
            CASE_EMODE.category_id,
        )
        (user_config,) = view(market.rpc, market.pool, "getUserConfiguration(address)", ["uint256"], user)
        assert (user_config >> (2 * reserve_id + 1)) & 1, "EMC is not flagged as the user's collateral"
        colls, [debt] = market.held(user)
        assert emc in colls
        values = {c: market.base(c, market.collateral(c, user)) for c in colls}
        collateral_base, debt_base, *_, hf = account_data(market.rpc, market.pool, user)
        assert collateral_base == sum(values.values()) and values[emc] > 0
        weighted = sum(
            v * (CASE_EMODE.liquidation_threshold_bps if c == emc else asset(c).liquidation_threshold_bps)
            for c, v in values.items()
        )
        assert hf == (weighted * WAD + debt_base // 2) // debt_base // 10_000 < WAD  # EMC at eMode LT
        with snapshot(market.rpc):
            repaid, seized = repaid_and_seized(market.liquidate(emc, debt, user))
            assert repaid > 0 and seized > 0  # v3.0-3.5 refused: CollateralCannotBeLiquidated


def test_grace_period_blocks_liquidation(crashed: Devnet) -> None:
    market = Market(crashed)
    now = int(market.rpc.call("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)
    grace = {
        s: view(market.rpc, market.pool, "getLiquidationGracePeriod(address)", ["uint40"], t)[0]
        for s, t in market.tokens.items()
    }
    assert grace.pop(GRACE_ASSET) > now
    assert all(until < now for until in grace.values()), grace  # the random borrowers' reserves
    for user in market.cases["grace_period"]:
        assert market.health(user) < WAD
        colls, debts = market.held(user)
        assert debts == [GRACE_ASSET]
        for coll in colls:
            assert (
                market.call_liquidation(coll, GRACE_ASSET, user, MAX_UINT)
                == LIQUIDATION_GRACE_SENTINEL_CHECK_FAILED
            )
