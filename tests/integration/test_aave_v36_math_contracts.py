"""keeper.math's Aave v3.6 primitives against v3.6's own WadRayMath, PercentageMath and MathUtils
(AaveV36MathHarness, compiled with solc 0.8.27 and v3.6's settings) on the devnet.

Results must match bit for bit, and a revert must be the matching exception. The libraries revert
with empty data (``revert(0, 0)`` in assembly), so the kind of an empty revert is read from the
inputs: a zero divisor is ZeroDivisionError, anything else OverflowError; an arithmetic panic
(0x11, 0x12) maps to the same two; a ``lastUpdateTimestamp`` wider than uint40, which the harness's
ABI decoder rejects, is ValueError. Inputs go through Multicall3.aggregate3 with allowFailure, a
thousand per eth_call. The half-up functions are compared too: v3.6 must not have changed them.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from itertools import product

import pytest
from eth_utils.crypto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from keeper.chain.multicall import MULTICALL3, Call, decode_aggregate3, encode_aggregate3, selector
from keeper.devnet.abi import decode_result
from keeper.devnet.accounts import DEPLOYER_INDEX, dev_account
from keeper.devnet.rpc import Executor
from keeper.devnet.toolchain import Artifact, compiled_aave_v36_math_harness, toolchain
from keeper.math import interest, uint, wad_ray
from keeper.math.interest import SECONDS_PER_YEAR, UINT40_MAX
from keeper.math.uint import UINT256_MAX
from keeper.math.wad_ray import HALF_RAY, PERCENTAGE_FACTOR, RAY
from tests.conftest import Devnet

pytestmark = pytest.mark.integration

FUNCTIONS: dict[str, Callable[..., int]] = {
    "rayMul": wad_ray.ray_mul,
    "rayMulFloor": wad_ray.ray_mul_floor,
    "rayMulCeil": wad_ray.ray_mul_ceil,
    "rayDiv": wad_ray.ray_div,
    "rayDivFloor": wad_ray.ray_div_floor,
    "rayDivCeil": wad_ray.ray_div_ceil,
    "percentMul": wad_ray.percent_mul,
    "percentMulFloor": wad_ray.percent_mul_floor,
    "percentMulCeil": wad_ray.percent_mul_ceil,
    "percentDiv": wad_ray.percent_div,
    "percentDivCeil": wad_ray.percent_div_ceil,
    "mulDivCeil": uint.mul_div_ceil,
    "calculateCompoundedInterest": interest.compounded_interest_v3_4,
}
UNIT = {name: RAY for name in FUNCTIONS if name.startswith("ray")}
UNIT |= {name: PERCENTAGE_FACTOR for name in FUNCTIONS if name.startswith("percent")}
"""The fixed-point unit of each binary function: where its rounding and its overflow bound sit."""
DIVISOR_ARG = {name: 1 for name in FUNCTIONS if "Div" in name} | {"mulDivCeil": 2}
"""Which argument is a divisor: an empty revert with that argument zero is a division by zero."""
INTEREST = "calculateCompoundedInterest"

CHUNK = 1000
"""Calls per aggregate3: a few hundred KB of calldata, well under Anvil's 2 MiB request body limit."""
PANIC = keccak(text="Panic(uint256)")[:4]
PANIC_KINDS = {0x11: "overflow", 0x12: "division by zero"}
EXCEPTION_KINDS: dict[type[Exception], str] = {
    OverflowError: "overflow",
    ZeroDivisionError: "division by zero",
    ValueError: "invalid argument",
}

Outcome = int | str
"""A result, or the kind of revert."""
Case = tuple[int, ...]
Mismatch = tuple[str, Case, Outcome, Outcome]


def clamp(value: int) -> int:
    return min(max(value, 0), UINT256_MAX)


def half_up_bound(name: str) -> int:
    return UNIT[name] // 2 if name in ("rayMul", "percentMul") else 0


# --- the contract's answers ------------------------------------------------------------------


def signature(harness: Artifact, name: str) -> str:
    """From the compiled ABI, so a harness that lost or retyped a function fails here."""
    (entry,) = [e for e in harness.abi if e.get("type") == "function" and e["name"] == name]
    return f"{name}({','.join(i['type'] for i in entry['inputs'])})"


def calldata(sig: str, args: Case) -> bytes:
    """Each argument as a full word, so a uint40 too wide for the parameter reaches the decoder."""
    return selector(sig) + b"".join(arg.to_bytes(32, "big") for arg in args)


def arity(name: str) -> int:
    return 3 if name in ("mulDivCeil", INTEREST) else 2


