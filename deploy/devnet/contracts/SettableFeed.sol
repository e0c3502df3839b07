// SPDX-License-Identifier: MIT
pragma solidity ^0.8.0;

import {AggregatorV2V3Interface} from "@chainlink/contracts/src/v0.8/interfaces/AggregatorV2V3Interface.sol";

/// @title SettableFeed
/// @notice Devnet price feed that behaves like a production Chainlink aggregator: every update is a
/// new round with its own history and emits AnswerUpdated and NewRound, so a keeper can react to
/// feed events exactly as it would on mainnet. Chainlink's own MockV3Aggregator emits no event.
contract SettableFeed is AggregatorV2V3Interface {
    uint8 public immutable override decimals;
    uint256 public constant override version = 4;
    string public override description;
    address public immutable owner;

    uint80 internal _latestRound;
    mapping(uint256 => int256) internal _answers;
    mapping(uint256 => uint256) internal _updatedAt;

    constructor(uint8 decimals_, string memory description_, int256 initialAnswer) {
        decimals = decimals_;
        description = description_;
        owner = msg.sender;
        _record(initialAnswer);
    }

    function updateAnswer(int256 answer) external {
        require(msg.sender == owner, "SettableFeed: not owner");
        _record(answer);
    }

    function latestAnswer() external view override returns (int256) {
        return _answers[_latestRound];
    }

    function latestTimestamp() external view override returns (uint256) {
        return _updatedAt[_latestRound];
    }

    function latestRound() external view override returns (uint256) {
        return _latestRound;
    }

    function getAnswer(uint256 roundId) external view override returns (int256) {
        return _answers[roundId];
    }

    function getTimestamp(uint256 roundId) external view override returns (uint256) {
        return _updatedAt[roundId];
    }

    function getRoundData(uint80 roundId)
        external
        view
        override
        returns (uint80, int256, uint256, uint256, uint80)
    {
        require(_updatedAt[roundId] != 0, "No data present");
        return (roundId, _answers[roundId], _updatedAt[roundId], _updatedAt[roundId], roundId);
    }

    function latestRoundData() external view override returns (uint80, int256, uint256, uint256, uint80) {
        uint80 roundId = _latestRound;
        return (roundId, _answers[roundId], _updatedAt[roundId], _updatedAt[roundId], roundId);
    }

    function _record(int256 answer) internal {
        uint80 roundId = _latestRound + 1;
        _latestRound = roundId;
        _answers[roundId] = answer;
        _updatedAt[roundId] = block.timestamp;
        emit AnswerUpdated(answer, roundId, block.timestamp);
        emit NewRound(roundId, msg.sender, block.timestamp);
    }
}
