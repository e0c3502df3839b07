"""Pure integer fixed-point maths that reproduces the protocols' Solidity rounding bit for bit.

Nothing here does I/O: the keeper fetches on-chain state elsewhere and hands plain ints to these
functions, so a liquidation decision computed locally matches what the contract will compute.
"""

from keeper.math.interest import SECONDS_PER_YEAR, calculate_compounded_interest, calculate_linear_interest
from keeper.math.uint import UINT256_MAX
from keeper.math.wad_ray import (
    HALF_PERCENTAGE_FACTOR,
    HALF_RAY,
    HALF_WAD,
    PERCENTAGE_FACTOR,
    RAY,
    WAD,
    WAD_RAY_RATIO,
    percent_div,
    percent_mul,
    ray_div,
    ray_mul,
    ray_to_wad,
    wad_div,
    wad_mul,
    wad_to_ray,
)

__all__ = [
    "HALF_PERCENTAGE_FACTOR",
    "HALF_RAY",
    "HALF_WAD",
    "PERCENTAGE_FACTOR",
    "RAY",
    "SECONDS_PER_YEAR",
    "UINT256_MAX",
    "WAD",
    "WAD_RAY_RATIO",
    "calculate_compounded_interest",
    "calculate_linear_interest",
    "percent_div",
    "percent_mul",
    "ray_div",
    "ray_mul",
    "ray_to_wad",
    "wad_div",
    "wad_mul",
    "wad_to_ray",
]
