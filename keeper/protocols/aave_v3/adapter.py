"""The Aave V3 adapter: the imperative shell around the pure state, math and liquidation modules."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt
import structlog

from keeper.chain.rpc import Rpc
from keeper.config import AaveV3Config
from keeper.errors import UsageError
from keeper.math.wad_ray import WAD
from keeper.protocols.base import (
    BlockRef,
    ExecutorLeg,
    FeedUpdate,
    LiquidationQuote,
    LogFilter,
    MarketSnapshot,
    NotLiquidatable,
    PositionHealth,
    PositionKey,
    PriceInput,
    PriceKind,
    TokenPrice,
    shocked_price,
)
from keeper.protocols.screening import DEFAULT_MARGIN

from .events import (
    A_TOKEN_USER_TOPICS,
    ANSWER_UPDATED,
    POOL_USER_TOPICS,
    RULE_TOPICS,
    feed_answer,
    rule_changes,
    touched_users,
)
from .liquidation import liquidation_outcome, max_debt_to_cover, share_out_cash
from .math import AccountData, ReserveAt, account_data, reserves_at
from .reader import NO_EXTRA_VIEWS, POOL, PoolAddresses, read_addresses, read_pool_and_users, read_version
from .screen import AaveScreen
from .state import PoolState, UserState
from .v3_6 import liquidation as liquidation_v3_6
from .v3_6 import math as math_v3_6
from .v3_6.reader import VIEWS as VIEWS_V3_6
from .version import AaveVersion, DetectedVersion, refusal

LIQUIDATION_CALL = POOL.fn("liquidationCall")
EXECUTOR_DEBT_MARGIN_BPS = 10
ALL_COLLATERAL_MARGIN_BPS = 500

log = structlog.get_logger(__name__)


class AaveV3Adapter:
    protocol = "aave_v3"

    def __init__(
        self,
        name: str,
        pool_addresses_provider: str,
        allow_unsupported_version: bool = False,
    ) -> None:
        self.name = name
        self.provider = pool_addresses_provider
        self.allow_unsupported_version = allow_unsupported_version
        self.version: DetectedVersion | None = None
        """The Aave version the pool runs, detected by the first `refresh`."""
        self._addresses: PoolAddresses | None = None
        self.pool_state: PoolState | None = None
        self.users: dict[str, UserState] = {}
        self._screen: PoolScreen | None = None
        self._refusals: dict[tuple[str, str, str], str] = {}
        """(user, collateral, debt) -> the last refusal logged for that pair."""

    @classmethod
    def from_config(cls, config: AaveV3Config) -> AaveV3Adapter:
        return cls(config.name, config.pool_addresses_provider, config.allow_unsupported_version)

    @property
    def pool(self) -> str:
        if self._addresses is None:
            raise RuntimeError("refresh() has not run yet: the pool address is unknown")
        return self._addresses.pool

    def log_filter(self) -> LogFilter:
        """The pool, its aTokens, and the price feeds behind its oracle (their updates are reported)."""
        a_tokens = [r.a_token for r in self.pool_state.reserves.values()] if self.pool_state else []
        rules = (self._configurator(),) if self._configurator() else ()
        topics = (*POOL_USER_TOPICS, *A_TOKEN_USER_TOPICS, ANSWER_UPDATED, *(RULE_TOPICS if rules else ()))
        return LogFilter((self.pool, *a_tokens, *self.feeds(), *rules), topics)

    def _configurator(self) -> str:
        """v3.6 pools' configurator: its rule changes are logged (the state itself is re-read anyway)."""
        return self._addresses.configurator if self._addresses is not None and self._is_v3_6 else ""

    def feeds(self) -> dict[str, str]:
        """Feed address -> asset, for the reserves whose oracle source is known."""
        if self.pool_state is None:
            return {}
        return {r.price_source: r.asset for r in self.pool_state.reserves.values() if r.price_source}

    def apply_logs(self, logs: Sequence[dict[str, Any]]) -> set[PositionKey]:
        a_tokens = [r.a_token for r in self.pool_state.reserves.values()] if self.pool_state else []
        if self._configurator():
            for change in rule_changes(logs, self._configurator()):
                log.info("aave_rules_changed", protocol=self.name, **change)
        return {PositionKey(self.pool, user) for user in touched_users(logs, self.pool, a_tokens)}

    async def refresh(self, rpc: Rpc, block: BlockRef, keys: Collection[PositionKey]) -> None:
        if self._addresses is None:
            addresses = await read_addresses(rpc, self.provider, block.hash)
            self.version = await self._detect(rpc, addresses.pool, block)
            self._addresses = addresses
        users = sorted({key.user for key in keys})
        extra = VIEWS_V3_6 if self._is_v3_6 else NO_EXTRA_VIEWS
        self.pool_state, states = await read_pool_and_users(
            rpc, self._addresses, block.hash, users, self.pool_state, extra
        )
        self.users.update(states)

    async def _detect(self, rpc: Rpc, pool: str, block: BlockRef) -> DetectedVersion:
        """The pool's version; refused (one line) unless its maths are implemented or overridden."""
        detected = await read_version(rpc, pool, block.hash)
        fields = {"protocol": self.name, "pool": pool, "revision": detected.revision}
        log.info("aave_version_detected", **fields, version=str(detected.version))
        if detected.supported:
            return detected
        key = f"protocols.{self.name}"
        if not self.allow_unsupported_version:
            raise UsageError(
                refusal(f"{key}.pool_addresses_provider", detected, f"{key}.allow_unsupported_version")
            )
        log.warning("aave_version_unsupported_overridden", **fields, version=str(detected.version))
        return detected

    def tracked(self) -> list[PositionKey]:
        return [PositionKey(self.pool, user) for user in self.users]

    def shocked(self, shocks: Mapping[str, Fraction]) -> AaveV3Adapter:
        """The same positions under shocked oracle prices (what-if questions); self is unchanged."""
        prices = self._state().prices
        return self.repriced({a: shocked_price(p, shocks.get(a, Fraction(0))) for a, p in prices.items()})

    def repriced(self, prices: dict[str, int]) -> AaveV3Adapter:
        """The same positions under other oracle prices (asset -> price); self is unchanged."""
        copy = AaveV3Adapter(self.name, self.provider, self.allow_unsupported_version)
        copy._addresses, copy.users, copy.version = self._addresses, self.users, self.version
        copy.pool_state = replace(self._state(), prices=prices)
        return copy

    def snapshot(self) -> MarketSnapshot:
        if self.pool_state is None:
            return MarketSnapshot(PriceKind.ASSET)
        state, reserves = self.pool_state, self.pool_state.reserves.values()
        return MarketSnapshot(
            price_kind=PriceKind.ASSET,
            prices={r.asset: PriceInput(state.prices[r.asset], r.price_updated_at) for r in reserves},
            reference_prices={
                r.asset: TokenPrice(state.prices[r.asset], r.config.decimals) for r in reserves
            },
            tokens=frozenset(r.asset for r in reserves),
            spenders={r.asset: state.pool for r in reserves},
            feeds=self.feeds(),
        )

    def screen(self) -> PoolScreen:
        if self._screen is None:
            self._screen = PoolScreen(self)
        return self._screen

    def share_cash(self, quotes: Sequence[LiquidationQuote]) -> list[LiquidationQuote]:
        """Liquidations share each reserve's underlying cash, best first; the rest take aTokens."""
        if self.pool_state is None:
            return list(quotes)
        reserves = self.pool_state.reserves.values()
        if self._is_v3_6:  # v3.6 pays out of its virtual balance, whatever the aToken holds
            return share_out_cash(quotes, {r.asset: r.virtual_underlying_balance for r in reserves})
        return share_out_cash(quotes, {r.asset: r.cash for r in reserves})

    def feed_updates(self, logs: Sequence[dict[str, Any]]) -> list[FeedUpdate]:
        feeds = self.feeds()
        updates = []
        for entry in logs:
            answer = feed_answer(entry)
            if answer is not None and answer[0] in feeds:
                updates.append(FeedUpdate(answer[0], feeds[answer[0]], answer[1]))
        return updates

    def forget(self, keys: Collection[PositionKey]) -> None:
        for key in keys:
            self.users.pop(key.user, None)

    @property
    def _is_v3_6(self) -> bool:
        return self.version is not None and self.version.version is AaveVersion.V3_6

    def _reserves_at(self, pool: PoolState, timestamp: int) -> dict[int, ReserveAt]:
        if self._is_v3_6:
            return math_v3_6.reserves_at(pool, timestamp)
        return reserves_at(pool, timestamp)

    def _account(
        self, pool: PoolState, at: dict[int, ReserveAt], user: UserState, timestamp: int
    ) -> AccountData:
        """``calculateUserAccountData`` of the pool's version (3.0.x unless detected otherwise)."""
        if self._is_v3_6:
            return math_v3_6.account_data(pool, at, user)
        return account_data(pool, at, user, timestamp)

    def health(self, timestamp: int) -> list[PositionHealth]:
        pool = self._state()
        at = self._reserves_at(pool, timestamp)
        out = []
        unpriced = {i for i, r in at.items() if r.price == 0}
        for user, state in self.users.items():
            if unpriced and unpriced & set(state.flagged_reserve_ids()):
                continue  # the oracle reverts for this asset: so would every liquidation of this user
            data = self._account(pool, at, state, timestamp)
            if data.total_debt_base:
                out.append(
                    PositionHealth(
                        self.protocol,
                        pool.pool,
                        user,
                        data.health_factor,
                        data.total_collateral_base,
                        data.total_debt_base,
                    )
                )
        return out

    def quote(self, key: PositionKey, timestamp: int) -> LiquidationQuote | None:
        """The collateral/debt pair whose liquidation leaves the liquidator the most value, with the
        rules of the pool's version (v3.6: close factor, dust rule, grace period, deficit)."""
        pool = self._state()
        user = self.users.get(key.user)
        if user is None:
            return None
        at = self._reserves_at(pool, timestamp)
        if any(at[i].price == 0 for i in user.flagged_reserve_ids() if i in at):
            return None
        if self._account(pool, at, user, timestamp).health_factor >= WAD:
            return None
        best: LiquidationQuote | None = None
        reserves = pool.reserves
        priced_by = frozenset(reserves[i].asset for i in user.flagged_reserve_ids() if i in reserves)
        pair = _quote_pair_v36 if self._is_v3_6 else _quote_pair_v30
        for collateral_id in user.flagged_reserve_ids():
            if not user.is_using_as_collateral(collateral_id) or collateral_id not in at:
                continue
            for debt_id in user.flagged_reserve_ids():
                if not user.is_borrowing(debt_id) or debt_id not in at:
                    continue
                collateral, debt = at[collateral_id], at[debt_id]
                try:
                    candidate = pair(pool, at, user, collateral, debt, timestamp)
                except NotLiquidatable as refused:
                    self._report_refusal(key.user, collateral, debt, refused.reason)
                    continue
                candidate = replace(candidate, protocol=self.protocol, user=key.user, priced_by=priced_by)
                if best is None or _gain(candidate) > _gain(best):
                    best = candidate
        return best

    def _report_refusal(self, user: str, collateral: ReserveAt, debt: ReserveAt, reason: str) -> None:
        """Why a liquidatable position's pair cannot be liquidated (a grace period, dust), once per
        reason: the position is quoted again every block while it stays liquidatable."""
        pair = (user, collateral.reserve.asset, debt.reserve.asset)
        if reason in _EXPECTED_REFUSALS or self._refusals.get(pair) == reason:
            return
        self._refusals[pair] = reason
        log.info(
            "aave_pair_refused",
            protocol=self.name,
            user=user,
            collateral=pair[1],
            debt=pair[2],
            reason=reason,
        )

    def liquidation_call(self, quote: LiquidationQuote) -> tuple[str, bytes]:
        """``liquidationCall``, receiving the underlying unless the quote says aTokens.

        ``debtToCover`` is uint256 max unless the quote needs an exact amount (v3.6's dust rule): the
        pool caps it at the close-factor and collateral limits with the state it sees at inclusion,
        so a block of interest cannot make the call ask for more than the user owes.
        """
        debt_to_cover = max_debt_to_cover() if quote.debt_to_cover is None else quote.debt_to_cover
        data = LIQUIDATION_CALL.call(
            quote.collateral_asset, quote.debt_asset, quote.user, debt_to_cover, quote.receive_a_token
        )
        return self.pool, data

    def executor_leg(self, quote: LiquidationQuote) -> ExecutorLeg | None:
        """The executor flash-borrows ``debtToCover`` and passes it on: the dust rule's exact amount
        when the quote has one, else the quoted repayment plus a margin, which the pool caps as it
        would uint256 max (the executor returns what it did not take): `EXECUTOR_DEBT_MARGIN_BPS`
        covers a block of interest, `ALL_COLLATERAL_MARGIN_BPS` a price move when the quote takes
        the user's last collateral (the pool then computes the repayment from the collateral).
        It sells the underlying, so a quote paid in aTokens cannot go through it."""
        if quote.receive_a_token:
            return None
        state = self._state()
        amount = quote.debt_to_cover
        if amount is None:
            margin = ALL_COLLATERAL_MARGIN_BPS if quote.bad_debt else EXECUTOR_DEBT_MARGIN_BPS
            amount = quote.debt_repaid + quote.debt_repaid * margin // 10_000 + 1
        debt = state.reserve_by_asset(quote.debt_asset)
        lendable = debt.virtual_underlying_balance if self._is_v3_6 else debt.cash
        if not debt.config.flash_loan_enabled:
            lendable = 0
        user = self.users[quote.user]
        others = sum(user.is_borrowing(i) for i in user.flagged_reserve_ids() if i != debt.id)
        burns = others if quote.bad_debt else 0  # a deficit burns every other debt too
        return ExecutorLeg("aave", self.pool, debt_to_cover=amount, lendable=lendable, extra_burns=burns)

    def _state(self) -> PoolState:
        if self.pool_state is None:
            raise RuntimeError("refresh() has not run yet")
        return self.pool_state


