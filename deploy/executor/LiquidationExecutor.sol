// SPDX-License-Identifier: MIT
pragma solidity 0.8.19;

// The keeper's own capital-free liquidation executor. One owner (the keeper's account) calls it; for
// each opportunity it borrows the debt asset (Morpho Blue's fee-free flash loan or Aave's
// flashLoanSimple), liquidates (Aave liquidationCall; or Morpho liquidate, whose own callback needs no
// flash loan), sells all of the seized collateral on a Uniswap V3 SwapRouter, repays, and sends the
// debt-asset profit to the beneficiary, or reverts when the profit is under the owner's floor.
//
// Interfaces are declared here, minimal, from the protocols' sources (aave-v3-origin 3.6.0 IPool,
// morpho-blue 1.0.0 IMorpho, v3-periphery 1.4.4 ISwapRouter): nothing third-party is copied.

interface IERC20Min {
    function balanceOf(address account) external view returns (uint256);
}

interface IAavePool {
    function getUserAccountData(address user)
        external
        view
        returns (uint256, uint256, uint256, uint256, uint256, uint256 healthFactor);

    function liquidationCall(address collateral, address debt, address user, uint256 debtToCover, bool receiveAToken)
        external;

    function flashLoanSimple(address receiver, address asset, uint256 amount, bytes calldata params, uint16 referral)
        external;
}

struct MarketParams {
    address loanToken;
    address collateralToken;
    address oracle;
    address irm;
    uint256 lltv;
}

interface IMorphoMin {
    function flashLoan(address token, uint256 assets, bytes calldata data) external;

    function liquidate(
        MarketParams memory marketParams,
        address borrower,
        uint256 seizedAssets,
        uint256 repaidShares,
        bytes memory data
    ) external returns (uint256, uint256);
}

interface ISwapRouterMin {
    struct ExactInputSingleParams {
        address tokenIn;
        address tokenOut;
        uint24 fee;
        address recipient;
        uint256 deadline;
        uint256 amountIn;
        uint256 amountOutMinimum;
        uint160 sqrtPriceLimitX96;
    }

    function exactInputSingle(ExactInputSingleParams calldata params) external payable returns (uint256);
}

