"""Aave V3 v3.0.x on the devnet: the published `@aave/core-v3` artifacts, libraries linked at deploy.

The keeper's maths are v3.0.x's, so this is `keeper devnet up`'s default market.
"""

from __future__ import annotations

from functools import partial

from .aave_market import (
    FLASH_LOAN_PREMIUM_BPS,
    ZERO,
    AaveDeployment,
    Admin,
    deploy_oracle_and_data_provider,
    deploy_provider_and_acl,
    risk_parameter_txs,
)
from .rpc import Executor, Tx
from .spec import ASSETS, EMODE
from .toolchain import Toolchain, aave_artifact

VERSION = "3.0"
POOL_LIBRARIES = (
    "SupplyLogic",
    "BorrowLogic",
    "LiquidationLogic",
    "EModeLogic",
    "BridgeLogic",
    "PoolLogic",
    "FlashLoanLogic",
)


def deploy_aave_v30(
    ex: Executor, chain: Toolchain, admin_address: str, tokens: dict[str, str], feeds: dict[str, str]
) -> AaveDeployment:
    admin = Admin(ex, partial(aave_artifact, chain), admin_address)
    deploy, call = admin.deploy, admin.call
    provider, acl = deploy_provider_and_acl(admin)

    libs: dict[str, str] = {}
    for name in ("BorrowLogic", *[n for n in POOL_LIBRARIES if n != "BorrowLogic"], "ConfiguratorLogic"):
        libs[name] = deploy(name, libs=libs)  # FlashLoanLogic links BorrowLogic
    call(provider, "setPoolImpl(address)", deploy("Pool", "(address)", provider, libs=libs))
    configurator_impl = deploy("PoolConfigurator", libs={"ConfiguratorLogic": libs["ConfiguratorLogic"]})
    call(provider, "setPoolConfiguratorImpl(address)", configurator_impl)
    pool = admin.view_address(provider, "getPool()")
    configurator = admin.view_address(provider, "getPoolConfigurator()")

    oracle, data_provider = deploy_oracle_and_data_provider(admin, provider, tokens, feeds)
    _init_reserves(admin, provider, pool, configurator, tokens)
    return AaveDeployment(VERSION, provider, pool, configurator, oracle, data_provider, acl)


def _init_reserves(admin: Admin, provider: str, pool: str, configurator: str, tokens: dict[str, str]) -> None:
    """Reserves (a rate strategy each, stable rate off), risk parameters and one eMode category
    set through v3.0's per-asset category and its category oracle argument."""
    deploy = admin.deploy
    a_token = deploy("AToken", "(address)", pool)
    stable_debt = deploy("StableDebtToken", "(address)", pool)
    variable_debt = deploy("VariableDebtToken", "(address)", pool)
    inputs: list[tuple[object, ...]] = []
    for spec in ASSETS:
        strategy = deploy(
            "DefaultReserveInterestRateStrategy",
            "(address,uint256,uint256,uint256,uint256,uint256,uint256,uint256,uint256,uint256)",
            provider,
            spec.optimal_usage_ray,
            0,
            spec.slope1_ray,
            spec.slope2_ray,
            0,
            0,
            0,
            0,
            2 * 10**26,
        )
        s = spec.symbol
        inputs.append(
            (
                a_token,
                stable_debt,
                variable_debt,
                spec.decimals,
                strategy,
                tokens[s],
                admin.address,
                ZERO,
                f"Aave Devnet {s}",
                f"a{s}",
                f"Variable Debt {s}",
                f"variableDebt{s}",
                f"Stable Debt {s}",
                f"stableDebt{s}",
                b"",
            )
        )
    init_sig = (
        "initReserves((address,address,address,uint8,address,address,address,address,"
        "string,string,string,string,string,string,bytes)[])"
    )
    txs: list[Tx] = [admin.tx(configurator, init_sig, inputs, label="initReserves", gas=16_000_000)]
    txs.append(
        admin.tx(
            configurator,
            "setEModeCategory(uint8,uint16,uint16,uint16,address,string)",
            EMODE.category_id,
            EMODE.ltv_bps,
            EMODE.liquidation_threshold_bps,
            EMODE.liquidation_bonus_bps,
            ZERO,
            EMODE.label,
        )
    )
    txs += risk_parameter_txs(admin, configurator, tokens)
    txs.append(
        admin.tx(
            configurator, "updateFlashloanPremiumTotal(uint128)", FLASH_LOAN_PREMIUM_BPS, label="premium"
        )
    )
    txs += [
        admin.tx(
            configurator,
            "setAssetEModeCategory(address,uint8)",
            tokens[spec.symbol],
            spec.emode_category,
            label=f"setAssetEModeCategory {spec.symbol}",
        )
        for spec in ASSETS
        if spec.emode_category
    ]
    admin.ex.execute(txs)
