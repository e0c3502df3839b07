"""keeper.math.morpho against Morpho Blue's own MathLib and SharesMathLib (MorphoMathHarness) on the devnet.

Results must match bit for bit, and a revert must be the same revert: Solidity's arithmetic panic
(0x11 overflow/underflow, 0x12 division by zero) is OverflowError / ZeroDivisionError here, with one
documented exception: Solidity's ``mulDivUp`` computes ``d - 1`` before dividing, so a zero divisor
panics as an underflow, which keeper.math.morpho reports as ZeroDivisionError on purpose. Inputs go
through Multicall3.aggregate3 with allowFailure, a thousand per eth_call.
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable, Iterator, Sequence
from math import isqrt

import pytest
from eth_utils.crypto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from keeper.devnet.abi import decode_result, encode_call
from keeper.devnet.accounts import DEPLOYER_INDEX, dev_account
from keeper.devnet.inspect import MULTICALL3
from keeper.devnet.rpc import Executor
from keeper.devnet.toolchain import compiled_contracts, toolchain
from keeper.math import morpho
from keeper.math.morpho import VIRTUAL_SHARES, WAD
from keeper.math.uint import UINT256_MAX
from tests.conftest import Devnet

FUNCTIONS: dict[str, Callable[..., int]] = {
    "mulDivDown": morpho.mul_div_down,
    "mulDivUp": morpho.mul_div_up,
    "wMulDown": morpho.w_mul_down,
    "wDivDown": morpho.w_div_down,
    "wDivUp": morpho.w_div_up,
    "wTaylorCompounded": morpho.w_taylor_compounded,
    "toSharesDown": morpho.to_shares_down,
    "toSharesUp": morpho.to_shares_up,
    "toAssetsDown": morpho.to_assets_down,
    "toAssetsUp": morpho.to_assets_up,
}

UINT128_MAX = 2**128 - 1
EDGES = (
    0,
    1,
    2,
    VIRTUAL_SHARES,
    WAD,
    2 * WAD,
    3 * WAD,
    10**36,
    UINT128_MAX,
    isqrt(UINT256_MAX),
    UINT256_MAX // WAD,
    UINT256_MAX - VIRTUAL_SHARES,
    UINT256_MAX - 1,
    UINT256_MAX,
)
PRODUCT_BITS = (106, 107, 128, 129, 256, 257)
"""Bit lengths of a product that straddle a checked bound: wTaylorCompounded's third term overflows
once x * n passes ~2**105.7 and its second once x * n passes 2**128; any product overflows past 2**256."""
CHUNK = 1000
"""Calls per aggregate3: ~600 KB of calldata hex, well under Anvil's 2 MiB request body limit."""
AGGREGATE3 = "aggregate3((address,bool,bytes)[])"
PANIC = keccak(text="Panic(uint256)")[:4]
PANIC_KINDS = {0x11: "overflow", 0x12: "division by zero"}
EXCEPTION_KINDS: dict[type[ArithmeticError], str] = {
    OverflowError: "overflow",
    ZeroDivisionError: "division by zero",
}

Outcome = int | str
"""A result, or the kind of revert."""
Case = tuple[int, ...]
Mismatch = tuple[Case, Outcome, Outcome]


def arity(name: str) -> int:
    return len(inspect.signature(FUNCTIONS[name]).parameters)


def signature(name: str) -> str:
    return f"{name}({','.join(['uint256'] * arity(name))})"


def local_outcome(name: str, args: Case) -> Outcome:
    """The Python result; any exception other than the two arithmetic ones fails the test."""
    try:
        return FUNCTIONS[name](*args)
    except (OverflowError, ZeroDivisionError) as exc:
        return EXCEPTION_KINDS[type(exc)]


def decode_outcome(success: bool, data: bytes) -> Outcome:
    if success:
        return int(decode_result(["uint256"], data)[0])
    if data[:4] == PANIC and len(data) == 36:
        code = int.from_bytes(data[4:], "big")
        return PANIC_KINDS.get(code, f"panic {code:#x}")
    return f"revert 0x{data.hex()}"


