"""The adapter interface the engine drives, and the plain data types every adapter speaks.

An adapter knows one lending protocol: which logs touch which positions, how to read the exact
state of those positions at one block in a constant number of round trips, and how the protocol
computes health and liquidation outcomes. The engine never asks the chain for a position's health.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Literal, Protocol

from keeper.chain.types import BlockRef as BlockRef  # noqa: PLC0414 (re-exported for the adapters)
from keeper.chain.types import LogFilter as LogFilter  # noqa: PLC0414
from keeper.math.uint import UINT256_MAX

if TYPE_CHECKING:  # the data types stay importable from the pure core without the I/O stack
    import numpy as np
    import numpy.typing as npt

    from keeper.chain.rpc import Rpc

WAD = 10**18


def shocked_price(price: int, shock: Fraction) -> int:
    """``price * (1 + shock)``, rounded down like a feed answer moved by that fraction."""
    return int(price * (1 + shock))


class NotLiquidatable(Exception):
    """The contract would revert this liquidation; ``reason`` names the ``require`` that fails."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True, order=True)
class PositionKey:
    """One borrower in one market (Aave: the pool address; Morpho Blue: the market id)."""

    market: str
    user: str


@dataclass(frozen=True, slots=True)
class PositionHealth:
    """Health as the protocol itself would report it at one timestamp, in the protocol's units."""

    protocol: str
    market: str
    user: str
    health_factor_wad: int
    collateral_base: int
    debt_base: int

    @property
    def liquidatable(self) -> bool:
        return self.debt_base > 0 and self.health_factor_wad < WAD

    @property
    def price_drop_to_liquidation(self) -> float:
        """Fraction by which collateral prices must fall (debt prices fixed) for health to reach 1."""
        if self.debt_base == 0 or self.health_factor_wad == UINT256_MAX:
            return 1.0
        return max(0.0, 1.0 - WAD / self.health_factor_wad) if self.health_factor_wad else 0.0


@dataclass(frozen=True, slots=True)
class LiquidationQuote:
    """What one liquidation call would do, exactly as the contract computes it.

    Amounts are in token units: ``debt_repaid`` of ``debt_asset`` paid by the liquidator,
    ``collateral_seized`` of ``collateral_asset`` received by the liquidator, ``protocol_fee``
    (Aave) of collateral sent to the treasury, ``bad_debt`` realized by the market (Morpho; Aave
    v3.6: the deficit created in the debt asset, other reserves' burns not counted).
    ``repaid_shares`` is the Morpho argument that produces exactly this outcome.
    """

    protocol: str
    market: str
    user: str
    collateral_asset: str
    debt_asset: str
    debt_repaid: int
    collateral_seized: int
    protocol_fee: int = 0
    repaid_shares: int = 0
    bad_debt: int = 0
    debt_value_base: int = 0
    collateral_value_base: int = 0
    """Values in the protocol's pricing unit (Aave base currency; Morpho loan-token units)."""
    receive_a_token: bool = False
    """Aave: take the collateral as aTokens (when the reserve lacks the underlying cash to pay out)."""
    priced_by: frozenset[str] = frozenset()
    """Keys of `MarketSnapshot.prices` this liquidation depends on: refused prices rule it out, and
    the engine never acts on a quote that names none."""
    debt_to_cover: int | None = None
    """Aave: the ``debtToCover`` argument when it must be exact (v3.6's dust rule); None passes
    uint256 max and lets the pool cap it at what it allows at inclusion."""


@dataclass(frozen=True, slots=True)
class ExecutorLeg:
    """The protocol half of a `LiquidationExecutor` call: what to liquidate and how much.

    ``kind`` "aave": ``liquidationCall`` on ``target`` (the pool) with ``debt_to_cover``, which the
    executor also flash-borrows. "morpho": ``liquidate`` on ``target`` (Morpho Blue) in ``market``
    by exactly one of ``seized_assets`` / ``repaid_shares``, repaid from Morpho's callback.
    """

    kind: Literal["aave", "morpho"]
    target: str
    debt_to_cover: int = 0
    lendable: int = 0
    """Aave: how much of the debt token the pool can flash-lend (its available liquidity; 0 when the
    reserve's flash loans are off)."""
    extra_burns: int = 0
    """Aave v3.6: other debt reserves a deficit liquidation burns (each costs gas)."""
    market: Mapping[str, Any] | None = None
    seized_assets: int = 0
    repaid_shares: int = 0


@dataclass(frozen=True, slots=True)
class TokenPrice:
    price: int
    """Price of one whole token, in the source's base-currency units (Aave's oracle: 1e8 USD)."""
    decimals: int


class PriceKind(StrEnum):
    ASSET = "asset"
    """A token's price (Aave's oracle)."""
    MARKET = "market"
    """A market's collateral/loan price ratio (Morpho Blue's market oracles)."""


@dataclass(frozen=True, slots=True)
class PriceInput:
    """One price positions are valued with, as read at this block."""

    price: int
    """In the protocol's own units; 0 when the oracle reverted."""
    updated_at: int = 0
    """The feed's ``updatedAt``; 0 when unknown (no age check)."""


