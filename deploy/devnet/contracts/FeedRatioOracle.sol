// SPDX-License-Identifier: MIT
pragma solidity ^0.8.0;

import {AggregatorV3Interface} from "@chainlink/contracts/src/v0.8/interfaces/AggregatorV3Interface.sol";
import {IOracle} from "@morpho-org/morpho-blue/src/interfaces/IOracle.sol";

/// @title FeedRatioOracle
/// @notice Morpho Blue oracle pricing the collateral in loan-token units from two USD feeds, with the
/// scale convention of MorphoChainlinkOracleV2: price = SCALE_FACTOR * baseAnswer / quoteAnswer where
/// SCALE_FACTOR = 10^(36 + quoteTokenDecimals + quoteFeedDecimals - baseTokenDecimals - baseFeedDecimals).
/// It reads the same feeds as the devnet's Aave oracle, so one feed update moves both protocols.
contract FeedRatioOracle is IOracle {
    AggregatorV3Interface public immutable BASE_FEED;
    AggregatorV3Interface public immutable QUOTE_FEED;
    uint256 public immutable SCALE_FACTOR;

    constructor(
        AggregatorV3Interface baseFeed,
        AggregatorV3Interface quoteFeed,
        uint256 baseTokenDecimals,
        uint256 quoteTokenDecimals
    ) {
        BASE_FEED = baseFeed;
        QUOTE_FEED = quoteFeed;
        SCALE_FACTOR =
            10 ** (36 + quoteTokenDecimals + quoteFeed.decimals() - baseTokenDecimals - baseFeed.decimals());
    }

    function price() external view override returns (uint256) {
        return SCALE_FACTOR * _answer(BASE_FEED) / _answer(QUOTE_FEED);
    }

    function _answer(AggregatorV3Interface feed) internal view returns (uint256) {
        (, int256 answer,,,) = feed.latestRoundData();
        require(answer > 0, "FeedRatioOracle: non-positive answer");
        return uint256(answer);
    }
}