def contract_outcomes(devnet: Devnet, harness: str, name: str, cases: Sequence[Case]) -> list[Outcome]:
    calls = [(harness, True, encode_call(signature(name), *args)) for args in cases]
    outcomes: list[Outcome] = []
    for start in range(0, len(calls), CHUNK):
        raw = devnet.rpc.eth_call(MULTICALL3, encode_call(AGGREGATE3, calls[start : start + CHUNK]))
        (results,) = decode_result(["(bool,bytes)[]"], raw)
        outcomes += [decode_outcome(success, bytes(data)) for success, data in results]
    assert len(outcomes) == len(cases)
    return outcomes


def same_outcome(name: str, args: Case, local: Outcome, expected: Outcome) -> bool:
    if name in ("mulDivUp", "wDivUp") and args[-1] == 0 and local == "division by zero":
        return expected == "overflow"  # Solidity's `d - 1` underflows before it divides
    return local == expected


def mismatches(devnet: Devnet, harness: str, name: str, cases: Sequence[Case]) -> list[Mismatch]:
    remote = contract_outcomes(devnet, harness, name, cases)
    pairs = (
        (args, local_outcome(name, args), expected) for args, expected in zip(cases, remote, strict=True)
    )
    return [
        (args, local, expected)
        for args, local, expected in pairs
        if not same_outcome(name, args, local, expected)
    ]


def with_bits(rng: random.Random, bits: int) -> int:
    return rng.randrange(1 << (bits - 1), 1 << bits) if bits > 0 else 0


def operand(rng: random.Random) -> int:
    """Half edges nudged by a little, half uniform over a random bit length."""
    if rng.random() < 0.5:
        return min(max(rng.choice(EDGES) + rng.randrange(-2, 3), 0), UINT256_MAX)
    return with_bits(rng, rng.randrange(257))


def random_cases(rng: random.Random, width: int, count: int) -> list[Case]:
    """Edge-biased operands; a third of the cases pair two operands whose product is near a bound."""
    cases = []
    for _ in range(count):
        args = [operand(rng) for _ in range(width)]
        if rng.random() < 1 / 3:
            i, j = rng.sample(range(width), 2)
            total = rng.choice(PRODUCT_BITS)
            args[i] = with_bits(rng, rng.randrange(max(total - 256, 0), min(total, 256) + 1))
            args[j] = with_bits(rng, total - args[i].bit_length())
        cases.append(tuple(args))
    return cases


def edge_grid(width: int) -> list[Case]:
    """Every combination of the edge values: each corner is checked, not just sampled."""
    grid: list[Case] = [()]
    for _ in range(width):
        grid = [(*case, edge) for case in grid for edge in EDGES]
    return grid


@pytest.fixture(scope="module")
def harness(devnet: Devnet) -> Iterator[str]:
    """MorphoMathHarness deployed once for the module; the devnet is reverted afterwards."""
    rpc = devnet.rpc
    snapshot = rpc.call("evm_snapshot")
    code = compiled_contracts(toolchain())["MorphoMathHarness"].linked({})
    rpc.call("evm_setAutomine", [False])
    try:
        address = Executor(rpc).deploy(dev_account(DEPLOYER_INDEX).address, code, "MorphoMathHarness")
    finally:
        rpc.call("evm_setAutomine", [True])
    try:
        yield address
    finally:
        assert rpc.call("evm_revert", [snapshot]) is True


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_matches_contract_on_edges_and_random_inputs(devnet: Devnet, harness: str, name: str) -> None:
    cases = edge_grid(arity(name)) + random_cases(random.Random(name), arity(name), 2000)
    assert mismatches(devnet, harness, name, cases)[:5] == []
    outcomes = [local_outcome(name, args) for args in cases]
    reverted = sum(isinstance(outcome, str) for outcome in outcomes)
    assert 0 < reverted < len(cases)  # both outcomes were exercised


uint256s = st.one_of(
    st.sampled_from(EDGES),
    st.integers(min_value=0, max_value=UINT256_MAX),
    st.integers(min_value=0, max_value=256).flatmap(lambda bits: st.integers(0, (1 << bits) - 1)),
)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
@settings(max_examples=30, derandomize=True, deadline=None)
@given(data=st.data())
def test_matches_contract_on_hypothesis_inputs(
    devnet: Devnet, harness: str, name: str, data: st.DataObject
) -> None:
    cases = data.draw(st.lists(st.tuples(*[uint256s] * arity(name)), min_size=10, max_size=100))
    assert mismatches(devnet, harness, name, cases) == []