@dataclass(frozen=True, slots=True)
class FeedReading:
    """One configured ``[[price_feeds]]`` feed as read at a block (`keeper.protocols.price_feeds`)."""

    token: str
    feed: str
    answer: int
    """``latestRoundData().answer``; 0 when the call reverted."""
    updated_at: int
    """``latestRoundData().updatedAt``; 0 when the call reverted or no round completed."""
    feed_decimals: int | None
    """The answer's scale (``decimals()`` of the feed); None when the call did not answer."""
    token_decimals: int | None
    """The token's ERC-20 ``decimals()``; None when the call did not answer."""
    max_age_s: int | None = None
    """The entry's own staleness bound; None: the keeper-wide one."""


@dataclass(frozen=True, slots=True)
class FeedUpdate:
    feed: str
    price_key: str
    """The `MarketSnapshot.prices` key the feed moves."""
    answer: int


@dataclass(frozen=True)
class MarketSnapshot:
    """What the engine and the wallet need to know about a protocol at the block last read.

    Plain data, so the engine never looks inside an adapter's state: the price guard checks
    ``prices``, valuation uses ``reference_prices``, the wallet report reads ``spenders``.
    """

    price_kind: PriceKind
    """What a key of ``prices`` names, for logs."""
    prices: Mapping[str, PriceInput] = field(default_factory=dict)
    reference_prices: Mapping[str, TokenPrice] = field(default_factory=dict)
    """Token -> price usable to value any token against any other (a common base currency)."""
    tokens: frozenset[str] = frozenset()
    """Every token a position of this protocol can hold or owe."""
    spenders: Mapping[str, str] = field(default_factory=dict)
    """Debt token -> the contract that pulls it from the liquidator."""
    feeds: Mapping[str, str] = field(default_factory=dict)
    """Price feed address -> the ``prices`` key it moves."""


class Screen(Protocol):
    """A vectorized float estimate of every position's health, kept in step with the adapter.

    Estimates are proven lower bounds within the screen's margin (never miss a position the exact
    maths calls liquidatable); a row at or under ``1 + margin`` must be checked exactly.
    """

    margin: float

    def estimates(self, timestamp: int, touched: Collection[PositionKey] | None) -> npt.NDArray[np.float64]:
        """Health estimates, one per row; ``touched`` None rebuilds every row from the adapter."""
        ...

    def key(self, row: int) -> PositionKey: ...


class PositionSource(Protocol):
    """What the position sync needs: which logs matter, and reading exact state at a block."""

    protocol: str
    name: str

    def log_filter(self) -> LogFilter:
        """Contracts and events whose logs touch positions or markets."""
        ...

    def apply_logs(self, logs: Sequence[dict[str, Any]]) -> set[PositionKey]:
        """Learn markets from the logs and return the positions they touched."""
        ...

    async def refresh(self, rpc: Rpc, block: BlockRef, keys: Collection[PositionKey]) -> None:
        """Read, at exactly ``block``, global state (rates, prices, markets) and the given positions."""
        ...

    def tracked(self) -> list[PositionKey]:
        """Every position whose state has been read."""
        ...

    def forget(self, keys: Collection[PositionKey]) -> None:
        """Drop positions (a reorg abandoned the blocks that revealed them)."""
        ...


class LendingAdapter(PositionSource, Protocol):
    """What the engine needs from a protocol on top of tracking; every protocol implements it.

    Nothing outside ``keeper/protocols`` names a concrete adapter: a new protocol (or version) is
    a new folder and one line in `keeper.protocols.registry`.
    """

    def health(self, timestamp: int) -> list[PositionHealth]:
        """Every known position with debt, computed locally as the contract would at ``timestamp``."""
        ...

    def quote(self, key: PositionKey, timestamp: int) -> LiquidationQuote | None:
        """The most valuable liquidation of this position at ``timestamp``, or None when not liquidatable."""
        ...

    def liquidation_call(self, quote: LiquidationQuote) -> tuple[str, bytes]:
        """Target contract and calldata that realise ``quote``."""
        ...

    def executor_leg(self, quote: LiquidationQuote) -> ExecutorLeg | None:
        """How the keeper's executor contract realises ``quote`` (None: it cannot, e.g. aTokens)."""
        ...

    def snapshot(self) -> MarketSnapshot:
        """Prices, tokens, spenders and feeds as of the last refresh."""
        ...

    def screen(self) -> Screen:
        """The float screen over this adapter's positions (one per adapter, kept between blocks)."""
        ...

    def share_cash(self, quotes: Sequence[LiquidationQuote]) -> list[LiquidationQuote]:
        """Quotes, best first, adjusted for the liquidity they share (Aave: the underlying cash)."""
        ...

    def feed_updates(self, logs: Sequence[dict[str, Any]]) -> list[FeedUpdate]:
        """The price feed answers these logs carry (feeds named by ``snapshot().feeds``)."""
        ...

    def shocked(self, shocks: Mapping[str, Fraction]) -> LendingAdapter:
        """The same positions with each token's price multiplied by ``1 + shock`` (what-if)."""
        ...
