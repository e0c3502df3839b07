"""Capital-free liquidations: turn a block's opportunities into `LiquidationExecutor` calls.

For each opportunity the protocol says what to liquidate (`ExecutorLeg`); this module decides how
it is financed and sold, and what it is worth:

* what the seized collateral sells for on every configured fee tier is computed locally from the
  venue's pools as read at the block (`keeper.execution.venues`, `keeper.math.uniswap_v3`: exact,
  equal to QuoterV2); only a sale the book cannot price (a pool not followed, a swap leaving the
  ticks it knows) is asked of QuoterV2, in one Multicall3 round with anything else the book lacks
  (Morpho Blue's balance of a debt token, an Aave pool's flash premium); usually there is none;
* a block's sales of one collateral for one debt token land one after another, each moving the
  pool for the next: they are quoted as running totals in sending order, each credited what its
  total adds, on the pair's best fee tier for the whole sale;
* an Aave liquidation borrows from Morpho when Morpho holds enough (free), else from the pool
  itself (premium paid); a Morpho liquidation needs no loan (its liquidate callback);
* expected profit = swap output - debt repaid - flash fee, in the debt token; the swap's minimum
  output is the quote less ``max_slippage_bps`` and the contract's ``minProfit`` is what that
  minimum leaves, so a transaction that would lose reverts on chain instead. Opportunities whose
  worst case within the slippage bound does not pay are not sent.

Local swaps are the pool's own integer maths over its price, liquidity and initialized ticks, so
no round trip stands between screening and the first transaction; QuoterV2 (the pool's code in an
``eth_call``) stays the fallback, and what `keeper stress` uses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import IntEnum
from fractions import Fraction

import structlog

from keeper.chain.abi import contract
from keeper.chain.multicall import Call, Result, aggregate3
from keeper.chain.rpc import BlockTag, Rpc
from keeper.errors import UsageError
from keeper.execution.venues import VenueBook
from keeper.math.wad_ray import percent_mul_ceil
from keeper.protocols.base import ExecutorLeg, TokenPrice
from keeper.risk.opportunity import Opportunity, first_complete, value_wei

log = structlog.get_logger()

EXECUTOR = contract("keeper/LiquidationExecutor")
LIQUIDATE = EXECUTOR.fn("liquidate")
OWNER = EXECUTOR.fn("owner")
QUOTER = contract("uniswap_v3/IQuoterV2")
QUOTE_EXACT_INPUT_SINGLE = QUOTER.fn("quoteExactInputSingle")
QUOTE_BYTES = 4 * 32
"""(amountOut, sqrtPriceX96After, initializedTicksCrossed, gasEstimate): anything shorter is no quote."""
BALANCE_OF = contract("common/IERC20").fn("balanceOf")
FLASHLOAN_PREMIUM_TOTAL = contract("aave_v3_6/IPool").fn("FLASHLOAN_PREMIUM_TOTAL")
ZERO = "0x" + "00" * 20
NO_MARKET = {"loanToken": ZERO, "collateralToken": ZERO, "oracle": ZERO, "irm": ZERO, "lltv": 0}


class Route(IntEnum):
    """``LiquidationExecutor.Route``."""

    AAVE_MORPHO_FLASH = 0
    AAVE_AAVE_FLASH = 1
    MORPHO_CALLBACK = 2


ROUTE_GAS = {
    Route.AAVE_MORPHO_FLASH: 700_000,
    Route.AAVE_AAVE_FLASH: 750_000,
    Route.MORPHO_CALLBACK: 400_000,
}
"""Gas each route is sent with (before the executor's margin), instead of a simulation: measured on
the devnet at 497k / 531k / 263k for one liquidation plus its swap (README), with room for a user
with more reserves (the v3.6 bad-debt burn loops over them) and swaps crossing more ticks. Gas is
paid for what is used; a limit too low would revert, which the on-chain guards make cheap."""
BURN_GAS = 100_000
"""Per other debt reserve a v3.6 deficit liquidation burns (Aave: ~75k each in ``_burnBadDebt``)."""


@dataclass(frozen=True, slots=True)
class FlashSetup:
    executor: str
    router: str
    quoter: str
    fee_tiers: tuple[int, ...]
    morpho: str | None
    """A Morpho Blue to flash-borrow debt tokens from for Aave liquidations (free), if configured."""
    max_slippage_bps: int
    factory: str | None = None
    """The venue's Uniswap V3 factory: its pools are followed every block and sales on them computed
    locally (`keeper.execution.venues`); None asks QuoterV2 for every sale."""
    simulate: bool = False
    """Simulate each executor call before sending (``execution.simulate_flash``); else route gas limits."""


@dataclass(frozen=True, slots=True)
class FlashPlan:
    opportunity: Opportunity
    """With ``gross_profit_wei`` revalued from the swap: what the beneficiary receives, in wei."""
    call: tuple[str, bytes]
    route: Route
    fee: int
    swap_out: int
    expected_profit: int
    """Debt-token units the beneficiary should receive."""
    min_profit: int
    """What the contract requires (the swap at its minimum output), or it reverts."""

    burns: int = 0

    @property
    def gas(self) -> int:
        return ROUTE_GAS[self.route] + BURN_GAS * self.burns


@dataclass(frozen=True, slots=True)
class Refusal:
    opportunity: Opportunity
    reason: str


@dataclass(frozen=True, slots=True)
class _Asked:
    """Where one opportunity's answers sit in the round's results."""

    group: tuple[str, str]
    position: int
    """Its place among the block's sales of the same collateral for the same debt token."""
    lender_balance: int | None
    premium: int | None


@dataclass(frozen=True, slots=True)
class _Sales:
    """One (collateral, debt) pair's sales this block, in sending order: per fee tier, the result
    index of the quote for the running total sold so far."""

    prefix_quotes: dict[int, list[int]]


Answer = tuple[bool, bytes]
"""(success, return data) of one view, as `aggregate3` gives it."""


def _word(value: int) -> Answer:
    return True, value.to_bytes(32, "big")


def plan_calls(
    setup: FlashSetup,
    legs: Sequence[tuple[Opportunity, ExecutorLeg | None]],
    book: VenueBook | None = None,
) -> tuple[list[Call | Answer], list[_Asked | None], dict[tuple[str, str], _Sales]]:
    """The round's questions: per (collateral, debt) pair and fee tier, a quote for each running
    total of the block's sales (they land in this order and each moves the pool for the next);
    Morpho's debt-token balances; the Aave pools' flash premiums. Each is a call to make, or, when
    ``book`` (this block's pools, balances and premiums) knows it, its answer already, written as
    the view would return it: a sale inside a followed pool's known ticks is computed locally."""
    calls: list[Call | Answer] = []
    asked: list[_Asked | None] = []
    sales: dict[tuple[str, str], _Sales] = {}
    sold: dict[tuple[str, str], int] = {}
    balances: dict[str, int] = {}
    premiums: dict[str, int] = {}
    for opportunity, leg in legs:
        if leg is None:
            asked.append(None)
            continue
        quote = opportunity.quote
        group = (quote.collateral_asset, quote.debt_asset)
        pair = sales.setdefault(group, _Sales({fee: [] for fee in setup.fee_tiers}))
        sold[group] = sold.get(group, 0) + quote.collateral_seized
        for fee in setup.fee_tiers:
            pair.prefix_quotes[fee].append(len(calls))
            local = (
                None
                if book is None
                else book.sale(quote.collateral_asset, quote.debt_asset, fee, sold[group])
            )
            if local is not None:
                calls.append((True, local.to_bytes(32, "big") + bytes(3 * 32)))
                continue
            if book is not None and book.no_pool(quote.collateral_asset, quote.debt_asset, fee):
                calls.append((False, b""))  # what the quoter answers for a pool that does not exist
                continue
            request = {
                "tokenIn": quote.collateral_asset,
                "tokenOut": quote.debt_asset,
                "amountIn": sold[group],
                "fee": fee,
                "sqrtPriceLimitX96": 0,
            }
            calls.append(Call(setup.quoter, QUOTE_EXACT_INPUT_SINGLE.call(request), allow_failure=True))
        balance = premium = None
        if leg.kind == "aave":
            if setup.morpho is not None:
                if quote.debt_asset not in balances:
                    balances[quote.debt_asset] = len(calls)
                    held = None if book is None else book.lender_balances.get(quote.debt_asset)
                    asked_balance = Call(quote.debt_asset, BALANCE_OF.call(setup.morpho), allow_failure=True)
                    calls.append(asked_balance if held is None else _word(held))
                balance = balances[quote.debt_asset]
            if leg.target not in premiums:
                premiums[leg.target] = len(calls)
                known = None if book is None else book.premiums.get(leg.target)
                asked_premium = Call(leg.target, FLASHLOAN_PREMIUM_TOTAL.call(), allow_failure=True)
                calls.append(asked_premium if known is None else _word(known))
            premium = premiums[leg.target]
        asked.append(_Asked(group, len(pair.prefix_quotes[setup.fee_tiers[0]]) - 1, balance, premium))
    return calls, asked, sales


def decide(
    setup: FlashSetup,
    legs: Sequence[tuple[Opportunity, ExecutorLeg | None]],
    asked: Sequence[_Asked | None],
    sales: Mapping[tuple[str, str], _Sales],
    answers: Sequence[Answer],
    prices: Sequence[Mapping[str, TokenPrice]],
    native_asset: str,
    price_moves: Mapping[str, Fraction] | None = None,
) -> tuple[list[FlashPlan], list[Refusal]]:
    """Pure: each opportunity's route and swap, or why it is not sent; plans keep the given
    (sending) order, which the running-total quotes assume. Each pair sells on the one fee tier
    whose quote for the block's whole sale is best; each sale is credited what its running total
    adds to the one before it.

    ``price_moves`` (what-if only, `keeper stress`): token -> relative price move; each quoted output
    is scaled by (1 + move of the collateral) / (1 + move of the debt token), as if the pools had
    followed the shocked oracle with the depth they have now."""
    tiers = {group: _best_tier(setup, pair, answers) for group, pair in sales.items()}
    moves = price_moves or {}
    plans: list[FlashPlan] = []
    refused: list[Refusal] = []
    for (opportunity, leg), where in zip(legs, asked, strict=True):
        if leg is None or where is None:
            refused.append(Refusal(opportunity, "flash: the executor cannot take this liquidation (aTokens)"))
            continue
        fee = tiers[where.group]
        if fee is None:
            pair = "/".join(where.group)
            refused.append(Refusal(opportunity, f"flash: no {pair} pool quotes the seized collateral"))
            continue
        ratio = (1 + moves.get(where.group[0], Fraction(0))) / (1 + moves.get(where.group[1], Fraction(0)))
        running = [_scaled(_swap_output(answers[i]), ratio) for i in sales[where.group].prefix_quotes[fee]]
        before = running[where.position - 1] if where.position else 0
        after = running[where.position]
        if before is None or after is None:  # a running total the pool could not quote
            refused.append(Refusal(opportunity, "flash: the pool could not quote the block's sales"))
            continue
        out = after - before
        plan = _plan_one(setup, opportunity, leg, where, fee, out, answers, prices, native_asset)
        if isinstance(plan, str):
            refused.append(Refusal(opportunity, plan))
        else:
            plans.append(plan)
    return plans, refused


def _best_tier(setup: FlashSetup, pair: _Sales, answers: Sequence[Answer]) -> int | None:
    totals = [(_swap_output(answers[quotes[-1]]), fee) for fee, quotes in pair.prefix_quotes.items()]
    best = max(((out, fee) for out, fee in totals if out is not None), default=None)
    return None if best is None else best[1]


def _plan_one(
    setup: FlashSetup,
    opportunity: Opportunity,
    leg: ExecutorLeg,
    where: _Asked,
    fee: int,
    swap_out: int,
    answers: Sequence[Answer],
    prices: Sequence[Mapping[str, TokenPrice]],
    native_asset: str,
) -> FlashPlan | str:
    quote = opportunity.quote
    route, borrow_fee = Route.MORPHO_CALLBACK, 0
    if leg.kind == "aave":
        financed = _aave_route(leg, where, answers)
        if financed is None:
            return f"flash: neither Morpho nor the pool can lend {leg.debt_to_cover} of {quote.debt_asset}"
        route, borrow_fee = financed
    repaid = quote.debt_repaid + borrow_fee
    minimum_out = swap_out * (10_000 - setup.max_slippage_bps) // 10_000
    expected, worst = swap_out - repaid, minimum_out - repaid
    if worst <= 0:
        return (
            f"flash: not profitable within {setup.max_slippage_bps} bps slippage "
            f"(swap {swap_out}, repay {repaid} of {quote.debt_asset})"
        )
    book = first_complete(prices, (quote.debt_asset, native_asset))
    if book is None:
        return f"flash: no reference price for {quote.debt_asset} and the native asset in one source"
    debt_price, native = book[quote.debt_asset], book[native_asset]
    params = {
        "route": int(route),
        "pool": leg.target if leg.kind == "aave" else ZERO,
        "morpho": leg.target if leg.kind == "morpho" else (setup.morpho or ZERO),
        "router": setup.router,
        "user": quote.user,
        "collateral": quote.collateral_asset,
        "debt": quote.debt_asset,
        "debtToCover": leg.debt_to_cover,
        "market": dict(leg.market) if leg.market is not None else NO_MARKET,
        "seizedAssets": leg.seized_assets,
        "repaidShares": leg.repaid_shares,
        "fee": fee,
        "amountOutMinimum": minimum_out,
        "minProfit": worst,
    }
    # valued at the worst case within the slippage bound: the fee policy then never bids more gas
    # than the floor the contract enforces can pay for
    valued = replace(opportunity, gross_profit_wei=value_wei(worst, debt_price, native))
    return FlashPlan(
        valued,
        (setup.executor, LIQUIDATE.call(params)),
        route,
        fee,
        swap_out,
        expected,
        worst,
        leg.extra_burns,
    )


def _aave_route(leg: ExecutorLeg, where: _Asked, answers: Sequence[Answer]) -> tuple[Route, int] | None:
    """Morpho's free flash loan when it holds enough of the debt token, else the pool's (premium)
    when its reserve has the liquidity, else None."""
    if where.lender_balance is not None:
        ok, data = answers[where.lender_balance]
        if ok and len(data) >= 32 and BALANCE_OF.value(data) >= leg.debt_to_cover:
            return Route.AAVE_MORPHO_FLASH, 0
    if leg.lendable < leg.debt_to_cover:
        return None
    premium_bps = 0
    if where.premium is not None:
        ok, data = answers[where.premium]
        premium_bps = FLASHLOAN_PREMIUM_TOTAL.value(data) if ok and len(data) >= 32 else 10_000
    return Route.AAVE_AAVE_FLASH, percent_mul_ceil(leg.debt_to_cover, premium_bps)


def _scaled(amount: int | None, ratio: Fraction) -> int | None:
    return amount if amount is None or ratio == 1 else amount * ratio.numerator // ratio.denominator


def _swap_output(answer: Answer) -> int | None:
    ok, data = answer
    if not ok or len(data) < QUOTE_BYTES:
        return None  # no pool on that tier, or the swap cannot fill
    amount: int = QUOTE_EXACT_INPUT_SINGLE.decode(data)["amountOut"]
    return amount if amount > 0 else None


async def check_flash_setup(rpc: Rpc, setup: FlashSetup, owner: str) -> None:
    """Before the first block: code at the executor, router and quoter, and the executor owned by the
    signer; otherwise every flash transaction would revert (``NotOwner``) or, sent to an address
    without code, "succeed" doing nothing. One line each (`UsageError`)."""
    for label, address in (
        ("execution.executor", setup.executor),
        ("venues[0].swap_router", setup.router),
        ("venues[0].quoter", setup.quoter),
    ):
        code = await rpc.request("eth_getCode", [address, "latest"])
        if code in ("0x", "0x0", None):
            raise UsageError(f"{label}: no contract at {address} on this chain")
    (answer,) = await aggregate3(rpc, [Call(setup.executor, OWNER.call(), allow_failure=True)], "latest")
    if not answer.success or len(answer.data) < 32:
        raise UsageError(f"execution.executor: {setup.executor} is not a LiquidationExecutor (no owner())")
    found = OWNER.value(answer.data)
    if found.lower() != owner.lower():
        raise UsageError(
            f"execution.executor: {setup.executor} is owned by {found}, not the signer {owner}: "
            "deploy one with `keeper executor deploy --config F`"
        )


async def plan_flash(
    rpc: Rpc,
    setup: FlashSetup,
    legs: Sequence[tuple[Opportunity, ExecutorLeg | None]],
    prices: Sequence[Mapping[str, TokenPrice]],
    native_asset: str,
    block: BlockTag,
    price_moves: Mapping[str, Fraction] | None = None,
    book: VenueBook | None = None,
) -> tuple[list[FlashPlan], list[Refusal]]:
    """What ``book`` does not answer, in one batched round at ``block`` (none when it answers all),
    then `decide`."""
    questions, asked, sales = plan_calls(setup, legs, book)
    calls = [q for q in questions if isinstance(q, Call)]
    log.debug("flash_planned", questions=len(questions), asked=len(calls))
    results = iter(await aggregate3(rpc, calls, block) if calls else [])
    answers = [q if not isinstance(q, Call) else _answer(next(results)) for q in questions]
    return decide(setup, legs, asked, sales, answers, prices, native_asset, price_moves)


def _answer(result: Result) -> Answer:
    return result.success, result.data
