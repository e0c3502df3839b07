"""Configuration: TOML parsed once at the boundary into frozen, validated objects.

Unknown keys are errors (a typo must not silently fall back to a default). Secrets are never in
the file: the signer names an environment variable or a keystore and password file.
"""

from __future__ import annotations

import copy
import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from eth_utils.address import is_checksum_address, is_hex_address, to_checksum_address
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from keeper.errors import UsageError


def checked_address(value: str) -> str:
    """``value`` checksummed; ``ValueError`` unless it is 20 bytes of hex with a valid (or no) checksum."""
    if not is_hex_address(value):
        raise ValueError(f"{value!r} is not a 20-byte hex address")
    mixed_case = value[2:] != value[2:].lower() and value[2:] != value[2:].upper()
    if mixed_case and not is_checksum_address(value):
        raise ValueError(f"{value} has a bad checksum (expected {to_checksum_address(value)})")
    return to_checksum_address(value)


Address = Annotated[str, AfterValidator(checked_address)]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ChainConfig(_Section):
    chain_id: int = Field(gt=0)
    rpc_urls: tuple[str, ...] = Field(min_length=1)
    max_head_lag_blocks: int = Field(default=3, ge=1)
    """An http endpoint whose head is further behind the best one serves no reads until it catches up."""
    request_timeout_s: float = Field(default=10.0, gt=0)
    """How long one HTTP request may take before it counts as a timeout and fails over (a head poll
    round waits at most 1 s whatever this is)."""
    head_stall_warn_s: float = Field(default=60.0, gt=0)
    """Warn (``chain_head_stalled``, once) when the best head has not moved for this long."""
    multicall3: Address = "0xcA11bde05977b3631167028862bE2a173976CA11"
    """Multicall3 (``aggregate3``), which every batched read goes through: its canonical address,
    deployed on every major chain; name another deployment on a chain that lacks it there."""

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
    """Wrapped native token (WETH): profits are valued in it, with a protocol oracle's prices or, when
    none prices every token of an opportunity, with ``[[price_feeds]]`` (which must price it too)."""
    executor: Address | None = None
    """The keeper's deployed `LiquidationExecutor` (`keeper executor deploy`); check-config verifies it."""
    strategy: Literal["flash", "inventory"] | None = None
    """flash: each liquidation runs through `executor`, financed by a flash loan (or Morpho's
    liquidate callback) and repaid by selling the seized collateral on a `venues` DEX, so the keeper
    needs only gas; inventory: the keeper pays the debt from its own tokens. Default: flash when an
    executor is configured, else inventory."""
    max_slippage_bps: int = Field(default=100, ge=0, le=5_000)
    """flash: the swap's minimum output is the quoted output less this; the executor reverts below it."""
    simulate_flash: bool = False
    """flash: also simulate each liquidation (``eth_estimateGas``) before sending it. Off by default:
    the exact maths, the swap quote and the executor's guards already decide, and the simulation is
    a round trip per wave on the way to the first transaction. Dry-run always simulates."""
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
    max_price_age_s: int = Field(default=90_000, ge=0)
    """Refuse a price whose feed was last updated longer ago (0 = no limit); 25 h covers 24 h heartbeats."""
    max_price_jump_bps: int = Field(default=5_000, ge=0)
    """Refuse, for one block, a price that moved more than this since the previous block (0 = no limit)."""
    shutdown_grace_s: float = Field(default=30.0, ge=0)
    """On SIGTERM/SIGINT, how long to keep following blocks so in-flight transactions settle."""
    approvals: Literal["bounded", "unlimited", "off"] = "bounded"
    """Debt-token allowances for the pool / Morpho, sent by the keeper itself when short: "bounded"
    approves the wallet's balance of the token, "unlimited" uint256 max, "off" never approves."""

    @property
    def flash(self) -> bool:
        """Whether liquidations go through the executor contract."""
        return self.strategy == "flash" or (self.strategy is None and self.executor is not None)