def revert_kind(name: str, args: Case, data: bytes) -> str:
    if data[:4] == PANIC and len(data) == 36:
        code = int.from_bytes(data[4:], "big")
        return PANIC_KINDS.get(code, f"panic {code:#x}")
    if data:
        return f"revert 0x{data.hex()}"
    if name == INTEREST and args[1] > UINT40_MAX:
        return "invalid argument"  # the ABI decoder refuses a uint40 that does not fit
    if name in DIVISOR_ARG and args[DIVISOR_ARG[name]] == 0:
        return "division by zero"
    return "overflow"


def contract_outcomes(
    devnet: Devnet, harness: tuple[str, Artifact], name: str, cases: Sequence[Case]
) -> list[Outcome]:
    address, artifact = harness
    sig = signature(artifact, name)
    calls = [Call(address, calldata(sig, args), allow_failure=True) for args in cases]
    outcomes: list[Outcome] = []
    for start in range(0, len(calls), CHUNK):
        raw = devnet.rpc.eth_call(MULTICALL3, encode_aggregate3(calls[start : start + CHUNK]))
        results = decode_aggregate3(raw)
        for args, result in zip(cases[start : start + CHUNK], results, strict=True):
            if result.success:
                outcomes.append(int(decode_result(["uint256"], result.data)[0]))
            else:
                outcomes.append(revert_kind(name, args, result.data))
    assert len(outcomes) == len(cases)
    return outcomes


def local_outcome(name: str, args: Case) -> Outcome:
    """The Python result; any exception other than the three expected ones fails the test."""
    try:
        return FUNCTIONS[name](*args)
    except (OverflowError, ZeroDivisionError, ValueError) as exc:
        return EXCEPTION_KINDS[type(exc)]


def mismatches(
    devnet: Devnet, harness: tuple[str, Artifact], name: str, cases: Sequence[Case]
) -> list[Mismatch]:
    remote = contract_outcomes(devnet, harness, name, cases)
    pairs = (
        (args, local_outcome(name, args), expected) for args, expected in zip(cases, remote, strict=True)
    )
    return [(name, args, local, expected) for args, local, expected in pairs if local != expected]


@pytest.fixture(scope="module")
def harness(devnet: Devnet) -> Iterator[tuple[str, Artifact]]:
    """AaveV36MathHarness deployed once for the module; the devnet is reverted afterwards."""
    rpc = devnet.rpc
    snapshot = rpc.call("evm_snapshot")
    artifact = compiled_aave_v36_math_harness(toolchain())
    rpc.call("evm_setAutomine", [False])
    try:
        address = Executor(rpc).deploy(
            dev_account(DEPLOYER_INDEX).address, artifact.linked({}), artifact.name
        )
    finally:
        rpc.call("evm_setAutomine", [True])
    try:
        yield address, artifact
    finally:
        assert rpc.call("evm_revert", [snapshot]) is True


# --- inputs: edges, exact halves, overflow boundaries ----------------------------------------

