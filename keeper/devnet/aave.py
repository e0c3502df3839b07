"""Deploy the real Aave V3 (v3.0.x artifacts from @aave/core-v3) on Anvil and list its reserves."""

from __future__ import annotations

from dataclasses import dataclass

from eth_utils.address import to_checksum_address

from .abi import decode_result, encode_args, encode_call
from .rpc import Executor, Tx
from .spec import ASSETS, EMODE
from .toolchain import Toolchain, aave_artifact

ZERO = "0x0000000000000000000000000000000000000000"
ORACLE_BASE_UNIT = 10**8  # base currency USD with 8 decimals
POOL_LIBRARIES = (
    "SupplyLogic",
    "BorrowLogic",
    "LiquidationLogic",
    "EModeLogic",
    "BridgeLogic",
    "PoolLogic",
    "FlashLoanLogic",
)


@dataclass(frozen=True)
class AaveDeployment:
    pool_addresses_provider: str
    pool: str
    pool_configurator: str
    oracle: str
    data_provider: str
    acl_manager: str


@dataclass(frozen=True)
class _Admin:
    """Deploys artifacts and sends admin calls, one mined block each (order matters here)."""

    ex: Executor
    chain: Toolchain
    address: str

    def deploy(self, name: str, ctor_sig: str = "", *args: object, libs: dict[str, str] | None = None) -> str:
        code = aave_artifact(self.chain, name).linked(libs or {})
        ctor = encode_args(ctor_sig, *args) if ctor_sig else b""
        return self.ex.deploy(self.address, code + ctor, name)

    def call(self, to: str, sig: str, *args: object) -> None:
        self.ex.execute([Tx(self.address, to, encode_call(sig, *args), sig)])


def deploy_aave(
    ex: Executor, chain: Toolchain, admin_address: str, tokens: dict[str, str], feeds: dict[str, str]
) -> AaveDeployment:
    admin = _Admin(ex, chain, admin_address)
    deploy, call = admin.deploy, admin.call

    provider = deploy("PoolAddressesProvider", "(string,address)", "keeper-devnet", admin_address)
    call(provider, "setACLAdmin(address)", admin_address)
    acl = deploy("ACLManager", "(address)", provider)
    call(provider, "setACLManager(address)", acl)
    for role in ("addPoolAdmin", "addRiskAdmin", "addAssetListingAdmin", "addEmergencyAdmin"):
        call(acl, f"{role}(address)", admin_address)

    libs: dict[str, str] = {}
    for name in ("BorrowLogic", *[n for n in POOL_LIBRARIES if n != "BorrowLogic"], "ConfiguratorLogic"):
        libs[name] = deploy(name, libs=libs)  # FlashLoanLogic links BorrowLogic
    call(provider, "setPoolImpl(address)", deploy("Pool", "(address)", provider, libs=libs))
    configurator_impl = deploy("PoolConfigurator", libs={"ConfiguratorLogic": libs["ConfiguratorLogic"]})
    call(provider, "setPoolConfiguratorImpl(address)", configurator_impl)
    pool = _address_view(ex, provider, "getPool()")
    configurator = _address_view(ex, provider, "getPoolConfigurator()")

    symbols = [a.symbol for a in ASSETS]
    oracle = deploy(
        "AaveOracle",
        "(address,address[],address[],address,address,uint256)",
        provider,
        [tokens[s] for s in symbols],
        [feeds[s] for s in symbols],
        ZERO,
        ZERO,
        ORACLE_BASE_UNIT,
    )
    call(provider, "setPriceOracle(address)", oracle)
    data_provider = deploy("AaveProtocolDataProvider", "(address)", provider)
    call(provider, "setPoolDataProvider(address)", data_provider)

    _init_reserves(admin, provider, pool, configurator, tokens)
    return AaveDeployment(provider, pool, configurator, oracle, data_provider, acl)


def _init_reserves(
    admin: _Admin, provider: str, pool: str, configurator: str, tokens: dict[str, str]
) -> None:
    """Reserves with distinct risk parameters, reserve factor, protocol fee and one eMode category."""
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
    txs = [Tx(admin.address, configurator, encode_call(init_sig, inputs), "initReserves", gas=16_000_000)]
    txs.append(
        Tx(
            admin.address,
            configurator,
            encode_call(
                "setEModeCategory(uint8,uint16,uint16,uint16,address,string)",
                EMODE.category_id,
                EMODE.ltv_bps,
                EMODE.liquidation_threshold_bps,
                EMODE.liquidation_bonus_bps,
                ZERO,
                EMODE.label,
            ),
            "setEModeCategory",
        )
    )
    for spec in ASSETS:
        asset = tokens[spec.symbol]
        calls: list[tuple[str, tuple[object, ...]]] = [
            (
                "configureReserveAsCollateral(address,uint256,uint256,uint256)",
                (asset, spec.ltv_bps, spec.liquidation_threshold_bps, spec.liquidation_bonus_bps),
            ),
            ("setReserveBorrowing(address,bool)", (asset, True)),
            ("setReserveFactor(address,uint256)", (asset, spec.reserve_factor_bps)),
            ("setLiquidationProtocolFee(address,uint256)", (asset, spec.liquidation_protocol_fee_bps)),
        ]
        if spec.emode_category:
            calls.append(("setAssetEModeCategory(address,uint8)", (asset, spec.emode_category)))
        txs += [
            Tx(admin.address, configurator, encode_call(sig, *args), f"{sig} {spec.symbol}")
            for sig, args in calls
        ]
    admin.ex.execute(txs)


def _address_view(ex: Executor, to: str, sig: str) -> str:
    (address,) = decode_result(["address"], ex.rpc.eth_call(to, encode_call(sig)))
    return to_checksum_address(address)