class PoolScreen:
    """The adapter's users on an `AaveScreen`: rows rebuilt on request, else only touched ones."""

    margin = DEFAULT_MARGIN

    def __init__(self, adapter: AaveV3Adapter) -> None:
        self._adapter = adapter
        self._screen = AaveScreen()

    def estimates(self, timestamp: int, touched: Collection[PositionKey] | None) -> npt.NDArray[np.float64]:
        adapter = self._adapter
        if adapter.pool_state is None:
            return np.zeros(0)
        if touched is None:
            self._screen.set_users(adapter.users.values())
        else:
            self._screen.update_users(adapter.users[k.user] for k in touched if k.user in adapter.users)
        return self._screen.estimates(adapter.pool_state, timestamp, v3_6=adapter._is_v3_6)

    def key(self, row: int) -> PositionKey:
        return PositionKey(self._adapter.pool, self._screen.user(row))


_EXPECTED_REFUSALS = frozenset({"CollateralCannotBeLiquidated()", "SpecifiedCurrencyNotBorrowedByUser()"})
"""Refusals of a pair that say nothing about the position (asked for a pair the user does not hold)."""


def _quote_pair_v30(
    pool: PoolState,
    at: dict[int, ReserveAt],
    user: UserState,
    collateral: ReserveAt,
    debt: ReserveAt,
    timestamp: int,
) -> LiquidationQuote:
    outcome = liquidation_outcome(
        pool, at, user, collateral.reserve.asset, debt.reserve.asset, max_debt_to_cover(), timestamp
    )
    receive_a_token = outcome.collateral_seized > collateral.reserve.cash
    return _quote(
        pool,
        collateral,
        debt,
        outcome.debt_repaid,
        outcome.collateral_seized,
        outcome.protocol_fee,
        receive_a_token,
    )


