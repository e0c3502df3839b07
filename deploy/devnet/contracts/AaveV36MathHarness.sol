// SPDX-License-Identifier: MIT
pragma solidity 0.8.27;

import {WadRayMath} from "@aave-dao/aave-v3-origin/src/contracts/protocol/libraries/math/WadRayMath.sol";
import {PercentageMath} from "@aave-dao/aave-v3-origin/src/contracts/protocol/libraries/math/PercentageMath.sol";
import {MathUtils} from "@aave-dao/aave-v3-origin/src/contracts/protocol/libraries/math/MathUtils.sol";

/// @title AaveV36MathHarness
/// @notice Test-only: exposes Aave v3.6's internal WadRayMath, PercentageMath and MathUtils functions,
/// compiled with v3.6's own compiler version and settings, so the keeper's Python port can be compared
/// with them bit for bit (tests/integration/test_aave_v36_math_contracts.py). The devnet never deploys it.
/// The half-up functions are here for reference: v3.6 kept them unchanged from v3.0.
contract AaveV36MathHarness {
    function rayMul(uint256 a, uint256 b) external pure returns (uint256) {
        return WadRayMath.rayMul(a, b);
    }

    function rayMulFloor(uint256 a, uint256 b) external pure returns (uint256) {
        return WadRayMath.rayMulFloor(a, b);
    }

    function rayMulCeil(uint256 a, uint256 b) external pure returns (uint256) {
        return WadRayMath.rayMulCeil(a, b);
    }

    function rayDiv(uint256 a, uint256 b) external pure returns (uint256) {
        return WadRayMath.rayDiv(a, b);
    }

    function rayDivFloor(uint256 a, uint256 b) external pure returns (uint256) {
        return WadRayMath.rayDivFloor(a, b);
    }

    function rayDivCeil(uint256 a, uint256 b) external pure returns (uint256) {
        return WadRayMath.rayDivCeil(a, b);
    }

    function percentMul(uint256 value, uint256 percentage) external pure returns (uint256) {
        return PercentageMath.percentMul(value, percentage);
    }

    function percentMulFloor(uint256 value, uint256 percentage) external pure returns (uint256) {
        return PercentageMath.percentMulFloor(value, percentage);
    }

    function percentMulCeil(uint256 value, uint256 percentage) external pure returns (uint256) {
        return PercentageMath.percentMulCeil(value, percentage);
    }

    function percentDiv(uint256 value, uint256 percentage) external pure returns (uint256) {
        return PercentageMath.percentDiv(value, percentage);
    }

    function percentDivCeil(uint256 value, uint256 percentage) external pure returns (uint256) {
        return PercentageMath.percentDivCeil(value, percentage);
    }

    function mulDivCeil(uint256 a, uint256 b, uint256 c) external pure returns (uint256) {
        return MathUtils.mulDivCeil(a, b, c);
    }

    /// @dev `lastUpdateTimestamp` keeps the library's uint40: a wider value is rejected by the ABI
    /// decoder, exactly as the pool can never store one.
    function calculateCompoundedInterest(uint256 rate, uint40 lastUpdateTimestamp, uint256 currentTimestamp)
        external
        pure
        returns (uint256)
    {
        return MathUtils.calculateCompoundedInterest(rate, lastUpdateTimestamp, currentTimestamp);
    }
}
