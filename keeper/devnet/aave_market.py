"""What every Aave V3 devnet market shares, whatever the version: the admin who deploys and
configures it, the ACL roles, the oracle on the devnet's feeds, the data provider and each
reserve's risk parameters. The version modules (`aave_v30`, `aave_v36`) deploy the core between
these steps; the calls here have the same ABI in v3.0.x and v3.6.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from eth_utils.address import to_checksum_address

from .abi import decode_result, encode_args, encode_call
from .rpc import CALL_GAS, Executor, Tx
from .spec import ASSETS, AssetSpec
from .toolchain import Artifact

ZERO = "0x0000000000000000000000000000000000000000"
ORACLE_BASE_UNIT = 10**8  # base currency USD with 8 decimals
MARKET_ID = "keeper-devnet"


@dataclass(frozen=True)
class AaveDeployment:
    version: str
    pool_addresses_provider: str
    pool: str
    pool_configurator: str
    oracle: str
    data_provider: str
    acl_manager: str


@dataclass(frozen=True)
class Admin:
    """Deploys artifacts and sends admin calls, one mined block each (order matters here)."""

    ex: Executor
    artifact: Callable[[str], Artifact]
    address: str

    def deploy(self, name: str, ctor_sig: str = "", *args: object, libs: dict[str, str] | None = None) -> str:
        code = self.artifact(name).linked(libs or {})
        ctor = encode_args(ctor_sig, *args) if ctor_sig else b""
        return self.ex.deploy(self.address, code + ctor, name)

    def call(self, to: str, sig: str, *args: object) -> None:
        self.ex.execute([Tx(self.address, to, encode_call(sig, *args), sig)])

    def tx(self, to: str, sig: str, *args: object, label: str = "", gas: int = CALL_GAS) -> Tx:
        return Tx(self.address, to, encode_call(sig, *args), label or sig, gas=gas)

    def view_address(self, to: str, sig: str) -> str:
        (address,) = decode_result(["address"], self.ex.rpc.eth_call(to, encode_call(sig)))
        return to_checksum_address(address)


def deploy_provider_and_acl(admin: Admin) -> tuple[str, str]:
    """The provider first (the deployer's nonce 0: `devnet price` finds the market there), then
    the ACL: `setACLAdmin` must precede the ACLManager constructor, which reads it."""
    provider = admin.deploy("PoolAddressesProvider", "(string,address)", MARKET_ID, admin.address)
    admin.call(provider, "setACLAdmin(address)", admin.address)
    acl = admin.deploy("ACLManager", "(address)", provider)
    admin.call(provider, "setACLManager(address)", acl)
    for role in ("addPoolAdmin", "addRiskAdmin", "addAssetListingAdmin", "addEmergencyAdmin"):
        admin.call(acl, f"{role}(address)", admin.address)
    return provider, acl


def deploy_oracle_and_data_provider(
    admin: Admin, provider: str, tokens: dict[str, str], feeds: dict[str, str]
) -> tuple[str, str]:
    """AaveOracle on the devnet's own feeds (USD, 8 decimals) for every token deployed, and the
    data provider, registered."""
    symbols = list(tokens)
    oracle = admin.deploy(
        "AaveOracle",
        "(address,address[],address[],address,address,uint256)",
        provider,
        [tokens[s] for s in symbols],
        [feeds[s] for s in symbols],
        ZERO,
        ZERO,
        ORACLE_BASE_UNIT,
    )
    admin.call(provider, "setPriceOracle(address)", oracle)
    data_provider = admin.deploy("AaveProtocolDataProvider", "(address)", provider)
    admin.call(provider, "setPoolDataProvider(address)", data_provider)
    return oracle, data_provider


FLASH_LOAN_PREMIUM_BPS = 5
"""``FLASHLOAN_PREMIUM_TOTAL``: 0.05 %, Aave's mainnet value (v3.4+ sends it all to the treasury)."""


def risk_parameter_txs(
    admin: Admin, configurator: str, tokens: dict[str, str], specs: tuple[AssetSpec, ...] = ASSETS
) -> list[Tx]:
    """Per reserve: collateral parameters, borrowing, reserve factor, liquidation protocol fee, and
    flash loans on for the borrowable ones (as production markets list them)."""
    txs = []
    for spec in specs:
        asset = tokens[spec.symbol]
        calls: list[tuple[str, tuple[object, ...]]] = [
            (
                "configureReserveAsCollateral(address,uint256,uint256,uint256)",
                (asset, spec.ltv_bps, spec.liquidation_threshold_bps, spec.liquidation_bonus_bps),
            ),
            ("setReserveBorrowing(address,bool)", (asset, spec.borrowable)),
            ("setReserveFactor(address,uint256)", (asset, spec.reserve_factor_bps)),
            ("setLiquidationProtocolFee(address,uint256)", (asset, spec.liquidation_protocol_fee_bps)),
        ]
        if spec.borrowable:
            calls.append(("setReserveFlashLoaning(address,bool)", (asset, True)))
        txs += [admin.tx(configurator, sig, *args, label=f"{sig} {spec.symbol}") for sig, args in calls]
    return txs