def _quote_pair_v36(
    pool: PoolState,
    at: dict[int, ReserveAt],
    user: UserState,
    collateral: ReserveAt,
    debt: ReserveAt,
    timestamp: int,
) -> LiquidationQuote:
    setup = liquidation_v3_6.prepare(pool, at, user, collateral.reserve.asset, debt.reserve.asset, timestamp)
    debt_to_cover, outcome = liquidation_v3_6.dust_free_debt_to_cover(setup, receive_a_token=True)
    available = collateral.reserve.virtual_underlying_balance
    receive_a_token = outcome.collateral_seized > available
    if not receive_a_token:  # the underlying path also burns aTokens: check it on its own rules
        outcome = liquidation_v3_6.settle(setup, debt_to_cover, receive_a_token=False)
    return _quote(
        pool,
        collateral,
        debt,
        outcome.debt_repaid,
        outcome.collateral_seized,
        outcome.protocol_fee,
        receive_a_token,
        debt_to_cover=None if debt_to_cover == max_debt_to_cover() else debt_to_cover,
        bad_debt=sum(d.amount for d in outcome.deficits if d.asset == debt.reserve.asset),
    )


def _quote(
    pool: PoolState,
    collateral: ReserveAt,
    debt: ReserveAt,
    debt_repaid: int,
    seized: int,
    fee: int,
    receive_a_token: bool,
    debt_to_cover: int | None = None,
    bad_debt: int = 0,
) -> LiquidationQuote:
    """A pair's quote, valued at the oracle prices (protocol, user and prices named by the caller)."""
    return LiquidationQuote(
        protocol="",
        market=pool.pool,
        user="",
        collateral_asset=collateral.reserve.asset,
        debt_asset=debt.reserve.asset,
        debt_repaid=debt_repaid,
        collateral_seized=seized,
        protocol_fee=fee,
        bad_debt=bad_debt,
        debt_value_base=debt_repaid * debt.price // debt.unit,
        collateral_value_base=seized * collateral.price // collateral.unit,
        receive_a_token=receive_a_token,
        debt_to_cover=debt_to_cover,
    )


def _gain(quote: LiquidationQuote) -> int:
    return quote.collateral_value_base - quote.debt_value_base
