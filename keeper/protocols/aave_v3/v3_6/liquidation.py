"""Aave v3.6 liquidation outcome, exactly as its ``LiquidationLogic.executeLiquidationCall`` computes it.

Pure. Given the state the pool will see, predict the debt the liquidator pays, the collateral they
receive, the protocol fee and the deficits created, or name the custom error that reverts. What
differs from v3.0.x (`keeper.protocols.aave_v3.liquidation`), per ``aave-v3.6-notes.md`` §1.5:

* validation adds the liquidation grace period (strict ``until < now`` on both reserves) and drops
  3.0's LT != 0 condition on the collateral;
* the close factor is position-wide: 100 % unless the collateral and the debt reserve are both
  worth at least ``MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD`` and HF > 0.95, then half the whole
  position's debt (when this reserve's debt exceeds it);
* a partial liquidation must leave at least ``MIN_LEFTOVER_BASE`` of debt and of collateral
  (``MustNotLeaveDust``): `dust_free_debt_to_cover` picks the largest ``debtToCover`` that does;
* when the liquidation takes the user's last collateral, all of this reserve's debt and every other
  active debt are burnt, the rest becoming the reserves' deficit (``DeficitCreated``);
* without ``receiveAToken`` the pool pays out of its virtual balance, not the aToken's cash.

The price oracle sentinel (L2 markets) is not modelled: the executor's simulation sees it.
"""

from __future__ import annotations

from dataclasses import dataclass

from keeper.math.uint import UINT256_MAX, mul_div_ceil
from keeper.math.wad_ray import (
    WAD,
    percent_div,
    percent_div_ceil,
    percent_mul,
    ray_div_ceil,
    ray_div_floor,
    ray_mul_floor,
)
from keeper.protocols.base import NotLiquidatable

from ..liquidation import CLOSE_FACTOR_HF_THRESHOLD, DEFAULT_LIQUIDATION_CLOSE_FACTOR, Deficit, Outcome
from ..math import EMPTY_BALANCES, ReserveAt
from ..state import PoolState, UserReserve, UserState
from .math import account_data, collateral_balance, debt_balance, user_emode

MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD = 2_000 * 10**8
MIN_LEFTOVER_BASE = MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD // 2
DUST_MARGIN_BPS = 100
"""A dust-limited quote leaves 1 % more than the minimum, so a small price move between the quote
and inclusion does not turn it into a ``MustNotLeaveDust`` revert."""

MUST_NOT_LEAVE_DUST = "MustNotLeaveDust()"


@dataclass(frozen=True, slots=True)
class Setup:
    """Everything ``executeLiquidationCall`` knows before it looks at ``debtToCover``."""

    pool: PoolState
    at: dict[int, ReserveAt]
    user: UserState
    collateral: ReserveAt
    debt: ReserveAt
    total_collateral_base: int
    total_debt_base: int
    health_factor: int
    collateral_balance: int
    reserve_debt: int
    bonus: int
    max_debt: int


def prepare(
    pool: PoolState,
    at: dict[int, ReserveAt],
    user: UserState,
    collateral_asset: str,
    debt_asset: str,
    timestamp: int,
) -> Setup:
    """Accrual, account data, ``validateLiquidationCall`` (in its order), the bonus and the close factor."""
    collateral = at[pool.reserve_by_asset(collateral_asset).id]
    debt = at[pool.reserve_by_asset(debt_asset).id]
    account = account_data(pool, at, user)
    balance = collateral_balance(collateral, user.reserves.get(collateral.reserve.id, EMPTY_BALANCES))
    reserve_debt = debt_balance(debt, user.reserves.get(debt.reserve.id, EMPTY_BALANCES))

    if not (collateral.reserve.config.active and debt.reserve.config.active):
        raise NotLiquidatable("ReserveInactive()")
    if collateral.reserve.config.paused or debt.reserve.config.paused:
        raise NotLiquidatable("ReservePaused()")
    if not (
        collateral.reserve.liquidation_grace_period_until < timestamp
        and debt.reserve.liquidation_grace_period_until < timestamp
    ):
        raise NotLiquidatable("LiquidationGraceSentinelCheckFailed()")
    if account.health_factor >= WAD:
        raise NotLiquidatable("HealthFactorNotBelowThreshold()")
    if not user.is_using_as_collateral(collateral.reserve.id):
        raise NotLiquidatable("CollateralCannotBeLiquidated()")
    if reserve_debt == 0:
        raise NotLiquidatable("SpecifiedCurrencyNotBorrowedByUser()")

    emode = user_emode(pool, user)
    in_emode = emode is not None and (emode.collateral_bitmap >> collateral.reserve.id) & 1
    bonus = (
        emode.liquidation_bonus
        if emode is not None and in_emode
        else collateral.reserve.config.liquidation_bonus
    )

    debt_base = mul_div_ceil(reserve_debt, debt.price, debt.unit)
    collateral_base = balance * collateral.price // collateral.unit
    max_debt = reserve_debt
    if (
        collateral_base >= MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD
        and debt_base >= MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD
        and account.health_factor > CLOSE_FACTOR_HF_THRESHOLD
    ):
        half_of_position = percent_mul(account.total_debt_base, DEFAULT_LIQUIDATION_CLOSE_FACTOR)
        if debt_base > half_of_position:
            max_debt = half_of_position * debt.unit // debt.price
    return Setup(
        pool,
        at,
        user,
        collateral,
        debt,
        account.total_collateral_base,
        account.total_debt_base,
        account.health_factor,
        balance,
        reserve_debt,
        bonus,
        max_debt,
    )


