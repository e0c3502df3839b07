"""Pure tests of the adaptive getLogs range plan: no RPC, no event loop."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keeper.chain.logs import RangePlan, is_range_too_large
from keeper.chain.rpc import RpcError
from keeper.errors import Retryable


def run(plan: RangePlan, outcomes: str) -> list[tuple[int, int, str]]:
    """Feed "s"/"f" outcomes to a plan; returns (low, high, outcome) per request made."""
    requests = []
    for outcome in outcomes:
        if plan.done:
            break
        low, high = plan.chunk
        requests.append((low, high, outcome))
        plan = plan.after_success() if outcome == "s" else plan.after_failure()
    return requests


@pytest.mark.parametrize(
    ("from_block", "to_block", "span", "max_span", "outcomes", "expected"),
    [
        # grows x2 after each success, clipped at the end of the range
        (0, 99, 10, 1000, "sss", [(0, 9, "s"), (10, 29, "s"), (30, 69, "s")]),
        (0, 99, 10, 1000, "ssss", [(0, 9, "s"), (10, 29, "s"), (30, 69, "s"), (70, 99, "s")]),
        # never beyond max_span
        (0, 999, 10, 15, "sss", [(0, 9, "s"), (10, 24, "s"), (25, 39, "s")]),
        # halves on failure, retrying from the same block
        (100, 199, 40, 1000, "ffs", [(100, 139, "f"), (100, 119, "f"), (100, 109, "s")]),
        # a refused tail shrinks from its clipped size, not from the nominal span
        (0, 2, 1000, 1000, "fs", [(0, 2, "f"), (0, 0, "s")]),
        # grows again after a failure
        (0, 99, 8, 1000, "fss", [(0, 7, "f"), (0, 3, "s"), (4, 11, "s")]),
        # a single block range
        (7, 7, 2000, 5000, "s", [(7, 7, "s")]),
    ],
)
def test_plan_table(
    from_block: int,
    to_block: int,
    span: int,
    max_span: int,
    outcomes: str,
    expected: list[tuple[int, int, str]],
) -> None:
    assert run(RangePlan.over(from_block, to_block, span, max_span), outcomes) == expected


def test_min_span_cannot_shrink_and_stays_put() -> None:
    plan = RangePlan.over(5, 10, span=1)
    assert plan.chunk == (5, 5) and not plan.can_shrink
    assert plan.after_failure() == plan
    assert RangePlan.over(5, 10, span=2).can_shrink


def test_empty_range_is_done_and_has_no_chunk() -> None:
    plan = RangePlan.over(10, 9)
    assert plan.done
    with pytest.raises(ValueError, match="fully scanned"):
        _ = plan.chunk


@pytest.mark.parametrize(("from_block", "to_block"), [(-1, 5), (10, 8)])
def test_bad_ranges_are_rejected(from_block: int, to_block: int) -> None:
    with pytest.raises(ValueError, match="bad block range"):
        RangePlan.over(from_block, to_block)


@pytest.mark.parametrize(
    ("exc", "too_large"),
    [
        (RpcError("eth_getLogs", -32005, "query returned more than 10000 results"), True),
        (RpcError("eth_getLogs", -32602, "Log response size exceeded. You can make eth_getLogs ..."), True),
        (RpcError("eth_getLogs", -32000, "block range is too wide"), True),
        (RpcError("eth_getLogs", -32000, "eth_getLogs is limited to a 10,000 range"), True),
        (RpcError("eth_getLogs", -32005, "Limit exceeded"), True),
        (RpcError("eth_getLogs", -32000, "query timeout exceeded"), True),
        (RpcError("eth_getLogs", -32602, "invalid argument 0: hex string without 0x prefix"), False),
        (RpcError("eth_call", 3, "execution reverted"), False),
        (Retryable("eth_getLogs: http://x unreachable: ServerTimeoutError: Timeout on reading data"), True),
        (Retryable("eth_getLogs: http://x HTTP 503: Service Unavailable"), False),
        (ValueError("too many"), False),
    ],
)
def test_is_range_too_large(exc: Exception, too_large: bool) -> None:
    assert is_range_too_large(exc) is too_large


@given(
    from_block=st.integers(0, 10_000),
    length=st.integers(0, 3_000),
    span=st.integers(1, 5_000),
    max_span=st.integers(1, 5_000),
    outcomes=st.lists(st.booleans(), max_size=400),
)
def test_any_outcome_sequence_covers_the_range_exactly_once(
    from_block: int, length: int, span: int, max_span: int, outcomes: list[bool]
) -> None:
    """Successful chunks tile [from, to] in order: no gap, no overlap, whatever fails in between."""
    to_block = from_block + length - 1
    plan = RangePlan.over(from_block, to_block, span, max_span)
    covered: list[tuple[int, int]] = []
    # After the scripted outcomes, succeed until done: the plan must then finish the range.
    for ok in [*outcomes, *[True] * (length + 1)]:
        if plan.done:
            break
        low, high = plan.chunk
        assert low == plan.next_block and low <= high <= to_block
        assert high - low + 1 <= max_span
        if ok:
            covered.append((low, high))
            plan = plan.after_success()
        else:
            plan = plan.after_failure()
    assert plan.done
    expected_start = from_block
    for low, high in covered:
        assert low == expected_start
        expected_start = high + 1
    assert expected_start == to_block + 1
