"""Aave V3 liquidation outcome, exactly as ``LiquidationLogic.executeLiquidationCall`` (v3.0.x) computes it.

Given the state the pool will see, predict the debt the liquidator pays, the collateral they
receive and the protocol fee, or say which ``require`` would revert. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from keeper.math.uint import UINT256_MAX
from keeper.math.wad_ray import WAD, percent_div, percent_mul, ray_div, ray_mul
from keeper.protocols.base import LiquidationQuote, NotLiquidatable

from .math import EMPTY_BALANCES, ReserveAt, account_data, collateral_balance, debt_balances
from .state import ZERO_ADDRESS, PoolState, UserState

DEFAULT_LIQUIDATION_CLOSE_FACTOR = 5_000
MAX_LIQUIDATION_CLOSE_FACTOR = 10_000
CLOSE_FACTOR_HF_THRESHOLD = 95 * 10**16


@dataclass(frozen=True, slots=True)
class Deficit:
    """v3.3+: debt a liquidation burns without repayment (``DeficitCreated``)."""

    asset: str
    amount: int
    """``DeficitCreated.amountCreated``."""


@dataclass(frozen=True, slots=True)
class Outcome:
    debt_repaid: int
    collateral_seized: int
    """Collateral the liquidator receives (the protocol fee already taken out)."""
    protocol_fee: int
    health_factor: int
    collateral_price: int
    debt_price: int
    deficits: tuple[Deficit, ...] = ()
    """v3.6, in the order the pool emits ``DeficitCreated``: the debt reserve first, then the others
    by id (v3.0.x has no deficits)."""
    collateral_flag_cleared: bool = False
    """v3.6 outcome only: the user's collateral bit for the reserve is cleared."""
    debt_flag_cleared: bool = False
    """v3.6 outcome only: the user's borrowing bit for the reserve is cleared."""


def close_factor(health_factor: int) -> int:
    return (
        DEFAULT_LIQUIDATION_CLOSE_FACTOR
        if health_factor > CLOSE_FACTOR_HF_THRESHOLD
        else MAX_LIQUIDATION_CLOSE_FACTOR
    )


def _price_sources_and_bonus(pool: PoolState, user: UserState, collateral: ReserveAt) -> tuple[str, str, int]:
    """``_getConfigurationData``: eMode may replace the bonus and both price sources."""
    bonus = collateral.reserve.config.liquidation_bonus
    collateral_source = debt_source = ""
    category = user.emode_category
    if category != 0:
        emode = pool.emode_categories[category]
        has_source = emode.price_source != ZERO_ADDRESS and int(emode.price_source, 16) != 0
        if collateral.reserve.config.emode_category == category:
            bonus = emode.liquidation_bonus
            if has_source:
                collateral_source = emode.price_source
        if has_source:
            debt_source = emode.price_source
    return collateral_source, debt_source, bonus


def liquidation_outcome(
    pool: PoolState,
    at: dict[int, ReserveAt],
    user: UserState,
    collateral_asset: str,
    debt_asset: str,
    debt_to_cover: int,
    timestamp: int,
) -> Outcome:
    """What ``liquidationCall(collateral, debt, user, debtToCover, receiveAToken=false)`` does."""
    collateral = at[pool.reserve_by_asset(collateral_asset).id]
    debt = at[pool.reserve_by_asset(debt_asset).id]
    health = account_data(pool, at, user, timestamp).health_factor
    debt_balances_of_user = user.reserves.get(debt.reserve.id, EMPTY_BALANCES)
    stable, variable = debt_balances(debt, debt_balances_of_user, timestamp)
    total_debt = stable + variable
    actual_debt = min(debt_to_cover, percent_mul(total_debt, close_factor(health)))

    for side in (collateral, debt):
        if not side.reserve.config.active:
            raise NotLiquidatable("RESERVE_INACTIVE")
        if side.reserve.config.paused:
            raise NotLiquidatable("RESERVE_PAUSED")
    if health >= WAD:
        raise NotLiquidatable("HEALTH_FACTOR_NOT_BELOW_THRESHOLD")
    if collateral.reserve.config.liquidation_threshold == 0 or not user.is_using_as_collateral(
        collateral.reserve.id
    ):
        raise NotLiquidatable("COLLATERAL_CANNOT_BE_LIQUIDATED")
    if total_debt == 0:
        raise NotLiquidatable("SPECIFIED_CURRENCY_NOT_BORROWED_BY_USER")

    collateral_source, debt_source, bonus = _price_sources_and_bonus(pool, user, collateral)
    collateral_price = pool.prices[collateral_source] if collateral_source else collateral.price
    debt_price = pool.prices[debt_source] if debt_source else debt.price
    collateral_balances = user.reserves.get(collateral.reserve.id, EMPTY_BALANCES)
    user_collateral = collateral_balance(collateral, collateral_balances)

    base_collateral = (debt_price * actual_debt * collateral.unit) // (collateral_price * debt.unit)
    max_collateral = percent_mul(base_collateral, bonus)
    if max_collateral > user_collateral:
        collateral_amount = user_collateral
        actual_debt = percent_div(
            (collateral_price * collateral_amount * debt.unit) // (debt_price * collateral.unit), bonus
        )
    else:
        collateral_amount = max_collateral
    fee = 0
    if collateral.reserve.config.liquidation_protocol_fee != 0:
        bonus_collateral = collateral_amount - percent_div(collateral_amount, bonus)
        fee = percent_mul(bonus_collateral, collateral.reserve.config.liquidation_protocol_fee)
    seized = collateral_amount - fee

    _check_burns(debt, variable, actual_debt, collateral, seized)
    remaining_scaled = collateral_balances.scaled_a_token - ray_div(seized, collateral.normalized_income)
    if remaining_scaled < 0:
        raise NotLiquidatable("BURN_EXCEEDS_BALANCE")
    if fee and ray_div(fee, collateral.normalized_income) > remaining_scaled:
        # the treasury's share is capped at what the burn left of the user's scaled balance
        fee = ray_mul(remaining_scaled, collateral.normalized_income)
    return Outcome(actual_debt, seized, fee, health, collateral_price, debt_price)


def _check_burns(
    debt: ReserveAt, variable: int, actual_debt: int, collateral: ReserveAt, seized: int
) -> None:
    """Scaled token burns revert on a zero scaled amount (``INVALID_BURN_AMOUNT``)."""
    if actual_debt == 0:
        raise NotLiquidatable("INVALID_BURN_AMOUNT")
    burned_variable = min(variable, actual_debt)
    if burned_variable and ray_div(burned_variable, debt.normalized_debt) == 0:
        raise NotLiquidatable("INVALID_BURN_AMOUNT")
    if ray_div(seized, collateral.normalized_income) == 0:
        raise NotLiquidatable("INVALID_BURN_AMOUNT")


def max_debt_to_cover() -> int:
    """Pass uint256 max: the pool caps it at the close-factor limit."""
    return UINT256_MAX


def share_out_cash(quotes: Sequence[LiquidationQuote], cash: Mapping[str, int]) -> list[LiquidationQuote]:
    """Liquidations in one block draw on the same underlying held by each aToken: in order, each
    takes the underlying while it lasts and the rest take aTokens (``receiveAToken``) instead."""
    left = dict(cash)
    shared = []
    for quote in quotes:
        available = left.get(quote.collateral_asset, 0)
        if quote.collateral_seized <= available:
            left[quote.collateral_asset] = available - quote.collateral_seized
            shared.append(replace(quote, receive_a_token=False))
        else:
            shared.append(replace(quote, receive_a_token=True))
    return shared
