// SPDX-License-Identifier: MIT
pragma solidity 0.8.19;

import {MathLib} from "@morpho-org/morpho-blue/src/libraries/MathLib.sol";
import {SharesMathLib} from "@morpho-org/morpho-blue/src/libraries/SharesMathLib.sol";

/// @title MorphoMathHarness
/// @notice Test-only: exposes Morpho Blue's internal MathLib and SharesMathLib functions, compiled with
/// Morpho's own compiler version and settings, so the keeper's Python port can be compared with them bit
/// for bit (tests/integration/test_morpho_math_contracts.py). The devnet never deploys it.
contract MorphoMathHarness {
    function mulDivDown(uint256 x, uint256 y, uint256 d) external pure returns (uint256) {
        return MathLib.mulDivDown(x, y, d);
    }

    function mulDivUp(uint256 x, uint256 y, uint256 d) external pure returns (uint256) {
        return MathLib.mulDivUp(x, y, d);
    }

    function wMulDown(uint256 x, uint256 y) external pure returns (uint256) {
        return MathLib.wMulDown(x, y);
    }

    function wDivDown(uint256 x, uint256 y) external pure returns (uint256) {
        return MathLib.wDivDown(x, y);
    }

    function wDivUp(uint256 x, uint256 y) external pure returns (uint256) {
        return MathLib.wDivUp(x, y);
    }

    function wTaylorCompounded(uint256 x, uint256 n) external pure returns (uint256) {
        return MathLib.wTaylorCompounded(x, n);
    }

    function toSharesDown(uint256 assets, uint256 totalAssets, uint256 totalShares)
        external
        pure
        returns (uint256)
    {
        return SharesMathLib.toSharesDown(assets, totalAssets, totalShares);
    }

    function toSharesUp(uint256 assets, uint256 totalAssets, uint256 totalShares)
        external
        pure
        returns (uint256)
    {
        return SharesMathLib.toSharesUp(assets, totalAssets, totalShares);
    }

    function toAssetsDown(uint256 shares, uint256 totalAssets, uint256 totalShares)
        external
        pure
        returns (uint256)
    {
        return SharesMathLib.toAssetsDown(shares, totalAssets, totalShares);
    }

    function toAssetsUp(uint256 shares, uint256 totalAssets, uint256 totalShares)
        external
        pure
        returns (uint256)
    {
        return SharesMathLib.toAssetsUp(shares, totalAssets, totalShares);
    }
}