contract LiquidationExecutor {
    /// How one opportunity is financed. AAVE_*: an Aave liquidationCall on `pool`, the debt asset
    /// flash-borrowed from Morpho (`morpho`, no fee) or from `pool` itself (premium paid).
    /// MORPHO_CALLBACK: Morpho's liquidate sends the collateral first and pulls the repayment after
    /// its callback, so no flash loan at all.
    enum Route {
        AAVE_MORPHO_FLASH,
        AAVE_AAVE_FLASH,
        MORPHO_CALLBACK
    }

    struct Params {
        Route route;
        address pool; // Aave pool (AAVE_* routes)
        address morpho; // Morpho Blue (AAVE_MORPHO_FLASH lender, MORPHO_CALLBACK market)
        address router; // Uniswap V3 SwapRouter the seized collateral is sold on
        address user; // the borrower
        address collateral; // seized (MORPHO_CALLBACK: must be market.collateralToken)
        address debt; // repaid, and the profit's asset (MORPHO_CALLBACK: must be market.loanToken)
        uint256 debtToCover; // AAVE_*: flash-borrowed and passed to liquidationCall (not uint max)
        MarketParams market; // MORPHO_CALLBACK
        uint256 seizedAssets; // MORPHO_CALLBACK: exactly one of seizedAssets / repaidShares is non-zero
        uint256 repaidShares;
        uint24 fee; // the Uniswap V3 pool's fee tier
        uint256 amountOutMinimum; // for the swap of all the seized collateral
        uint256 minProfit; // debt-asset units left after repaying, or the whole call reverts
    }

    // The in-call lock: IDLE outside an owner call; during one, the only address allowed to call
    // back (the Aave pool or Morpho of this call) and which callback it may make. A non-zero idle
    // value keeps the set/reset a cheap non-zero-to-non-zero write (no transient storage before
    // Cancun / solc 0.8.24).
    uint256 private constant IDLE = 1;
    uint256 private constant EXPECT_AAVE_FLASH = 1;
    uint256 private constant EXPECT_MORPHO_FLASH = 2;
    uint256 private constant EXPECT_MORPHO_LIQUIDATE = 3;
    uint256 private _lock = IDLE;

    address public immutable owner;
    address public immutable beneficiary;

    event Liquidated(address indexed user, Route route, address indexed debt, uint256 profit);
    event Skipped(uint256 indexed index, address indexed user, bytes reason);

    error NotOwner();
    error OnlySelf();
    error Busy();
    error UnexpectedCallback();
    error BadParams();
    error NotLiquidatable(uint256 healthFactor);
    error Loss(uint256 amount);
    error ProfitTooLow(uint256 profit, uint256 minProfit);
    error TokenCallFailed(address token);
    error EthTransferFailed();
    error Unsold(uint256 amount);

    constructor(address owner_, address beneficiary_) {
        if (owner_ == address(0) || beneficiary_ == address(0)) revert BadParams();
        owner = owner_;
        beneficiary = beneficiary_;
    }

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner();
        _;
    }

    // --- owner entry points ------------------------------------------------------------------

    /// One opportunity; reverts (nothing moved) unless its profit reaches `p.minProfit`.
    function liquidate(Params calldata p) external onlyOwner returns (uint256 profit) {
        return _liquidate(p);
    }

    /// Several opportunities in one transaction. Each runs in its own external self-call, so one
    /// that fails (a race lost, a swap under its minimum, a profit under its floor) is rolled back
    /// alone and reported as `Skipped`; the others still pay. Returns each item's profit (0 when
    /// skipped).
    function liquidateBatch(Params[] calldata ps) external onlyOwner returns (uint256[] memory profits) {
        profits = new uint256[](ps.length);
        for (uint256 i = 0; i < ps.length; ++i) {
            try this.liquidateOneOfBatch(ps[i]) returns (uint256 profit) {
                profits[i] = profit;
            } catch (bytes memory reason) {
                emit Skipped(i, ps[i].user, reason);
            }
        }
    }

    /// The batch's per-item frame; only this contract itself (inside an owner call) may call it.
    function liquidateOneOfBatch(Params calldata p) external returns (uint256) {
        if (msg.sender != address(this)) revert OnlySelf();
        return _liquidate(p);
    }

    /// Stray tokens (or ETH, with `token` = 0) out; the only other way funds leave.
    function rescue(address token, address to, uint256 amount) external onlyOwner {
        if (token == address(0)) {
            (bool ok,) = to.call{value: amount}("");
            if (!ok) revert EthTransferFailed();
        } else {
            _transfer(token, to, amount);
        }
    }

    // --- protocol callbacks --------------------------------------------------------------------

    /// Aave flashLoanSimple: only the pool this call borrowed from, only for a loan this contract took.
    function executeOperation(address asset, uint256 amount, uint256 premium, address initiator, bytes calldata data)
        external
        returns (bool)
    {
        _expect(EXPECT_AAVE_FLASH);
        if (initiator != address(this)) revert UnexpectedCallback();
        (Params memory p, uint256 collateralBefore) = abi.decode(data, (Params, uint256));
        _liquidateAaveAndSell(p, collateralBefore);
        _approve(asset, msg.sender, amount + premium);
        return true;
    }

    /// Morpho flashLoan: lends to its caller only, so a call here is ours when the lock expects it.
    function onMorphoFlashLoan(uint256 assets, bytes calldata data) external {
        _expect(EXPECT_MORPHO_FLASH);
        (Params memory p, uint256 collateralBefore) = abi.decode(data, (Params, uint256));
        _liquidateAaveAndSell(p, collateralBefore);
        _approve(p.debt, msg.sender, assets);
    }

    /// Morpho liquidate: the collateral is already here; sell it and let Morpho pull `repaidAssets`.
    function onMorphoLiquidate(uint256 repaidAssets, bytes calldata data) external {
        _expect(EXPECT_MORPHO_LIQUIDATE);
        (Params memory p, uint256 collateralBefore) = abi.decode(data, (Params, uint256));
        _sellSeized(p, collateralBefore);
        _approve(p.debt, msg.sender, repaidAssets);
    }

    // --- internals -----------------------------------------------------------------------------

    function _liquidate(Params calldata p) internal returns (uint256 profit) {
        if (_lock != IDLE) revert Busy();
        if (p.collateral == p.debt) revert BadParams();
        if (p.route != Route.MORPHO_CALLBACK) {
            // Early guard: a race already lost costs this view, not a flash loan and a revert.
            (,,,,, uint256 healthFactor) = IAavePool(p.pool).getUserAccountData(p.user);
            if (healthFactor >= 1e18) revert NotLiquidatable(healthFactor);
        } else if (p.market.collateralToken != p.collateral || p.market.loanToken != p.debt) {
            revert BadParams();
        }
        uint256 debtBefore = IERC20Min(p.debt).balanceOf(address(this));
        bytes memory data = abi.encode(p, IERC20Min(p.collateral).balanceOf(address(this)));
        if (p.route == Route.AAVE_AAVE_FLASH) {
            _lock = _lockFor(p.pool, EXPECT_AAVE_FLASH);
            IAavePool(p.pool).flashLoanSimple(address(this), p.debt, p.debtToCover, data, 0);
        } else if (p.route == Route.AAVE_MORPHO_FLASH) {
            _lock = _lockFor(p.morpho, EXPECT_MORPHO_FLASH);
            IMorphoMin(p.morpho).flashLoan(p.debt, p.debtToCover, data);
        } else {
            // Morpho's own check ("position is healthy") is the guard: it reverts before moving anything.
            _lock = _lockFor(p.morpho, EXPECT_MORPHO_LIQUIDATE);
            IMorphoMin(p.morpho).liquidate(p.market, p.user, p.seizedAssets, p.repaidShares, data);
        }
        _lock = IDLE;
        uint256 debtAfter = IERC20Min(p.debt).balanceOf(address(this));
        if (debtAfter < debtBefore) revert Loss(debtBefore - debtAfter);
        profit = debtAfter - debtBefore;
        if (profit < p.minProfit) revert ProfitTooLow(profit, p.minProfit);
        if (profit > 0) _transfer(p.debt, beneficiary, profit);
        emit Liquidated(p.user, p.route, p.debt, profit);
    }

    function _liquidateAaveAndSell(Params memory p, uint256 collateralBefore) internal {
        _approve(p.debt, p.pool, p.debtToCover);
        IAavePool(p.pool).liquidationCall(p.collateral, p.debt, p.user, p.debtToCover, false);
        _approve(p.debt, p.pool, 0); // the pool may have taken less (close factor, dust, deficit)
        _sellSeized(p, collateralBefore);
    }

    /// Sells exactly what this liquidation seized, all of it: no collateral stays behind.
    function _sellSeized(Params memory p, uint256 collateralBefore) internal {
        uint256 seized = IERC20Min(p.collateral).balanceOf(address(this)) - collateralBefore;
        _approve(p.collateral, p.router, seized);
        ISwapRouterMin(p.router).exactInputSingle(
            ISwapRouterMin.ExactInputSingleParams({
                tokenIn: p.collateral,
                tokenOut: p.debt,
                fee: p.fee,
                recipient: address(this),
                deadline: block.timestamp,
                amountIn: seized,
                amountOutMinimum: p.amountOutMinimum,
                sqrtPriceLimitX96: 0
            })
        );
        // A pool out of liquidity stops at its price limit with input unspent: nothing may stay.
        uint256 left = IERC20Min(p.collateral).balanceOf(address(this));
        if (left != collateralBefore) revert Unsold(left - collateralBefore);
    }

    function _expect(uint256 kind) internal view {
        if (_lock != _lockFor(msg.sender, kind)) revert UnexpectedCallback();
    }

    function _lockFor(address caller, uint256 kind) internal pure returns (uint256) {
        return uint256(uint160(caller)) | (kind << 160);
    }

    /// approve, tolerating tokens that return nothing and those that refuse a non-zero-to-non-zero change.
    function _approve(address token, address spender, uint256 amount) internal {
        if (!_tokenCall(token, abi.encodeWithSelector(0x095ea7b3, spender, amount))) {
            if (!_tokenCall(token, abi.encodeWithSelector(0x095ea7b3, spender, 0))) revert TokenCallFailed(token);
            if (!_tokenCall(token, abi.encodeWithSelector(0x095ea7b3, spender, amount))) {
                revert TokenCallFailed(token);
            }
        }
    }

    function _transfer(address token, address to, uint256 amount) internal {
        if (!_tokenCall(token, abi.encodeWithSelector(0xa9059cbb, to, amount))) revert TokenCallFailed(token);
    }

    function _tokenCall(address token, bytes memory data) internal returns (bool) {
        (bool ok, bytes memory ret) = token.call(data);
        return ok && (ret.length == 0 ? token.code.length > 0 : abi.decode(ret, (bool)));
    }
}
