"""keeper.math.wad_ray against Aave's own WadRayMath bytecode (WadRayMathWrapper) on the devnet.

Results must match bit for bit, and a revert in the contract must be an exception here.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

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
