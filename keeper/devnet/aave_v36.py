"""Aave V3 v3.6 on the devnet: `@aave-dao/aave-v3-origin@3.6.0` compiled with solc-js 0.8.27.

What differs from v3.0.x (aave-v3.6-notes.md §6): one `DefaultReserveInterestRateStrategyV2` is a
Pool immutable (`PoolInstance(provider, strategy)`), each reserve's curve is `interestRateData` in
`InitReserveInput` (bps); token implementations take the treasury and rewards controller as
immutables; there is no stable debt token; eMode membership is a pair of bitmaps per category set
through `setAssetCollateralInEMode` / `setAssetBorrowableInEMode` (3.2+), and a category has no
oracle of its own.
"""

from __future__ import annotations

from .aave_market import (
    FLASH_LOAN_PREMIUM_BPS,
    ZERO,
    AaveDeployment,
    Admin,
    deploy_oracle_and_data_provider,
    deploy_provider_and_acl,
    risk_parameter_txs,
)
from .abi import encode_args
from .cases import case_emode_txs
from .rpc import Executor, Tx
from .spec import ASSETS, CASE_ASSETS, EMODE, interest_rate_data_bps
from .toolchain import Toolchain, compiled_aave_v36

VERSION = "3.6"
POOL_REVISION = 10
LIBRARY_ORDER = (
    "BorrowLogic",
    "ConfiguratorLogic",
    "FlashLoanLogic",
    "LiquidationLogic",
    "PoolLogic",
    "SupplyLogic",
)
"""Upstream's batches: FlashLoanLogic links BorrowLogic, so BorrowLogic comes first."""
POOL_LIBRARIES = ("BorrowLogic", "FlashLoanLogic", "LiquidationLogic", "PoolLogic", "SupplyLogic")
INIT_RESERVES = "initReserves((address,address,address,string,string,string,string,bytes,bytes)[])"


def deploy_aave_v36(
    ex: Executor, chain: Toolchain, admin_address: str, tokens: dict[str, str], feeds: dict[str, str]
) -> AaveDeployment:
    artifacts = compiled_aave_v36(chain)
    admin = Admin(ex, artifacts.__getitem__, admin_address)
    deploy, call = admin.deploy, admin.call
    provider, acl = deploy_provider_and_acl(admin)
    strategy = deploy("DefaultReserveInterestRateStrategyV2", "(address)", provider)

    libs: dict[str, str] = {}
    for name in LIBRARY_ORDER:
        libs[name] = deploy(name, libs=libs)
    pool_libs = {name: libs[name] for name in POOL_LIBRARIES}
    pool_impl = deploy("PoolInstance", "(address,address)", provider, strategy, libs=pool_libs)
    call(provider, "setPoolImpl(address)", pool_impl)  # proxy + initialize(provider)
    configurator_impl = deploy(
        "PoolConfiguratorInstance", libs={"ConfiguratorLogic": libs["ConfiguratorLogic"]}
    )
    call(provider, "setPoolConfiguratorImpl(address)", configurator_impl)  # reads getPool()
    pool = admin.view_address(provider, "getPool()")
    configurator = admin.view_address(provider, "getPoolConfigurator()")

    oracle, data_provider = deploy_oracle_and_data_provider(admin, provider, tokens, feeds)
    _init_reserves(admin, pool, configurator, tokens)
    return AaveDeployment(VERSION, provider, pool, configurator, oracle, data_provider, acl)


def _init_reserves(admin: Admin, pool: str, configurator: str, tokens: dict[str, str]) -> None:
    """Token implementations on the pool proxy (treasury = the admin, no rewards controller), the
    reserves with their rate curves, risk parameters, then the eMode category and its bitmaps.
    The case assets (`CASE_ASSETS`), when deployed, are listed after the others with their eMode."""
    specs = tuple(spec for spec in ASSETS + CASE_ASSETS if spec.symbol in tokens)
    a_token = admin.deploy("ATokenInstance", "(address,address,address)", pool, ZERO, admin.address)
    variable_debt = admin.deploy("VariableDebtTokenInstance", "(address,address)", pool, ZERO)
    inputs = [
        (
            a_token,
            variable_debt,
            tokens[spec.symbol],
            f"Aave Devnet {spec.symbol}",
            f"a{spec.symbol}",
            f"Variable Debt {spec.symbol}",
            f"variableDebt{spec.symbol}",
            b"",
            encode_args("(uint16,uint32,uint32,uint32)", *interest_rate_data_bps(spec)),
        )
        for spec in specs
    ]
    txs: list[Tx] = [admin.tx(configurator, INIT_RESERVES, inputs, label="initReserves", gas=16_000_000)]
    txs += risk_parameter_txs(admin, configurator, tokens, specs)
    txs.append(
        admin.tx(configurator, "updateFlashloanPremium(uint128)", FLASH_LOAN_PREMIUM_BPS, label="premium")
    )
    txs.append(
        admin.tx(
            configurator,
            "setEModeCategory(uint8,uint16,uint16,uint16,string)",
            EMODE.category_id,
            EMODE.ltv_bps,
            EMODE.liquidation_threshold_bps,
            EMODE.liquidation_bonus_bps,
            EMODE.label,
        )
    )
    for spec in ASSETS:
        if spec.emode_category:
            for setter in ("setAssetCollateralInEMode", "setAssetBorrowableInEMode"):
                txs.append(
                    admin.tx(
                        configurator,
                        f"{setter}(address,uint8,bool)",
                        tokens[spec.symbol],
                        spec.emode_category,
                        True,
                        label=f"{setter} {spec.symbol}",
                    )
                )
    if len(specs) > len(ASSETS):
        txs += case_emode_txs(admin, configurator, tokens)
    admin.ex.execute(txs)
