"""Named "case" borrowers on the v3.6 devnet: each sits, after a -25 % WETH crash, in one branch of
v3.6's `LiquidationLogic.executeLiquidationCall` / `ValidationLogic.validateLiquidationCall`.

Positions are fixed in USD at the seeded feed prices (WETH $2000 -> $1500 after the crash), so
every case is healthy (HF > 1) when seeded and lands where its name says after the crash; the
close-factor and dust rules compare per-reserve values with `MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD`
(2000e8) and `MIN_LEFTOVER_BASE` (1000e8) in the oracle's base currency, USD with 8 decimals.
Planning is pure (`plan_cases`, `health`); the `*_txs` functions turn plans into transactions for
the batched executor.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction

from .aave_market import Admin
from .abi import encode_call
from .rpc import Tx
from .seed import aave_borrow_tx, aave_supply_txs, usd_to_amount
from .spec import CASE_EMODE, CASE_EMODE_BORROWABLE, EMODE, asset

MAX_GRACE_PERIOD_S = 4 * 3600
"""`PoolConfigurator.MAX_GRACE_PERIOD`: the longest grace `setReservePause` accepts."""
GRACE_ASSET = "GRACE"
CLOSE_FACTOR_THRESHOLD_BASE = 2000 * 10**8
MIN_LEFTOVER_BASE = 1000 * 10**8
CRASHED = "WETH"
CRASH = Fraction(3, 4)  # the -25 % move the cases are planned for


@dataclass(frozen=True)
class CaseSpec:
    name: str
    collateral_usd: tuple[tuple[str, int], ...]
    debt_usd: tuple[tuple[str, int], ...]
    emode: int = 0


def _case(name: str, collateral: dict[str, int], debt: dict[str, int], emode: int = 0) -> CaseSpec:
    return CaseSpec(name, tuple(collateral.items()), tuple(debt.items()), emode)


CASES: tuple[CaseSpec, ...] = (
    # Both reserves under $2000 after the crash, 0.95 < HF < 1: the whole reserve debt (100 %).
    _case("close_factor_full_small", {"WETH": 2_400}, {"USDC": 1_523}),
    _case("close_factor_full_small", {"WETH": 2_000}, {"DAI": 1_290}),
    _case("close_factor_full_small", {"WETH": 2_600}, {"USDC": 1_650}),
    # Both reserves >= $2000, 0.95 < HF < 1: half of the position's whole debt (the second user's
    # USDC leg may repay 6,350 of its 9,000: 50 % of all debt, not of that reserve's).
    _case("close_factor_half", {"WETH": 20_000}, {"USDC": 12_700}),
    _case("close_factor_half", {"WETH": 20_000}, {"USDC": 9_000, "DAI": 3_700}),
    _case("close_factor_half", {"WETH": 40_000, "WBTC": 6_000}, {"DAI": 29_850}),
    # Both reserves >= $2000, HF <= 0.95: 100 %, and the seized collateral stays below the balance.
    _case("close_factor_full_deep", {"WETH": 20_000}, {"USDC": 13_750}),
    _case("close_factor_full_deep", {"WETH": 50_000}, {"DAI": 33_500}),
    # Half of all debt leaves < $1000 of the first debt reserve: uint max reverts MustNotLeaveDust;
    # a smaller debtToCover, or the other debt reserve (under half: repaid whole), succeeds.
    _case("dust_debt", {"WETH": 19_000}, {"USDC": 6_500, "DAI": 5_500}),
    _case("dust_debt", {"WETH": 30_000}, {"DAI": 10_200, "USDC": 8_800}),
    # Half of all debt seizes all but < $1000 of WETH: uint max on (WETH, debt) reverts
    # MustNotLeaveDust; a smaller debtToCover, or the WBTC collateral, succeeds.
    _case("dust_collateral", {"WETH": 14_667, "WBTC": 13_900}, {"USDC": 20_000}),
    _case("dust_collateral", {"WETH": 21_400, "WBTC": 21_150}, {"DAI": 30_000}),
    # Collateral worth less than debt (+ bonus) after the crash: a liquidation seizes all of it and
    # the rest of the debt becomes deficit; with two debt reserves `_burnBadDebt` writes off the other.
    _case("deficit", {"WETH": 10_000}, {"USDC": 7_800}),
    _case("deficit", {"WETH": 10_000}, {"USDC": 7_300, "DAI": 500}),
    _case("deficit", {"WETH": 2_000}, {"DAI": 1_560}),
    # In eMode 2, holding EMC: reserve LT 0, collateral through the category (see `CASE_ASSETS`).
    _case("lt_zero", {"EMC": 3_000, "WETH": 10_000}, {"USDC": 9_260}, CASE_EMODE.category_id),
    _case("lt_zero", {"EMC": 2_000, "WETH": 20_000}, {"USDC": 16_000}, CASE_EMODE.category_id),
    # Liquidatable by HF after the crash, but GRACE is in its liquidation grace period.
    _case("grace_period", {"WETH": 10_000}, {GRACE_ASSET: 7_000}),
    _case("grace_period", {"WETH": 4_000}, {GRACE_ASSET: 2_600}),
)


@dataclass(frozen=True)
class CasePlan:
    case: str
    user: str
    collateral: tuple[tuple[str, int], ...]  # (symbol, amount in token units)
    debts: tuple[tuple[str, int], ...]
    emode: int


def plan_cases(users: list[str]) -> list[CasePlan]:
    """One user per `CASES` entry, in order."""
    if len(users) != len(CASES):
        raise ValueError(f"{len(CASES)} case borrowers, {len(users)} addresses")
    return [
        CasePlan(
            spec.name,
            user,
            tuple((s, usd_to_amount(usd, asset(s))) for s, usd in spec.collateral_usd),
            tuple((s, usd_to_amount(usd, asset(s))) for s, usd in spec.debt_usd),
            spec.emode,
        )
        for spec, user in zip(CASES, users, strict=True)
    ]


def cases_by_name(plans: Iterable[CasePlan]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for plan in plans:
        out[plan.case].append(plan.user)
    return dict(out)


def prices(crashed: bool) -> dict[str, Fraction]:
    """Feed prices (base units) of every symbol the cases use, before or after the crash."""
    symbols = {s for spec in CASES for s, _ in spec.collateral_usd + spec.debt_usd}
    out = {s: Fraction(asset(s).price_usd_8) for s in symbols}
    if crashed:
        out[CRASHED] *= CRASH
    return out


def value(symbol: str, amount: int, price: Mapping[str, Fraction]) -> Fraction:
    """Base-currency value (8 decimals), unrounded: planning margins are far above a wei."""
    return Fraction(amount, 10 ** asset(symbol).decimals) * price[symbol]


def _ltv_lt(symbol: str, emode: int) -> tuple[int, int]:
    spec = asset(symbol)
    for category in (EMODE, CASE_EMODE):
        if emode == category.category_id and spec.emode_category == emode:
            return category.ltv_bps, category.liquidation_threshold_bps
    return spec.ltv_bps, spec.liquidation_threshold_bps


def health(plan: CasePlan, price: Mapping[str, Fraction]) -> Fraction:
    weighted = sum(value(s, a, price) * _ltv_lt(s, plan.emode)[1] for s, a in plan.collateral)
    return Fraction(weighted) / 10_000 / total_debt(plan, price)


def borrow_capacity(plan: CasePlan, price: Mapping[str, Fraction]) -> Fraction:
    return Fraction(sum(value(s, a, price) * _ltv_lt(s, plan.emode)[0] for s, a in plan.collateral), 10_000)


def total_debt(plan: CasePlan, price: Mapping[str, Fraction]) -> Fraction:
    return Fraction(sum(value(s, a, price) for s, a in plan.debts))


def case_borrower_txs(plan: CasePlan, pool: str, tokens: Mapping[str, str]) -> list[Tx]:
    """eMode first (EMC is collateral only inside its category), then supplies, then borrows."""
    user = plan.user
    txs = []
    if plan.emode:
        txs.append(Tx(user, pool, encode_call("setUserEMode(uint8)", plan.emode), f"setUserEMode {user}"))
    for symbol, amount in plan.collateral:
        label = f"aave supply {symbol} for case {plan.case} {user}"
        txs += aave_supply_txs(user, pool, tokens[symbol], amount, label)
    for symbol, amount in plan.debts:
        label = f"aave borrow {symbol} for case {plan.case} {user}"
        txs.append(aave_borrow_tx(user, pool, tokens[symbol], amount, label))
    return txs


def case_liquidity_txs(
    plans: Iterable[CasePlan], supplier: str, pool: str, tokens: Mapping[str, str]
) -> list[Tx]:
    """1.5x what the cases borrow, so the random borrowers' reserves stay about as utilized;
    GRACE, lent to nobody else, gets a $100k floor."""
    need: dict[str, int] = defaultdict(int)
    for plan in plans:
        for symbol, amount in plan.debts:
            need[symbol] += amount
    txs = []
    for symbol in sorted(need):
        amount = need[symbol] * 3 // 2
        if symbol == GRACE_ASSET:
            amount += usd_to_amount(100_000, asset(symbol))
        txs += aave_supply_txs(supplier, pool, tokens[symbol], amount, f"supply case liquidity {symbol}")
    return txs


def case_emode_txs(admin: Admin, configurator: str, tokens: Mapping[str, str]) -> list[Tx]:
    """eMode 2: EMC its only collateral (reserve LT 0 stays: listing it so needs no suppliers yet),
    USDC borrowable in it."""
    txs = [
        admin.tx(
            configurator,
            "setEModeCategory(uint8,uint16,uint16,uint16,string)",
            CASE_EMODE.category_id,
            CASE_EMODE.ltv_bps,
            CASE_EMODE.liquidation_threshold_bps,
            CASE_EMODE.liquidation_bonus_bps,
            CASE_EMODE.label,
        ),
        admin.tx(
            configurator,
            "setAssetCollateralInEMode(address,uint8,bool)",
            tokens["EMC"],
            CASE_EMODE.category_id,
            True,
            label="setAssetCollateralInEMode EMC",
        ),
    ]
    txs += [
        admin.tx(
            configurator,
            "setAssetBorrowableInEMode(address,uint8,bool)",
            tokens[symbol],
            CASE_EMODE.category_id,
            True,
            label=f"setAssetBorrowableInEMode {symbol}",
        )
        for symbol in CASE_EMODE_BORROWABLE
    ]
    return txs


def grace_period_txs(admin: str, configurator: str, tokens: Mapping[str, str]) -> list[Tx]:
    """Pause GRACE, then unpause it with the longest grace period: for 4 h no liquidation may
    touch it (`LiquidationGraceSentinelCheckFailed`), whatever the health factor."""
    token = tokens[GRACE_ASSET]
    return [
        Tx(admin, configurator, encode_call("setReservePause(address,bool)", token, True), "pause GRACE"),
        Tx(
            admin,
            configurator,
            encode_call("setReservePause(address,bool,uint40)", token, False, MAX_GRACE_PERIOD_S),
            "unpause GRACE with a liquidation grace period",
        ),
    ]
