"""`keeper.execution.flash.decide` on made-up answers: routes, running totals, refusals, valuation."""

from __future__ import annotations

from fractions import Fraction

from eth_abi.abi import encode

from keeper.execution.flash import (
    BURN_GAS,
    ROUTE_GAS,
    FlashSetup,
    Route,
    decide,
    plan_calls,
)
from keeper.execution.venues import Pool, PoolBook, VenueBook
from keeper.math.uniswap_v3 import PoolState, exact_input
from keeper.protocols.base import ExecutorLeg, LiquidationQuote, TokenPrice
from keeper.risk.opportunity import Opportunity

WETH, USDC, DAI = "0x" + "e1" * 20, "0x" + "c1" * 20, "0x" + "d1" * 20
POOL, MORPHO = "0x" + "aa" * 20, "0x" + "bb" * 20
SETUP = FlashSetup("0x" + "ee" * 20, "0x" + "01" * 20, "0x" + "02" * 20, (500, 3000), MORPHO, 100)
BOOK = {WETH: TokenPrice(2_000 * 10**8, 18), USDC: TokenPrice(10**8, 6), DAI: TokenPrice(10**8, 18)}


def opportunity(user: str, repaid: int, seized: int, debt: str = USDC) -> Opportunity:
    address = "0x" + user.encode().hex().rjust(40, "0")  # a readable name as an address
    quote = LiquidationQuote("aave_v3", POOL, address, WETH, debt, repaid, seized)
    return Opportunity("aave", quote, 1)


def aave_leg(amount: int, lendable: int = 10**30, burns: int = 0) -> ExecutorLeg:
    return ExecutorLeg("aave", POOL, debt_to_cover=amount, lendable=lendable, extra_burns=burns)


def quoted(out: int) -> tuple[bool, bytes]:
    return True, encode(["uint256", "uint160", "uint32", "uint256"], [out, 0, 0, 0])


def answers_for(
    calls: int, outputs: dict[int, tuple[bool, bytes]], rest: tuple[bool, bytes]
) -> list[tuple[bool, bytes]]:
    return [outputs.get(i, rest) for i in range(calls)]


def test_running_totals_credit_each_sale_what_it_adds_on_the_best_tier() -> None:
    legs = [
        (opportunity("a", 1_000 * 10**6, 10**18), aave_leg(1_001 * 10**6)),
        (opportunity("b", 1_000 * 10**6, 10**18), aave_leg(1_001 * 10**6)),
    ]
    calls, asked, sales = plan_calls(SETUP, legs)
    (pair,) = sales.values()
    # tier 500: 1,900 then 3,700 in total; tier 3000: 1,950 then 3,600: 500 wins on the whole sale
    outputs = {
        pair.prefix_quotes[500][0]: quoted(1_900 * 10**6),
        pair.prefix_quotes[500][1]: quoted(3_700 * 10**6),
        pair.prefix_quotes[3000][0]: quoted(1_950 * 10**6),
        pair.prefix_quotes[3000][1]: quoted(3_600 * 10**6),
    }
    balance = encode(["uint256"], [10**30])
    answers = answers_for(len(calls), outputs, (True, balance))
    plans, refused = decide(SETUP, legs, asked, sales, answers, [BOOK], WETH)
    assert not refused and [p.fee for p in plans] == [500, 500]
    assert [p.swap_out for p in plans] == [1_900 * 10**6, 1_800 * 10**6]
    assert all(p.route is Route.AAVE_MORPHO_FLASH for p in plans)  # Morpho holds enough: free
    first = plans[0]
    assert first.expected_profit == 900 * 10**6
    assert first.min_profit == 1_900 * 10**6 * 99 // 100 - 1_000 * 10**6  # 1 % under the quote
    # valued at the floor, in wei: 881 USDC at 2,000 USD per WETH
    assert first.opportunity.gross_profit_wei == first.min_profit * 10**12 // 2_000


def test_no_lender_no_pool_and_no_margin_are_refused_with_the_reason() -> None:
    legs = [
        (opportunity("poor", 1_000 * 10**6, 10**18), aave_leg(1_001 * 10**6, lendable=0)),
        (opportunity("thin", 1_000 * 10**6, 10**18, DAI), aave_leg(1_001 * 10**6)),
        (opportunity("dear", 1_000 * 10**6, 10**18), aave_leg(1_001 * 10**6)),
        (opportunity("aTokens", 1, 1), None),
    ]
    calls, asked, sales = plan_calls(SETUP, legs)
    usdc = sales[(WETH, USDC)].prefix_quotes
    outputs = {usdc[500][0]: quoted(2_000 * 10**6), usdc[500][1]: quoted(3_005 * 10**6)}
    empty = encode(["uint256"], [0])  # Morpho holds none of anything; quotes not given revert
    answers = [outputs.get(i, (False, b"")) for i in range(len(calls))]
    for i, (ok, _) in enumerate(answers):
        if (
            not ok
            and all(i not in q for q in usdc.values())
            and all(i not in q for q in sales[(WETH, DAI)].prefix_quotes.values())
        ):
            answers[i] = (True, empty)
    plans, refused = decide(SETUP, legs, asked, sales, answers, [BOOK], WETH)
    reasons = {bytes.fromhex(r.opportunity.quote.user[2:]).lstrip(b"\0").decode(): r.reason for r in refused}
    assert plans == []
    assert "neither Morpho nor the pool can lend" in reasons["poor"]
    assert "no " in reasons["thin"] and "pool quotes" in reasons["thin"]
    assert "not profitable within 100 bps" in reasons["dear"]  # 1,005 USDC for a 1,000 repayment
    assert "aTokens" in reasons["aTokens"]