def settle(
    setup: Setup, debt_to_cover: int, receive_a_token: bool = False, dust_margin_bps: int = 0
) -> Outcome:
    """The rest of ``executeLiquidationCall`` for this ``debtToCover``. ``dust_margin_bps`` makes the
    dust rule that much stricter (a quote's safety margin; the pool's own rule is 0)."""
    collateral, debt, balance = setup.collateral, setup.debt, setup.collateral_balance
    seized, actual, fee, seized_base = _available_collateral(setup, min(debt_to_cover, setup.max_debt))
    if actual < setup.reserve_debt and seized + fee < balance:
        leftover = MIN_LEFTOVER_BASE * (10_000 + dust_margin_bps) // 10_000
        debt_left = mul_div_ceil(setup.reserve_debt - actual, debt.price, debt.unit)
        collateral_left = (balance - seized - fee) * collateral.price // collateral.unit
        if debt_left < leftover or collateral_left < leftover:
            raise NotLiquidatable(MUST_NOT_LEAVE_DUST)
    collateral_flag_cleared = seized + fee == balance  # the fee as computed, before the cap below

    no_collateral_left = setup.total_collateral_base == seized_base
    burnt = setup.reserve_debt if no_collateral_left else actual
    burnt_scaled = ray_div_floor(burnt, debt.normalized_debt)
    if burnt_scaled == 0:
        raise NotLiquidatable("InvalidBurnAmount()")
    deficits = []
    if no_collateral_left and setup.reserve_debt - actual != 0:
        deficits.append(Deficit(debt.reserve.asset, setup.reserve_debt - actual))

    income = collateral.normalized_income
    seized_scaled = ray_div_ceil(seized, income)
    if not receive_a_token:
        _check_payout(setup, seized, seized_scaled, actual)
    if fee:  # the treasury's share is capped at what the seizure left of the user's scaled balance
        scaled_left = _balances(setup, collateral).scaled_a_token - seized_scaled
        if ray_div_ceil(fee, income) > scaled_left:
            fee = ray_mul_floor(scaled_left, income)
    if no_collateral_left:
        deficits += _bad_debt(setup, skip=debt.reserve.id)
    return Outcome(
        debt_repaid=actual,
        collateral_seized=seized,
        protocol_fee=fee,
        health_factor=setup.health_factor,
        collateral_price=collateral.price,
        debt_price=debt.price,
        deficits=tuple(deficits),
        collateral_flag_cleared=collateral_flag_cleared,
        debt_flag_cleared=burnt_scaled == _balances(setup, debt).scaled_variable_debt,
    )


