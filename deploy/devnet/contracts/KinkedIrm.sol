// SPDX-License-Identifier: MIT
pragma solidity ^0.8.0;

import {IIrm} from "@morpho-org/morpho-blue/src/interfaces/IIrm.sol";
import {MarketParams, Market} from "@morpho-org/morpho-blue/src/interfaces/IMorpho.sol";

/// @title KinkedIrm
/// @notice Devnet interest rate model for Morpho Blue: a per-second borrow rate that rises linearly with
/// utilization up to a kink and steeply after it (the shape of Aave's and Compound's curves). Morpho's own
/// IrmMock is fixed-function; a rate that moves with utilization exercises the keeper's accrual maths.
contract KinkedIrm is IIrm {
    uint256 internal constant WAD = 1e18;
    uint256 internal constant YEAR_S = 365 days;

    uint256 public immutable BASE_RATE;
    uint256 public immutable SLOPE1;
    uint256 public immutable SLOPE2;
    uint256 public immutable OPTIMAL_UTILIZATION;

    /// @param baseApr, slope1Apr, slope2Apr yearly rates in WAD; optimalUtilization in WAD (< 1e18).
    constructor(uint256 baseApr, uint256 slope1Apr, uint256 slope2Apr, uint256 optimalUtilization) {
        require(optimalUtilization > 0 && optimalUtilization < WAD, "KinkedIrm: bad kink");
        BASE_RATE = baseApr / YEAR_S;
        SLOPE1 = slope1Apr / YEAR_S;
        SLOPE2 = slope2Apr / YEAR_S;
        OPTIMAL_UTILIZATION = optimalUtilization;
    }

    function borrowRate(MarketParams memory marketParams, Market memory market) external view override returns (uint256) {
        return borrowRateView(marketParams, market);
    }

    function borrowRateView(MarketParams memory, Market memory market) public view override returns (uint256) {
        if (market.totalSupplyAssets == 0) return BASE_RATE;
        uint256 utilization = uint256(market.totalBorrowAssets) * WAD / market.totalSupplyAssets;
        if (utilization <= OPTIMAL_UTILIZATION) {
            return BASE_RATE + SLOPE1 * utilization / OPTIMAL_UTILIZATION;
        }
        return BASE_RATE + SLOPE1 + SLOPE2 * (utilization - OPTIMAL_UTILIZATION) / (WAD - OPTIMAL_UTILIZATION);
    }
}
