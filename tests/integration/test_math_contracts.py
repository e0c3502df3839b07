"""keeper.math.wad_ray against Aave's own WadRayMath bytecode (WadRayMathWrapper) on the devnet.

Results must match bit for bit, and a revert in the contract must be an exception here.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keeper.chain.multicall import MULTICALL3, Call, decode_aggregate3, encode_aggregate3
from keeper.devnet.abi import decode_result, encode_call
from keeper.devnet.accounts import DEPLOYER_INDEX, dev_account
from keeper.devnet.rpc import Executor
from keeper.devnet.toolchain import aave_artifact, toolchain
from keeper.errors import DevnetError
from keeper.math import wad_ray
from keeper.math.uint import UINT256_MAX
from tests.conftest import Devnet

BINARY: dict[str, Callable[[int, int], int]] = {
    "rayMul": wad_ray.ray_mul,
    "rayDiv": wad_ray.ray_div,
    "wadMul": wad_ray.wad_mul,
    "wadDiv": wad_ray.wad_div,
}
UNARY: dict[str, Callable[[int], int]] = {"rayToWad": wad_ray.ray_to_wad, "wadToRay": wad_ray.wad_to_ray}


def operands(rng: random.Random, count: int) -> list[int]:
    """Values that hit the interesting regions: tiny, unit-sized, half-boundaries, near overflow."""
    edges = [0, 1, 2, wad_ray.HALF_WAD, wad_ray.WAD, wad_ray.HALF_RAY, wad_ray.RAY, UINT256_MAX]
    picks = [rng.choice(edges) + rng.randrange(-2, 3) for _ in range(count // 3)]
    picks += [rng.randrange(1 << rng.randrange(1, 256)) for _ in range(count - len(picks))]
    return [min(max(v, 0), UINT256_MAX) for v in picks]


def contract_result(devnet: Devnet, wrapper: str, signature: str, *args: int) -> int | None:
    try:
        raw = devnet.rpc.eth_call(wrapper, encode_call(signature, *args))
    except DevnetError:
        return None
    return int(decode_result(["uint256"], raw)[0])


def local_result(fn: Callable[..., int], *args: int) -> int | None:
    try:
        return fn(*args)
    except (OverflowError, ZeroDivisionError):
        return None


@pytest.fixture
def wrapper(chain: Devnet) -> str:
    code = aave_artifact(toolchain(), "WadRayMathWrapper").linked({})
    chain.rpc.call("evm_setAutomine", [False])
    try:
        return Executor(chain.rpc).deploy(dev_account(DEPLOYER_INDEX).address, code, "WadRayMathWrapper")
    finally:
        chain.rpc.call("evm_setAutomine", [True])


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_ops_match_contract(chain: Devnet, wrapper: str, name: str) -> None:
    rng = random.Random(name)
    xs, ys = operands(rng, 120), operands(rng, 120)
    reverted = 0
    for x, y in zip(xs, ys, strict=True):
        expected = contract_result(chain, wrapper, f"{name}(uint256,uint256)", x, y)
        assert local_result(BINARY[name], x, y) == expected, (name, x, y)
        reverted += expected is None
    assert 0 < reverted < len(xs)  # both outcomes were exercised


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_ops_match_contract(chain: Devnet, wrapper: str, name: str) -> None:
    for x in operands(random.Random(name), 120):
        expected = contract_result(chain, wrapper, f"{name}(uint256)", x)
        assert local_result(UNARY[name], x) == expected, (name, x)


EDGES = (0, 1, 2, wad_ray.HALF_WAD, wad_ray.WAD, wad_ray.HALF_RAY, wad_ray.RAY, 2**128, UINT256_MAX)
uints = st.one_of(
    st.sampled_from(EDGES).flatmap(lambda e: st.integers(max(e - 2, 0), min(e + 2, UINT256_MAX))),
    st.integers(0, 2**128),
    st.integers(0, UINT256_MAX),
    st.integers(0, 2**256 // wad_ray.RAY).map(lambda v: v * wad_ray.RAY // 3),
)


ties = st.tuples(st.integers(0, 2**100), st.sampled_from([wad_ray.WAD, wad_ray.RAY]), st.booleans()).map(
    lambda t: (t[0] * t[1] + t[1] // 2, 1) if t[2] else (1, t[0] * t[1] + t[1] // 2)
)
"""Products exactly halfway between two results: where half-up rounding shows."""
pairs = st.one_of(st.tuples(uints, uints), ties)


def batched(chain: Devnet, wrapper: str, signature: str, cases: list[tuple[int, ...]]) -> list[int | None]:
    """Every case through one Multicall3 aggregate3 (allowFailure): a revert comes back as None."""
    calls = [Call(wrapper, encode_call(signature, *case), allow_failure=True) for case in cases]
    raw = chain.rpc.eth_call(MULTICALL3, encode_aggregate3(calls))
    return [int.from_bytes(r.data, "big") if r.success else None for r in decode_aggregate3(raw)]


@pytest.mark.parametrize("name", sorted(BINARY))
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(cases=st.lists(pairs, min_size=1, max_size=100))
def test_binary_ops_match_contract_on_hypothesis_inputs(
    chain: Devnet, wrapper: str, name: str, cases: list[tuple[int, int]]
) -> None:
    expected = batched(chain, wrapper, f"{name}(uint256,uint256)", list(cases))
    assert [local_result(BINARY[name], x, y) for x, y in cases] == expected


@pytest.mark.parametrize("name", sorted(UNARY))
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(values=st.lists(uints, min_size=1, max_size=100))
def test_unary_ops_match_contract_on_hypothesis_inputs(
    chain: Devnet, wrapper: str, name: str, values: list[int]
) -> None:
    expected = batched(chain, wrapper, f"{name}(uint256)", [(v,) for v in values])
    assert [local_result(UNARY[name], v) for v in values] == expected