def _available_collateral(setup: Setup, actual: int) -> tuple[int, int, int, int]:
    """``_calculateAvailableCollateralToLiquidate``: (seized after the fee, debt repaid, fee, seized
    value before the fee)."""
    p_c, u_c = setup.collateral.price, setup.collateral.unit
    p_d, u_d = setup.debt.price, setup.debt.unit
    max_collateral = percent_mul(p_d * actual * u_c // (p_c * u_d), setup.bonus)
    if max_collateral > setup.collateral_balance:
        seized = setup.collateral_balance
        actual = percent_div_ceil(p_c * seized * u_d // (p_d * u_c), setup.bonus)
    else:
        seized = max_collateral
    seized_base = seized * p_c // u_c  # before the fee: what hasNoCollateralLeft compares
    fee = 0
    fee_share = setup.collateral.reserve.config.liquidation_protocol_fee
    if fee_share != 0:
        if setup.bonus == 0:  # LT-0 collateral outside eMode has bonus 0: percentDiv(x, 0) reverts
            raise NotLiquidatable("percentDiv by a zero liquidation bonus (empty revert)")
        fee = percent_mul(seized - percent_div(seized, setup.bonus), fee_share)
        seized -= fee
    return seized, actual, fee, seized_base


def _check_payout(setup: Setup, seized: int, seized_scaled: int, repaid: int) -> None:
    """Paying the underlying burns aTokens and draws on the pool's virtual balance."""
    available = setup.collateral.reserve.virtual_underlying_balance
    if setup.collateral.reserve.id == setup.debt.reserve.id:
        available += repaid  # the debt side adds the repayment to the virtual balance first
    if seized > available:
        raise NotLiquidatable("Panic(0x11): virtual underlying balance below the collateral")
    if seized_scaled == 0:
        raise NotLiquidatable("InvalidBurnAmount()")


def _balances(setup: Setup, reserve: ReserveAt) -> UserReserve:
    return setup.user.reserves.get(reserve.reserve.id, EMPTY_BALANCES)


def _bad_debt(setup: Setup, skip: int) -> list[Deficit]:
    """``_burnBadDebt``: every other active borrowed reserve's whole debt becomes its deficit."""
    deficits = []
    for reserve_id in setup.user.flagged_reserve_ids():
        if reserve_id == skip or not setup.user.is_borrowing(reserve_id) or reserve_id not in setup.at:
            continue
        other = setup.at[reserve_id]
        if not other.reserve.config.active:
            continue
        owed = debt_balance(other, setup.user.reserves.get(reserve_id, EMPTY_BALANCES))
        if owed:
            deficits.append(Deficit(other.reserve.asset, owed))
    return deficits


def liquidation_outcome(
    pool: PoolState,
    at: dict[int, ReserveAt],
    user: UserState,
    collateral_asset: str,
    debt_asset: str,
    debt_to_cover: int,
    timestamp: int,
    receive_a_token: bool = False,
) -> Outcome:
    """What ``liquidationCall(collateral, debt, user, debtToCover, receiveAToken)`` does."""
    setup = prepare(pool, at, user, collateral_asset, debt_asset, timestamp)
    return settle(setup, debt_to_cover, receive_a_token)


def dust_free_debt_to_cover(setup: Setup, receive_a_token: bool = False) -> tuple[int, Outcome]:
    """The ``debtToCover`` to pass and its outcome: uint256 max (the pool's own cap) when its
    leftovers clear the dust minimum by `DUST_MARGIN_BPS` (or it takes everything), else the largest
    amount whose leftovers do.

    Leftover debt falls and seized collateral grows with ``debtToCover``, so the amounts that pass
    the dust rule are an interval from 1 up; a binary search finds its end. Raises `NotLiquidatable`
    when no amount passes.
    """
    try:  # the pool's own cap, when it clears the dust rule with the same margin as a searched amount
        settle(setup, UINT256_MAX, receive_a_token, DUST_MARGIN_BPS)
        return UINT256_MAX, settle(setup, UINT256_MAX, receive_a_token)
    except NotLiquidatable as refused:
        if refused.reason != MUST_NOT_LEAVE_DUST:
            raise
    low, high = 0, setup.max_debt  # settle(low) passes (or low = 0), settle(high) leaves dust
    while high - low > 1:
        middle = (low + high) // 2
        try:
            settle(setup, middle, receive_a_token, DUST_MARGIN_BPS)
        except NotLiquidatable as refused:
            if refused.reason == MUST_NOT_LEAVE_DUST:
                high = middle
                continue
            # the dust rule passed; what failed after it is for the final settle to report
        low = middle
    if low == 0:
        raise NotLiquidatable(MUST_NOT_LEAVE_DUST)
    return low, settle(setup, low, receive_a_token)