def test_a_deficit_liquidation_gets_gas_for_each_debt_it_burns() -> None:
    legs = [(opportunity("a", 1_000 * 10**6, 10**18), aave_leg(1_001 * 10**6, burns=3))]
    calls, asked, sales = plan_calls(SETUP, legs)
    answers = [quoted(1_900 * 10**6) for _ in calls]
    answers[-2] = (True, encode(["uint256"], [0]))  # Morpho holds no USDC: the pool lends
    answers[-1] = (True, encode(["uint256"], [5]))  # at 5 bps
    (plan,), _ = decide(SETUP, legs, asked, sales, answers, [BOOK], WETH)
    assert plan.route is Route.AAVE_AAVE_FLASH
    assert plan.expected_profit == 1_900 * 10**6 - 1_000 * 10**6 - (1_001 * 10**6 * 5 + 9_999) // 10_000
    assert plan.gas == ROUTE_GAS[Route.AAVE_AAVE_FLASH] + 3 * BURN_GAS


def test_a_what_if_price_move_scales_each_sale_by_the_collateral_to_debt_ratio() -> None:
    """`keeper stress`: WETH -25 % and USDC +25 % against today's pools: each running total is
    worth 0.75 / 1.25 of its quote, so each sale is credited the difference of the scaled totals."""
    legs = [
        (opportunity("a", 500 * 10**6, 10**18), aave_leg(501 * 10**6)),
        (opportunity("b", 500 * 10**6, 10**18), aave_leg(501 * 10**6)),
    ]
    calls, asked, sales = plan_calls(SETUP, legs)
    (pair,) = sales.values()
    outputs = {
        pair.prefix_quotes[500][0]: quoted(2_000 * 10**6 + 1),
        pair.prefix_quotes[500][1]: quoted(3_999 * 10**6),
    }
    answers = answers_for(len(calls), outputs, (True, encode(["uint256"], [10**30])))
    moves = {WETH: Fraction(-1, 4), USDC: Fraction(1, 4)}
    plans, refused = decide(SETUP, legs, asked, sales, answers, [BOOK], WETH, moves)
    assert refused == []
    first, total = (2_000 * 10**6 + 1) * 3 // 5, 3_999 * 10**6 * 3 // 5
    assert [p.swap_out for p in plans] == [first, total - first]
    unmoved, _ = decide(SETUP, legs, asked, sales, answers, [BOOK], WETH)
    assert [p.swap_out for p in unmoved] == [2_000 * 10**6 + 1, 1_999 * 10**6 - 1]


def test_a_venue_book_answers_every_question_so_nothing_is_asked() -> None:
    """Sales on a followed pool are computed locally (and equal `exact_input`), a tier the factory
    has no pool for is answered "no quote" without asking, and Morpho's balance and the premium come
    from the book: the round is empty and the plan is the one the answers give."""
    a, b = sorted((WETH.lower(), USDC.lower()))
    full_range = {-887270: 10**22, 887270: -(10**22)}
    state = PoolState(2**96 // 1000, -138163, 10**22, 500, 10, full_range, (-347, 346))
    pools = PoolBook(pools={(a, b, 500): Pool("0x" + "99" * 20, a, b, 500, 10)}, searched=frozenset({a, b}))
    pools.states["0x" + "99" * 20] = state
    book = VenueBook(pools, lender_balances={USDC: 10**30}, premiums={POOL: 5})
    legs = [(opportunity("a", 1_000, 10**6), aave_leg(1_001))]
    questions, asked, sales = plan_calls(SETUP, legs, book)
    assert [q for q in questions if not isinstance(q, tuple)] == []
    plans, refused = decide(SETUP, legs, asked, sales, questions, [BOOK], WETH)
    zero_for_one = WETH.lower() == a
    assert refused == [] and plans[0].swap_out == exact_input(state, zero_for_one, 10**6)
    assert plans[0].fee == 500 and plans[0].route is Route.AAVE_MORPHO_FLASH
    unknown = VenueBook(PoolBook())  # nothing followed: every quote, the balance and the premium asked
    questions, _, _ = plan_calls(SETUP, legs, unknown)
    assert len([q for q in questions if not isinstance(q, tuple)]) == len(SETUP.fee_tiers) + 2


def test_sales_still_in_flight_are_sold_first() -> None:
    """Two WETH already on their way into the pool from an earlier block: this block's sale of one
    is credited what the third adds (quote(3) - quote(2)), not what one alone would fetch."""
    legs = [(opportunity("a", 1_000 * 10**6, 10**18), aave_leg(1_001 * 10**6))]
    calls, asked, sales = plan_calls(SETUP, legs, pending={(WETH, USDC): 2 * 10**18})
    pair = sales[(WETH, USDC)]
    outputs = {
        pair.base_quotes[500]: quoted(3_900 * 10**6),
        pair.prefix_quotes[500][0]: quoted(5_800 * 10**6),
        **dict.fromkeys((pair.base_quotes[3000], *pair.prefix_quotes[3000]), (False, b"")),
    }
    answers = answers_for(len(calls), outputs, (True, encode(["uint256"], [10**30])))
    (plan,), refused = decide(SETUP, legs, asked, sales, answers, [BOOK], WETH)
    assert refused == [] and plan.swap_out == 1_900 * 10**6
    alone, _, _ = plan_calls(SETUP, legs)
    assert len(calls) == len(alone) + len(SETUP.fee_tiers)  # one base quote per tier
