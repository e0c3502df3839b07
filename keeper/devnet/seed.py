"""Seed borrowers with a realistic spread of health factors, liquidity suppliers and the keeper.

Planning is pure (amounts from target health factors, in the protocols' integer units);
``seed_txs`` turns plans into transactions for the batched executor.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from fractions import Fraction

from .abi import encode_call
from .morpho import MARKET_PARAMS, MorphoMarket
from .rpc import Tx
from .spec import ASSETS, EMODE, FEED_DECIMALS, AssetSpec, asset

MAX_UINT = 2**256 - 1
NEAR_LIQUIDATION_SHARE = 0.3
"""Share of borrowers seeded within 5 % of their liquidation threshold (where it is reachable)."""


@dataclass(frozen=True)
class AaveBorrowerPlan:
    user: str
    collateral: tuple[tuple[str, int], ...]  # (symbol, amount in token units)
    debt_symbol: str
    debt_amount: int
    emode: int


@dataclass(frozen=True)
class MorphoBorrowerPlan:
    user: str
    market: int  # index into the deployed markets
    collateral_amount: int
    borrow_amount: int


AAVE_PROFILES: tuple[tuple[float, tuple[str, ...], tuple[str, ...], int], ...] = (
    # (weight, collateral symbols, candidate debt symbols, eMode category)
    (0.45, ("WETH",), ("USDC", "DAI"), 0),
    (0.20, ("WBTC",), ("USDC", "WETH"), 0),
    (0.15, ("WETH", "WBTC"), ("USDC",), 0),
    (0.20, ("USDC",), ("DAI",), EMODE.category_id),
)


def target_health(rng: random.Random, floor: Fraction) -> Fraction:
    """A health factor target: some just above liquidation, most comfortably healthy."""
    near = Fraction(105, 100)
    if floor < near and rng.random() < NEAR_LIQUIDATION_SHARE:
        low, high = floor, near
    else:
        low, high = max(floor, near), Fraction(3)
    return low + (high - low) * Fraction(rng.randrange(10_000), 10_000)


def usd_to_amount(usd: int, spec: AssetSpec) -> int:
    return int(usd * 10**spec.decimals * 10**FEED_DECIMALS // spec.price_usd_8)


def base_value(amount: int, spec: AssetSpec) -> int:
    """Value in Aave's base currency (USD, 8 decimals), rounded down as GenericLogic does."""
    return int(amount * spec.price_usd_8 // 10**spec.decimals)


def plan_aave(users: list[str], rng: random.Random) -> list[AaveBorrowerPlan]:
    weights = [p[0] for p in AAVE_PROFILES]
    plans = []
    for user in users:
        _, coll_symbols, debt_symbols, emode = rng.choices(AAVE_PROFILES, weights)[0]
        usd = int(min(max(rng.lognormvariate(9.5, 1.2), 500), 2_000_000))
        collateral = tuple((s, usd_to_amount(usd // len(coll_symbols), asset(s))) for s in coll_symbols)
        ltv_sum = lt_sum = 0
        for symbol, amount in collateral:
            spec = asset(symbol)
            value = base_value(amount, spec)
            ltv, lt = (
                (EMODE.ltv_bps, EMODE.liquidation_threshold_bps)
                if emode
                else (spec.ltv_bps, spec.liquidation_threshold_bps)
            )
            ltv_sum += value * ltv
            lt_sum += value * lt
        floor = Fraction(lt_sum, ltv_sum) * Fraction(1002, 1000)  # borrowable under LTV, with margin
        health = target_health(rng, floor)
        debt = asset(rng.choice(debt_symbols))
        debt_base = Fraction(lt_sum, 10_000) / health
        debt_amount = int(debt_base * 10**debt.decimals / debt.price_usd_8)
        plans.append(AaveBorrowerPlan(user, collateral, debt.symbol, debt_amount, emode))
    return plans


def morpho_oracle_price(loan: AssetSpec, collateral: AssetSpec) -> int:
    """What the devnet's FeedRatioOracle returns at the seeded feed prices."""
    scale = 10 ** (36 + loan.decimals - collateral.decimals)
    return int(scale * collateral.price_usd_8 // loan.price_usd_8)


def plan_morpho(
    users: list[str], markets: tuple[MorphoMarket, ...], rng: random.Random
) -> list[MorphoBorrowerPlan]:
    plans = []
    for user in users:
        index = rng.randrange(len(markets))
        market = markets[index]
        loan, coll = asset(market.loan), asset(market.collateral)
        usd = int(min(max(rng.lognormvariate(9.5, 1.2), 500), 2_000_000))
        coll_amount = usd_to_amount(usd, coll)
        price = morpho_oracle_price(loan, coll)
        max_borrow = coll_amount * price // 10**36 * market.lltv // 10**18
        health = target_health(rng, Fraction(1005, 1000))
        plans.append(MorphoBorrowerPlan(user, index, coll_amount, int(max_borrow / health)))
    return plans


def aave_borrower_txs(plan: AaveBorrowerPlan, pool: str, tokens: dict[str, str]) -> list[Tx]:
    user = plan.user
    txs = []
    for symbol, amount in plan.collateral:
        txs += aave_supply_txs(user, pool, tokens[symbol], amount, f"aave supply {symbol} for {user}")
    if plan.emode:
        txs.append(Tx(user, pool, encode_call("setUserEMode(uint8)", plan.emode), "setUserEMode"))
    txs.append(
        aave_borrow_tx(
            user,
            pool,
            tokens[plan.debt_symbol],
            plan.debt_amount,
            f"aave borrow {plan.debt_symbol} for {user}",
        )
    )
    return txs


def aave_supply_txs(user: str, pool: str, token: str, amount: int, label: str) -> list[Tx]:
    """Mint ``amount`` of the devnet token to ``user``, approve the pool and supply it for ``user``."""
    return [
        Tx(user, token, encode_call("mint(uint256)", amount), f"mint {token}"),
        Tx(user, token, encode_call("approve(address,uint256)", pool, MAX_UINT), "approve"),
        Tx(user, pool, encode_call("supply(address,uint256,address,uint16)", token, amount, user, 0), label),
    ]


def aave_borrow_tx(user: str, pool: str, token: str, amount: int, label: str) -> Tx:
    """A variable-rate borrow (interest rate mode 2) for ``user``."""
    borrow = encode_call("borrow(address,uint256,uint256,uint16,address)", token, amount, 2, 0, user)
    return Tx(user, pool, borrow, label)


def morpho_borrower_txs(plan: MorphoBorrowerPlan, morpho: str, markets: tuple[MorphoMarket, ...]) -> list[Tx]:
    user, market = plan.user, markets[plan.market]
    token = market.collateral_token
    supply = encode_call(
        f"supplyCollateral({MARKET_PARAMS},uint256,address,bytes)",
        market.params,
        plan.collateral_amount,
        user,
        b"",
    )
    borrow = encode_call(
        f"borrow({MARKET_PARAMS},uint256,uint256,address,address)",
        market.params,
        plan.borrow_amount,
        0,
        user,
        user,
    )
    return [
        Tx(user, token, encode_call("mint(uint256)", plan.collateral_amount), "mint collateral"),
        Tx(user, token, encode_call("approve(address,uint256)", morpho, MAX_UINT), "approve"),
        Tx(user, morpho, supply, f"morpho supplyCollateral for {user}"),
        Tx(user, morpho, borrow, f"morpho borrow for {user}"),
    ]


def liquidity_txs(
    aave_plans: list[AaveBorrowerPlan],
    morpho_plans: list[MorphoBorrowerPlan],
    aave_supplier: str,
    morpho_supplier: str,
    pool: str,
    morpho: str,
    markets: tuple[MorphoMarket, ...],
    tokens: dict[str, str],
) -> list[Tx]:
    """Suppliers deposit enough that borrowing leaves utilization realistic (~60-75 %)."""
    aave_need: dict[str, int] = defaultdict(int)
    for a in aave_plans:
        aave_need[a.debt_symbol] += a.debt_amount
    txs: list[Tx] = []
    for spec in ASSETS:
        amount = aave_need[spec.symbol] * 3 // 2 + usd_to_amount(1_000_000, spec)
        txs += _supply_txs(
            aave_supplier,
            tokens[spec.symbol],
            pool,
            amount,
            encode_call(
                "supply(address,uint256,address,uint16)", tokens[spec.symbol], amount, aave_supplier, 0
            ),
        )
    morpho_need: dict[int, int] = defaultdict(int)
    for m in morpho_plans:
        morpho_need[m.market] += m.borrow_amount
    for index, market in enumerate(markets):
        amount = morpho_need[index] * 4 // 3 + usd_to_amount(100_000, asset(market.loan))
        call = encode_call(
            f"supply({MARKET_PARAMS},uint256,uint256,address,bytes)",
            market.params,
            amount,
            0,
            morpho_supplier,
            b"",
        )
        txs += _supply_txs(morpho_supplier, market.loan_token, morpho, amount, call)
    return txs


def _supply_txs(supplier: str, token: str, spender: str, amount: int, supply_call: bytes) -> list[Tx]:
    return [
        Tx(supplier, token, encode_call("mint(uint256)", amount), "mint liquidity"),
        Tx(supplier, token, encode_call("approve(address,uint256)", spender, MAX_UINT), "approve"),
        Tx(supplier, spender, supply_call, f"supply liquidity {token}"),
    ]


KEEPER_INVENTORY_USD = 100_000_000


def inventory_txs(
    minter: str,
    holders: list[str],
    tokens: dict[str, str],
    spenders: list[str],
    specs: tuple[AssetSpec, ...] = ASSETS,
) -> list[Tx]:
    """Every debt asset in the keeper's (and a competitor's) wallet, approved to every protocol
    contract that pulls it: inventory-mode liquidations work from the first block."""
    funding = [
        Tx(
            minter,
            tokens[spec.symbol],
            encode_call("mint(address,uint256)", holder, usd_to_amount(KEEPER_INVENTORY_USD, spec)),
            f"fund {holder} {spec.symbol}",
        )
        for holder in holders
        for spec in specs
    ]
    approvals = [
        Tx(holder, tokens[spec.symbol], encode_call("approve(address,uint256)", spender, MAX_UINT), "approve")
        for holder in holders
        for spec in specs
        for spender in spenders
    ]
    return funding + approvals


CLOSER_EVERY = 50
"""Every 50th borrower later repays everything and withdraws its collateral: a past position a
backfill must still discover, and a live keeper must stop counting as debt."""


def closers(plans: list[AaveBorrowerPlan] | list[MorphoBorrowerPlan]) -> list[str]:
    return [plan.user for plan in plans[CLOSER_EVERY - 1 :: CLOSER_EVERY]]


def aave_close_txs(plan: AaveBorrowerPlan, pool: str, tokens: dict[str, str]) -> list[Tx]:
    """Repay the whole debt (minting a margin for interest) then withdraw every collateral."""
    user, debt_token = plan.user, tokens[plan.debt_symbol]
    margin = plan.debt_amount // 100 + 1
    txs = [
        Tx(user, debt_token, encode_call("mint(uint256)", margin), "mint repay margin"),
        Tx(user, debt_token, encode_call("approve(address,uint256)", pool, MAX_UINT), "approve"),
        Tx(
            user,
            pool,
            encode_call("repay(address,uint256,uint256,address)", debt_token, MAX_UINT, 2, user),
            f"aave repay all for {user}",
        ),
    ]
    txs += [
        Tx(
            user,
            pool,
            encode_call("withdraw(address,uint256,address)", tokens[symbol], MAX_UINT, user),
            f"aave withdraw {symbol} for {user}",
        )
        for symbol, _ in plan.collateral
    ]
    return txs


def morpho_close_txs(
    plan: MorphoBorrowerPlan, morpho: str, markets: tuple[MorphoMarket, ...], borrow_shares: int
) -> list[Tx]:
    """Repay every borrow share (exact, so no dust remains) then withdraw all collateral."""
    user, market = plan.user, markets[plan.market]
    margin = plan.borrow_amount // 100 + 1
    repay = encode_call(
        f"repay({MARKET_PARAMS},uint256,uint256,address,bytes)", market.params, 0, borrow_shares, user, b""
    )
    withdraw = encode_call(
        f"withdrawCollateral({MARKET_PARAMS},uint256,address,address)",
        market.params,
        plan.collateral_amount,
        user,
        user,
    )
    return [
        Tx(user, market.loan_token, encode_call("mint(uint256)", margin), "mint repay margin"),
        Tx(user, market.loan_token, encode_call("approve(address,uint256)", morpho, MAX_UINT), "approve"),
        Tx(user, morpho, repay, f"morpho repay all for {user}"),
        Tx(user, morpho, withdraw, f"morpho withdraw collateral for {user}"),
    ]
