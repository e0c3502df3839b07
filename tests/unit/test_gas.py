"""Unit tests for keeper.execution.gas: hand-checked fee tables per strategy and cap, plus properties."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keeper.execution.gas import (
    BPS,
    FeePolicy,
    Fees,
    expected_net_profit_wei,
    initial_fees,
    net_profit_wei,
    replacement_fees,
    should_replace,
)

GWEI = 10**9
ETH = 10**18


def policy(**overrides: Any) -> FeePolicy:
    fields: dict[str, Any] = {"strategy": "fixed", "max_fee_per_gas_wei": 100 * GWEI} | overrides
    return FeePolicy(**fields)


# --- initial fees: each strategy ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pol", "base_fee", "gas_limit", "gross", "reward", "expected"),
    [
        pytest.param(policy(), 10 * GWEI, 500_000, ETH, None, Fees(21 * GWEI, GWEI), id="fixed"),
        pytest.param(
            policy(), 10 * GWEI, 500_000, ETH, 7 * GWEI, Fees(21 * GWEI, GWEI), id="fixed-ignores-reward"
        ),
        pytest.param(
            policy(base_fee_multiplier_bps=12_500),
            8 * GWEI,
            500_000,
            ETH,
            None,
            Fees(11 * GWEI, GWEI),
            id="fixed-1.25x",
        ),
        pytest.param(
            policy(strategy="percentile"),
            10 * GWEI,
            500_000,
            ETH,
            3 * GWEI,
            Fees(23 * GWEI, 3 * GWEI),
            id="percentile",
        ),
        pytest.param(
            policy(strategy="percentile"),
            10 * GWEI,
            500_000,
            ETH,
            None,
            Fees(21 * GWEI, GWEI),
            id="percentile-no-history",
        ),
        pytest.param(
            policy(strategy="percentile"),
            10 * GWEI,
            500_000,
            ETH,
            0,
            Fees(20 * GWEI, 0),
            id="percentile-zero",
        ),
        pytest.param(
            policy(strategy="profit_share", max_fee_per_gas_wei=1_000 * GWEI),
            10 * GWEI,
            500_000,
            ETH,
            None,
            Fees(220 * GWEI, 200 * GWEI),  # 10 % of 1 ETH over 500k gas = 200 gwei tip
            id="profit-share",
        ),
        pytest.param(
            policy(strategy="profit_share", profit_share_bps=1_000, base_fee_multiplier_bps=10_000),
            0,
            1_000,
            999_999,
            None,
            Fees(99, 99),  # 99_999.9 / 1000 rounds down: the tip never spends more than the share
            id="profit-share-rounds-down",
        ),
        pytest.param(
            policy(strategy="profit_share", profit_share_bps=0),
            10 * GWEI,
            500_000,
            ETH,
            None,
            Fees(20 * GWEI, 0),
            id="share-0",
        ),
    ],
)
def test_initial_fees_per_strategy(
    pol: FeePolicy, base_fee: int, gas_limit: int, gross: int, reward: int | None, expected: Fees
) -> None:
    assert initial_fees(pol, base_fee, gas_limit, gross, reward) == expected


# --- initial fees: each cap and floor -------------------------------------------------------------

_WORST = 1_000_000 * 21 * GWEI  # gas limit 1M at 21 gwei max fee (base 10 gwei x 2 + 1 gwei tip)


@pytest.mark.parametrize(
    ("pol", "base_fee", "gas_limit", "gross", "expected"),
    [
        pytest.param(policy(), 60 * GWEI, 500_000, ETH, Fees(100 * GWEI, GWEI), id="max-fee-clipped-to-cap"),
        pytest.param(
            policy(priority_fee_wei=150 * GWEI),
            0,
            500_000,
            ETH,
            Fees(100 * GWEI, 100 * GWEI),
            id="tip-clipped-to-max-fee",
        ),
        pytest.param(
            policy(strategy="profit_share"),
            10 * GWEI,
            500_000,
            ETH,
            Fees(100 * GWEI, 100 * GWEI),
            id="share-tip-capped",
        ),
        pytest.param(policy(), 100 * GWEI, 21_000, ETH, Fees(100 * GWEI, GWEI), id="cap-equals-base-fee"),
        pytest.param(policy(), 100 * GWEI + 1, 21_000, ETH, None, id="cap-below-base-fee"),
        pytest.param(
            policy(), 10 * GWEI, 1_000_000, 2 * _WORST, Fees(21 * GWEI, GWEI), id="gas-share-exactly-50pct"
        ),
        pytest.param(policy(), 10 * GWEI, 1_000_000, 2 * _WORST - 1, None, id="gas-share-over-50pct"),
        pytest.param(
            policy(max_gas_cost_share_bps=10_000),
            10 * GWEI,
            1_000_000,
            _WORST,
            Fees(21 * GWEI, GWEI),
            id="share-100pct",
        ),
        pytest.param(
            policy(max_gas_cost_share_bps=0), 10 * GWEI, 1_000_000, ETH, None, id="share-0-forbids-any-gas"
        ),
        pytest.param(
            policy(min_profit_wei=ETH - _WORST),
            10 * GWEI,
            1_000_000,
            ETH,
            Fees(21 * GWEI, GWEI),
            id="floor-exactly-met",
        ),
        pytest.param(
            policy(min_profit_wei=ETH - _WORST + 1), 10 * GWEI, 1_000_000, ETH, None, id="floor-missed-by-1"
        ),
        pytest.param(policy(), 10 * GWEI, 1_000_000, 0, None, id="no-profit"),
        pytest.param(policy(), 10 * GWEI, 1_000_000, -ETH, None, id="loss"),
    ],
)
def test_initial_fees_caps(
    pol: FeePolicy, base_fee: int, gas_limit: int, gross: int, expected: Fees | None
) -> None:
    assert initial_fees(pol, base_fee, gas_limit, gross, None) == expected


@pytest.mark.parametrize(
    ("base_fee", "gas_limit", "reward", "match"),
    [(-1, 21_000, None, "base_fee_wei"), (1, 0, None, "gas_limit"), (1, 21_000, -1, "reward_percentile_wei")],
)
def test_initial_fees_rejects_bad_inputs(
    base_fee: int, gas_limit: int, reward: int | None, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        initial_fees(policy(strategy="percentile"), base_fee, gas_limit, ETH, reward)


# --- replacement -----------------------------------------------------------------------------------

_ZERO = {"priority_fee_wei": 0, "base_fee_multiplier_bps": 10_000}  # fresh bid = base fee, no tip


@pytest.mark.parametrize(
    ("previous", "pol", "base_fee", "gross", "expected"),
    [
        pytest.param(Fees(100, 10), policy(**_ZERO), 0, ETH, Fees(113, 12), id="12.5pct-rounded-up"),
        pytest.param(Fees(8, 8), policy(**_ZERO), 0, ETH, Fees(9, 9), id="exact-12.5pct-not-over-bumped"),
        pytest.param(Fees(1, 1), policy(**_ZERO), 0, ETH, Fees(2, 2), id="tiny-rounds-up"),
        pytest.param(Fees(5, 0), policy(**_ZERO), 0, ETH, Fees(6, 1), id="zero-tip-strictly-raised"),
        pytest.param(
            Fees(100, 10), policy(**_ZERO, replacement_bump_bps=2_000), 0, ETH, Fees(120, 12), id="bump-20pct"
        ),
        pytest.param(
            Fees(21 * GWEI, GWEI),
            policy(),
            50 * GWEI,
            ETH,
            Fees(100 * GWEI, 1_125_000_000),
            id="fresh-bid-above-bump",
        ),
        pytest.param(
            Fees(21 * GWEI, GWEI),
            policy(),
            10 * GWEI,
            ETH,
            Fees(23_625_000_000, 1_125_000_000),
            id="bump-above-fresh",
        ),
        pytest.param(
            Fees(21 * GWEI, GWEI),
            policy(strategy="percentile"),
            10 * GWEI,
            ETH,
            Fees(23_625_000_000, 1_125_000_000),
            id="percentile-falls-back",
        ),
        pytest.param(Fees(89 * GWEI, GWEI), policy(), 10 * GWEI, ETH, None, id="bump-over-cap"),
        pytest.param(
            Fees(88 * GWEI, GWEI), policy(), 10 * GWEI, ETH, Fees(99 * GWEI, 1_125_000_000), id="bump-at-cap"
        ),
        pytest.param(
            Fees(21 * GWEI, GWEI), policy(), 10 * GWEI, 2 * 21_000 * 21 * GWEI, None, id="bump-breaks-share"
        ),
        pytest.param(Fees(21 * GWEI, GWEI), policy(), 101 * GWEI, ETH, None, id="base-fee-above-cap"),
    ],
)
def test_replacement_fees(
    previous: Fees, pol: FeePolicy, base_fee: int, gross: int, expected: Fees | None
) -> None:
    assert replacement_fees(previous, pol, base_fee, 21_000, gross) == expected


def test_replacement_uses_fresh_percentile_reward() -> None:
    got = replacement_fees(
        Fees(21 * GWEI, GWEI),
        policy(strategy="percentile"),
        10 * GWEI,
        21_000,
        ETH,
        reward_percentile_wei=5 * GWEI,
    )
    assert got == Fees(25 * GWEI, 5 * GWEI)


@pytest.mark.parametrize(
    ("sent", "current", "after", "expected"),
    [
        (100, 100, 2, False),
        (100, 101, 2, False),
        (100, 102, 2, True),
        (100, 110, 2, True),
        (100, 99, 2, False),
        (7, 8, 1, True),
    ],
)
def test_should_replace(sent: int, current: int, after: int, expected: bool) -> None:
    assert should_replace(sent, current, policy(replace_after_blocks=after)) is expected


# --- profit ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gross", "gas_used", "price", "expected"),
    [(1_000, 10, 52, 480), (1_000, 0, 52, 1_000), (100, 10, 52, -420)],
)
def test_net_profit(gross: int, gas_used: int, price: int, expected: int) -> None:
    assert net_profit_wei(gross, gas_used, price) == expected


@pytest.mark.parametrize(
    ("fees", "base_fee", "expected"),
    [
        pytest.param(Fees(100, 2), 50, 1_000 - 10 * 52, id="base-plus-tip"),
        pytest.param(Fees(100, 2), 99, 1_000 - 10 * 100, id="max-fee-binds"),
        pytest.param(Fees(100, 0), 0, 1_000, id="free"),
    ],
)
def test_expected_net_profit(fees: Fees, base_fee: int, expected: int) -> None:
    assert expected_net_profit_wei(1_000, 10, fees, base_fee) == expected


# --- validation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"strategy": "auction"}, "strategy must be one of"),
        ({"max_fee_per_gas_wei": 0}, "max_fee_per_gas_wei must be positive"),
        ({"max_fee_per_gas_wei": -1}, "max_fee_per_gas_wei must be a non-negative integer"),
        ({"priority_fee_wei": -1}, "priority_fee_wei must be a non-negative integer"),
        ({"min_profit_wei": 1.5}, "min_profit_wei must be a non-negative integer"),
        ({"replace_after_blocks": True}, "replace_after_blocks must be a non-negative integer"),
        ({"base_fee_multiplier_bps": 9_999}, "base_fee_multiplier_bps must be >= 10000"),
        ({"priority_percentile": 101}, "priority_percentile must be 0..100"),
        ({"profit_share_bps": 10_001}, "profit_share_bps must be <= 10000"),
        ({"max_gas_cost_share_bps": 10_001}, "max_gas_cost_share_bps must be <= 10000"),
        ({"replacement_bump_bps": 1_249}, "replacement_bump_bps must be >= 1250"),
        ({"replace_after_blocks": 0}, "replace_after_blocks must be >= 1"),
    ],
)
def test_fee_policy_validation(overrides: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        policy(**overrides)


def test_fee_policy_defaults() -> None:
    pol = FeePolicy(strategy="fixed", max_fee_per_gas_wei=GWEI)
    assert (pol.base_fee_multiplier_bps, pol.replacement_bump_bps, pol.replace_after_blocks) == (
        20_000,
        1_250,
        2,
    )


@pytest.mark.parametrize(("max_fee", "tip"), [(10, 11), (10, -1), (-1, -1)])
def test_fees_validation(max_fee: int, tip: int) -> None:
    with pytest.raises(ValueError, match="max_priority_fee_per_gas"):
        Fees(max_fee, tip)


def test_worst_case_cost() -> None:
    assert Fees(30 * GWEI, GWEI).worst_case_cost(200_000) == 6 * 10**15


# --- properties ------------------------------------------------------------------------------------

policies = st.builds(
    FeePolicy,
    strategy=st.sampled_from(["fixed", "percentile", "profit_share"]),
    max_fee_per_gas_wei=st.integers(1, 10**13) | st.integers(10**9, 10**13),
    base_fee_multiplier_bps=st.integers(BPS, 4 * BPS),
    priority_fee_wei=st.integers(0, 10**11),
    profit_share_bps=st.integers(0, BPS),
    max_gas_cost_share_bps=st.integers(0, BPS) | st.just(BPS),
    min_profit_wei=st.integers(0, 10**18) | st.just(0),
    replacement_bump_bps=st.integers(1_250, 5_000),
)
base_fees = st.integers(0, 10**12) | st.integers(0, 10**10)
gas_limits = st.integers(21_000, 5_000_000)
grosses = st.integers(0, 10**21) | st.integers(10**19, 10**21)
rewards = st.none() | st.integers(0, 10**11)


@st.composite
def fees_below(draw: st.DrawFn, cap: int) -> Fees:
    max_fee = draw(st.integers(0, cap))
    return Fees(max_fee, draw(st.integers(0, max_fee)))


def assert_allowed(fees: Fees, pol: FeePolicy, base_fee: int, gas_limit: int, gross: int) -> None:
    worst = fees.worst_case_cost(gas_limit)
    assert 0 <= fees.max_priority_fee_per_gas <= fees.max_fee_per_gas <= pol.max_fee_per_gas_wei
    assert fees.max_fee_per_gas >= base_fee
    assert worst * BPS <= gross * pol.max_gas_cost_share_bps
    assert gross - worst >= pol.min_profit_wei
    assert expected_net_profit_wei(gross, gas_limit, fees, base_fee) >= pol.min_profit_wei


@given(pol=policies, base_fee=base_fees, gas_limit=gas_limits, gross=grosses, reward=rewards)
def test_initial_fees_never_break_caps(
    pol: FeePolicy, base_fee: int, gas_limit: int, gross: int, reward: int | None
) -> None:
    fees = initial_fees(pol, base_fee, gas_limit, gross, reward)
    if fees is not None:
        assert_allowed(fees, pol, base_fee, gas_limit, gross)


@given(data=st.data(), pol=policies, base_fee=base_fees, gas_limit=gas_limits, gross=grosses, reward=rewards)
def test_replacement_bumps_both_fields_and_keeps_caps(
    data: st.DataObject, pol: FeePolicy, base_fee: int, gas_limit: int, gross: int, reward: int | None
) -> None:
    previous = data.draw(fees_below(pol.max_fee_per_gas_wei))
    fees = replacement_fees(previous, pol, base_fee, gas_limit, gross, reward_percentile_wei=reward)
    if fees is None:
        return
    for new, old in [
        (fees.max_fee_per_gas, previous.max_fee_per_gas),
        (fees.max_priority_fee_per_gas, previous.max_priority_fee_per_gas),
    ]:
        assert new > old
        assert new * BPS >= old * (BPS + pol.replacement_bump_bps)
    assert_allowed(fees, pol, base_fee, gas_limit, gross)
    fresh = initial_fees(pol, base_fee, gas_limit, gross, reward)
    if fresh is not None:
        assert fees.max_fee_per_gas >= fresh.max_fee_per_gas
        assert fees.max_priority_fee_per_gas >= fresh.max_priority_fee_per_gas


@given(pol=policies, base_fee=base_fees, gas_limit=gas_limits, gross=grosses)
def test_replacement_chain_ends_at_the_cap(pol: FeePolicy, base_fee: int, gas_limit: int, gross: int) -> None:
    """Replacing again and again terminates: each bump is >= 12.5 %, so the cap is reached."""
    fees = initial_fees(pol, base_fee, gas_limit, gross, None)
    steps = 0
    while fees is not None:
        fees = replacement_fees(fees, pol, base_fee, gas_limit, gross)
        steps += 1
        assert steps <= 300  # (1.125 ** 300 > 10 ** 13 = the largest cap drawn)


@given(
    pol=policies.map(lambda p: replace(p, strategy="profit_share")),
    base_fee=base_fees,
    gas_limit=gas_limits,
    gross_pair=st.tuples(grosses, grosses).map(sorted),
)
def test_profit_share_fees_monotone_in_profit(
    pol: FeePolicy, base_fee: int, gas_limit: int, gross_pair: list[int]
) -> None:
    low, high = gross_pair
    fees_low = initial_fees(pol, base_fee, gas_limit, low, None)
    fees_high = initial_fees(pol, base_fee, gas_limit, high, None)
    if fees_low is not None and fees_high is not None:
        assert fees_high.max_priority_fee_per_gas >= fees_low.max_priority_fee_per_gas
        assert fees_high.max_fee_per_gas >= fees_low.max_fee_per_gas
