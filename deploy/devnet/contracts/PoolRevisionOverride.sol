// SPDX-License-Identifier: MIT
pragma solidity ^0.8.0;

/// @title PoolRevisionOverride
/// @notice Test double for version gates: installed as the implementation behind an Aave pool's
/// proxy, it reports another POOL_REVISION() and delegates every other call to the real
/// implementation, so the pool keeps its storage and behaviour but claims to be another release.
contract PoolRevisionOverride {
    address public immutable implementation;
    uint256 public immutable revision;

    constructor(address implementation_, uint256 revision_) {
        implementation = implementation_;
        revision = revision_;
    }

    function POOL_REVISION() external view returns (uint256) {
        return revision;
    }

    fallback() external payable {
        address target = implementation;
        assembly {
            calldatacopy(0, 0, calldatasize())
            let ok := delegatecall(gas(), target, 0, calldatasize(), 0, 0)
            returndatacopy(0, 0, returndatasize())
            switch ok
            case 0 { revert(0, returndatasize()) }
            default { return(0, returndatasize()) }
        }
    }
}
