"""Configuration: TOML parsed once at the boundary into frozen, validated objects.

Unknown keys are errors (a typo must not silently fall back to a default). Secrets are never in
the file: the signer names an environment variable or a keystore and password file.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from eth_utils.address import is_checksum_address, is_hex_address, to_checksum_address
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from keeper.errors import UsageError


def _address(value: str) -> str:
    if not is_hex_address(value):
        raise ValueError(f"{value!r} is not a 20-byte hex address")
    mixed_case = value[2:] != value[2:].lower() and value[2:] != value[2:].upper()
    if mixed_case and not is_checksum_address(value):
        raise ValueError(f"{value} has a bad checksum (expected {to_checksum_address(value)})")
    return to_checksum_address(value)


Address = Annotated[str, AfterValidator(_address)]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ChainConfig(_Section):
    chain_id: int = Field(gt=0)
    rpc_urls: tuple[str, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _schemes(self) -> ChainConfig:
        for url in self.rpc_urls:
            if not url.startswith(("http://", "https://", "ws://", "wss://")):
                raise ValueError(f"rpc_urls: {url!r} must start with http(s):// or ws(s)://")
        return self


class SignerConfig(_Section):
    private_key_env: str | None = "KEEPER_PRIVATE_KEY"
    keystore: Path | None = None
    password_file: Path | None = None

    @model_validator(mode="after")
    def _one_source(self) -> SignerConfig:
        if (self.keystore is None) != (self.password_file is None):
            raise ValueError("keystore and password_file go together")
        return self


class ExecutionConfig(_Section):
    mode: Literal["live", "dry-run"] = "dry-run"
    native_asset: Address | None = None
    """Wrapped native token (WETH): profits are valued in it with the first aave_v3 protocol's oracle."""
    min_profit_wei: int = Field(default=0, ge=0)
    fee_strategy: Literal["fixed", "percentile", "profit_share"] = "fixed"
    priority_fee_wei: int = Field(default=1_000_000_000, ge=0)
    priority_percentile: int = Field(default=50, ge=1, le=99)
    profit_share_bps: int = Field(default=1_000, ge=0, le=10_000)
    base_fee_multiplier_bps: int = Field(default=20_000, ge=10_000)
    max_fee_per_gas_wei: int = Field(default=500_000_000_000, gt=0)
    max_gas_cost_share_bps: int = Field(default=5_000, ge=0, le=10_000)
    gas_limit_margin_bps: int = Field(default=2_000, ge=0)
    replace_after_blocks: int = Field(default=2, ge=1)
    shutdown_grace_s: float = Field(default=30.0, ge=0)
    """On SIGTERM/SIGINT, how long to keep following blocks so in-flight transactions settle."""


class StoreConfig(_Section):
    path: Path = Path("keeper.sqlite")


class MetricsConfig(_Section):
    listen: str = "127.0.0.1:9108"


class AaveV3Config(_Section):
    kind: Literal["aave_v3"]
    name: str = Field(min_length=1)
    pool_addresses_provider: Address
    start_block: int = Field(default=0, ge=0)


class MorphoBlueConfig(_Section):
    kind: Literal["morpho_blue"]
    name: str = Field(min_length=1)
    address: Address
    start_block: int = Field(default=0, ge=0)
    markets: tuple[str, ...] = ()  # optional whitelist of market ids; empty = every market


ProtocolConfig = Annotated[AaveV3Config | MorphoBlueConfig, Field(discriminator="kind")]


class Config(_Section):
    chain: ChainConfig
    signer: SignerConfig = SignerConfig()
    execution: ExecutionConfig = ExecutionConfig()
    store: StoreConfig = StoreConfig()
    metrics: MetricsConfig = MetricsConfig()
    protocols: tuple[ProtocolConfig, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> Config:
        names = [p.name for p in self.protocols]
        if len(names) != len(set(names)):
            raise ValueError("protocols: names must be unique")
        return self


def parse_config(data: dict[str, Any], source: str = "config") -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
        raise UsageError(f"{source}: {where}: {message.removeprefix('Value error, ')}") from None


def load_config(path: Path) -> Config:
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: malformed TOML: {exc}") from None
    return parse_config(data, str(path))