class GuardConfig(_Section):
    """The spend guard (`keeper.execution.guard`): caps on gas paid and realized loss per rolling
    hour and day (wei), and on reverted transactions within ``revert_window_s``. Reaching one stops
    new sends until `keeper guard reset`. 0 turns that cap off (explicitly: there is no default
    of "no cap"). The defaults never trip on the devnet's runs (a 320-liquidation crash pays
    ~0.1 ETH of gas); size them to your chain's gas prices and your wallet."""

    max_gas_per_hour_wei: int = Field(default=10**18, ge=0)
    max_gas_per_day_wei: int = Field(default=5 * 10**18, ge=0)
    max_loss_per_hour_wei: int = Field(default=2 * 10**17, ge=0)
    max_loss_per_day_wei: int = Field(default=10**18, ge=0)
    max_reverts: int = Field(default=50, ge=0)
    """Reverted keeper transactions (status 0, lost races included) within ``revert_window_s``
    that stop the keeper. Lost races are part of it on purpose: a keeper outbid 50 times an hour
    pays for nothing, and its operator should look (the devnet's race run loses 16)."""
    revert_window_s: int = Field(default=3_600, gt=0)


class StoreConfig(_Section):
    path: Path = Path("keeper.sqlite")


class MetricsConfig(_Section):
    listen: str = "127.0.0.1:9108"
    """host:port of the status server (/metrics, /healthz, /readyz, /positions); "" turns it off."""
    ready_max_blocks_behind: int = Field(default=3, ge=0)
    ready_max_head_age_s: float = Field(default=120.0, gt=0)
    """/readyz fails when the last processed block is older than this (RPC cut, node stalled)."""

    @model_validator(mode="after")
    def _listen(self) -> MetricsConfig:
        if self.listen:
            host, _, port = self.listen.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"listen: {self.listen!r} is not host:port")
        return self


class AaveV3Config(_Section):
    kind: Literal["aave_v3"]
    name: str = Field(min_length=1)
    pool_addresses_provider: Address
    start_block: int = Field(default=0, ge=0)
    allow_unsupported_version: bool = False
    """Unsafe: run on a pool whose detected Aave version the keeper has no exact maths for."""

    @property
    def entry_contract(self) -> tuple[str, str]:
        """(config key, address) of the contract everything else is discovered from."""
        return "pool_addresses_provider", self.pool_addresses_provider


class MorphoBlueConfig(_Section):
    kind: Literal["morpho_blue"]
    name: str = Field(min_length=1)
    address: Address
    start_block: int = Field(default=0, ge=0)
    markets: tuple[str, ...] = ()  # optional whitelist of market ids; empty = every market

    @property
    def entry_contract(self) -> tuple[str, str]:
        return "address", self.address


ProtocolConfig = Annotated[AaveV3Config | MorphoBlueConfig, Field(discriminator="kind")]

UNISWAP_V3_FEE_TIERS = (100, 500, 3000, 10000)
"""Mainnet's enabled tiers, in hundredths of a bip."""


class UniswapV3Venue(_Section):
    """A Uniswap V3 deployment to swap on: its factory (pools are found by pair and fee), router
    and quoter. With the flash strategy the executor sells seized collateral here, on the fee tier
    whose quote (QuoterV2, batched per block) pays the most."""

    kind: Literal["uniswap_v3"]
    factory: Address
    swap_router: Address
    quoter: Address
    fee_tiers: tuple[int, ...] = Field(default=UNISWAP_V3_FEE_TIERS, min_length=1)

    @model_validator(mode="after")
    def _fee_tiers(self) -> UniswapV3Venue:
        if any(not 0 < fee < 1_000_000 for fee in self.fee_tiers):
            raise ValueError("fee_tiers: each is a fee in hundredths of a bip, 1 to 999999 (e.g. 500)")
        if len(set(self.fee_tiers)) != len(self.fee_tiers):
            raise ValueError("fee_tiers: tiers must be unique")
        return self