EDGES = (
    0,
    1,
    2,
    PERCENTAGE_FACTOR // 2,
    PERCENTAGE_FACTOR,
    HALF_RAY,
    RAY - 1,
    RAY,
    RAY + 1,
    2 * RAY,
    2**128,
    UINT256_MAX // RAY,
    UINT256_MAX // PERCENTAGE_FACTOR,
    UINT256_MAX // 2,
    UINT256_MAX - 1,
    UINT256_MAX,
)
NUDGES = (-1, 0, 1)
RATES = (0, 1, 5 * 10**25, RAY, 10 * RAY, 2**128 - 1, 2**128, UINT256_MAX // SECONDS_PER_YEAR, UINT256_MAX)
"""Interest rates in ray: nothing, one wei, 5 % APR, 100 %, 1,000 % (MAX_BORROW_RATE), the uint128 a
reserve stores, the bound past which ``rate * dt`` wraps for a year, and the widest uint256."""
TIMESTAMPS = (0, 1, 1_700_000_000, UINT40_MAX - 1, UINT40_MAX, UINT40_MAX + 1, UINT256_MAX)
ELAPSED_S = (-2, -1, 0, 1, 2, 3, 12, 86_400, SECONDS_PER_YEAR, 10 * SECONDS_PER_YEAR, 2**40, 2**200)


def edge_grid(name: str) -> list[Case]:
    """Every combination of the edge values (nudged by one): each corner is checked, not sampled."""
    if name == INTEREST:
        return [(r, t, clamp(t + dt)) for r, t, dt in product(RATES, TIMESTAMPS, ELAPSED_S)]
    values = sorted({clamp(e + n) for e in EDGES for n in NUDGES})
    if arity(name) == 2:
        return list(product(values, repeat=2))
    return list(product(EDGES, repeat=3))


def near_bound(rng: random.Random, name: str) -> Case:
    """Operands one step either side of the library's overflow pre-check, for a random other operand."""
    nudge = rng.randrange(-2, 3)
    if name in UNIT and "Div" in name:
        b = rng.randrange(1, 1 << rng.randrange(1, 257))
        top = UINT256_MAX - (b // 2 if name in ("rayDiv", "percentDiv") else 0)
        return clamp(top // UNIT[name] + nudge), b
    b = rng.randrange(1, 1 << rng.randrange(1, 257))
    a = clamp((UINT256_MAX - half_up_bound(name)) // b + nudge)
    return (a, b, rng.randrange(1 << rng.randrange(1, 257))) if name == "mulDivCeil" else (a, b)


def near_tie(rng: random.Random, name: str) -> Case:
    """Quotients that are exactly an integer, an integer plus a half, or one wei off either."""
    k = rng.randrange(1 << rng.randrange(1, 100))
    if name == "mulDivCeil":
        c = rng.randrange(1, 1 << rng.randrange(1, 128))
        return k * c + rng.choice((0, 1, c // 2, c - 1)), 1, c
    unit = UNIT[name]
    if "Div" in name:  # a * unit / b = (2k + 1) / 2 + nudge / (2t)
        t = rng.randrange(1, 1 << rng.randrange(1, 60))
        return (2 * k + 1) * t + rng.choice(NUDGES), 2 * unit * t
    product_ = k * unit + rng.choice((0, 1, unit // 2 - 1, unit // 2, unit // 2 + 1, unit - 1))
    return (product_, 1) if rng.random() < 0.5 else (1, product_)


def random_interest_case(rng: random.Random) -> Case:
    rate = rng.choice((rng.choice(RATES), rng.randrange(1 << rng.randrange(1, 257))))
    last = rng.choice((rng.randrange(UINT40_MAX + 1), rng.choice(TIMESTAMPS)))
    elapsed = rng.choice((rng.choice(ELAPSED_S), rng.randrange(1 << rng.randrange(1, 257))))
    return rate, last, clamp(last + elapsed)


def random_cases(rng: random.Random, name: str, count: int) -> list[Case]:
    if name == INTEREST:
        return [random_interest_case(rng) for _ in range(count)]
    cases: list[Case] = []
    for _ in range(count):
        pick = rng.random()
        if pick < 0.3:
            cases.append(near_bound(rng, name))
        elif pick < 0.6:
            cases.append(near_tie(rng, name))
        else:
            cases.append(tuple(rng.randrange(1 << rng.randrange(1, 257)) for _ in range(arity(name))))
    return cases


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_matches_contract_on_edges_and_random_inputs(
    devnet: Devnet, harness: tuple[str, Artifact], name: str
) -> None:
    cases = edge_grid(name) + random_cases(random.Random(name), name, 2000)
    assert mismatches(devnet, harness, name, cases)[:5] == []
    outcomes = [local_outcome(name, args) for args in cases]
    kinds = {outcome for outcome in outcomes if isinstance(outcome, str)}
    assert kinds and any(isinstance(outcome, int) for outcome in outcomes)  # results and reverts
    if name in DIVISOR_ARG:
        assert kinds == {"overflow", "division by zero"}  # both reverts were exercised
    if name == INTEREST:
        assert kinds == {"overflow", "invalid argument"}  # underflow of dt, rayMul overflow, uint40


# --- hypothesis ------------------------------------------------------------------------------

uint256s = st.one_of(
    st.sampled_from(EDGES).flatmap(lambda e: st.integers(clamp(e - 2), clamp(e + 2))),
    st.integers(min_value=0, max_value=UINT256_MAX),
    st.integers(min_value=0, max_value=256).flatmap(lambda bits: st.integers(0, (1 << bits) - 1)),
)
rng_cases = st.randoms(use_true_random=False)


def cases_for(name: str) -> st.SearchStrategy[Case]:
    if name == INTEREST:
        timestamps = st.one_of(st.sampled_from(TIMESTAMPS), st.integers(0, UINT40_MAX))
        elapsed = st.one_of(st.sampled_from(ELAPSED_S), st.integers(-(2**40), 2**256))
        return st.builds(lambda r, t, dt: (r, t, clamp(t + dt)), uint256s, timestamps, elapsed)
    shaped = rng_cases.flatmap(lambda rng: st.sampled_from([near_bound(rng, name), near_tie(rng, name)]))
    return st.one_of(st.tuples(*[uint256s] * arity(name)), shaped)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
@settings(max_examples=20, derandomize=True, deadline=None)
@given(data=st.data())
def test_matches_contract_on_hypothesis_inputs(
    devnet: Devnet, harness: tuple[str, Artifact], name: str, data: st.DataObject
) -> None:
    cases = data.draw(st.lists(cases_for(name), min_size=10, max_size=100))
    assert mismatches(devnet, harness, name, cases) == []