class PriceFeedConfig(_Section):
    """A Chainlink-compatible feed (``latestRoundData``, ``decimals``) pricing one token, to value
    opportunities whose tokens no protocol oracle prices (a Morpho-only keeper, the native asset).

    Every feed must quote the same currency (Chainlink's X / USD feeds): a feed's answer is only
    compared with other feeds' answers, never with a protocol oracle's."""

    token: Address
    feed: Address
    max_age_s: int | None = Field(default=None, gt=0)
    """Refuse an answer whose ``updatedAt`` is older than this at the block's timestamp; None:
    ``execution.max_price_age_s``. Set it to the feed's heartbeat plus a margin."""


class Config(_Section):
    chain: ChainConfig
    signer: SignerConfig = SignerConfig()
    execution: ExecutionConfig = ExecutionConfig()
    guard: GuardConfig = GuardConfig()
    store: StoreConfig = StoreConfig()
    metrics: MetricsConfig = MetricsConfig()
    protocols: tuple[ProtocolConfig, ...] = Field(min_length=1)
    venues: tuple[UniswapV3Venue, ...] = ()
    price_feeds: tuple[PriceFeedConfig, ...] = ()

    @model_validator(mode="after")
    def _unique_names(self) -> Config:
        names = [p.name for p in self.protocols]
        if len(names) != len(set(names)):
            raise ValueError("protocols: names must be unique")
        tokens = [f.token for f in self.price_feeds]
        if len(tokens) != len(set(tokens)):
            raise ValueError("price_feeds: one feed per token")
        return self

    @model_validator(mode="after")
    def _flash_needs_its_parts(self) -> Config:
        if self.execution.strategy == "flash" and self.execution.executor is None:
            raise ValueError(
                "execution.strategy = 'flash' needs execution.executor (deploy one: keeper executor deploy)"
            )
        if self.execution.flash and not self.venues:
            raise ValueError("flash liquidations sell the seized collateral on a DEX: add a [[venues]] entry")
        return self


def parse_config(data: dict[str, Any], source: str = "config") -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
        raise UsageError(f"{source}: {where}: {message.removeprefix('Value error, ')}") from None


ENV_PREFIX = "KEEPER_"
ENV_SEPARATOR = "__"


def apply_env_overrides(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """12-factor overrides: ``KEEPER_<SECTION>__<KEY>=value`` replaces ``[section] key``.

    Deeper paths work the same way (``KEEPER_PROTOCOLS__0__START_BLOCK``); lists and tables are
    JSON (``KEEPER_CHAIN__RPC_URLS='["https://…"]'``), scalars are strings the schema coerces.
    Variables without the double underscore (the signer's ``KEEPER_PRIVATE_KEY``) are not overrides.
    """
    merged = copy.deepcopy(data)
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or ENV_SEPARATOR not in name:
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split(ENV_SEPARATOR)]
        value: Any = environ[name]
        if value.lstrip().startswith(("[", "{")):  # lists and tables; scalars coerce from strings
            try:
                value = json.loads(value)
            except ValueError:
                raise UsageError(f"{name}: not valid JSON: {value[:60]!r}") from None
        node: Any = merged
        for index, part in enumerate(path[:-1]):
            key: Any = int(part) if isinstance(node, list) and part.isdigit() else part
            if isinstance(node, list):
                if not isinstance(key, int) or key >= len(node):
                    raise UsageError(f"{name}: no {'.'.join(path[: index + 1])} in the config to override")
            elif key not in node:
                node[key] = {}
            node = node[key]
        last = path[-1]
        if isinstance(node, list):
            if not last.isdigit() or int(last) >= len(node):
                raise UsageError(f"{name}: no {'.'.join(path)} in the config to override")
            node[int(last)] = value
        else:
            node[last] = value
    return merged


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> Config:
    """The one place the process environment is read (for ``KEEPER_<SECTION>__<KEY>`` overrides)."""
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"config file {path} does not exist") from None
    except IsADirectoryError:
        raise UsageError(f"config file {path} is a directory") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: malformed TOML: {exc}") from None
    data = apply_env_overrides(data, os.environ if environ is None else environ)
    return parse_config(data, str(path))
