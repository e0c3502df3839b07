"""Aave V3 state as plain data: reserves, their configuration bitmap, eMode categories, users.

Everything here is decoded from raw words returned by the pool; nothing is recomputed.
"""

from __future__ import annotations

from dataclasses import dataclass, field


def _bits(word: int, start: int, width: int) -> int:
    return (word >> start) & ((1 << width) - 1)


@dataclass(frozen=True, slots=True)
class ReserveConfig:
    """``ReserveConfiguration`` bitmap, decoded with the same bit positions as the library."""

    ltv: int
    liquidation_threshold: int
    liquidation_bonus: int
    decimals: int
    active: bool
    frozen: bool
    borrowing_enabled: bool
    stable_borrowing_enabled: bool
    paused: bool
    reserve_factor: int
    liquidation_protocol_fee: int
    emode_category: int
    flash_loan_enabled: bool = False
    """Bit 63: ``flashLoanSimple`` of this reserve is allowed."""

    @classmethod
    def decode(cls, word: int) -> ReserveConfig:
        return cls(
            ltv=_bits(word, 0, 16),
            liquidation_threshold=_bits(word, 16, 16),
            liquidation_bonus=_bits(word, 32, 16),
            decimals=_bits(word, 48, 8),
            active=bool(_bits(word, 56, 1)),
            frozen=bool(_bits(word, 57, 1)),
            borrowing_enabled=bool(_bits(word, 58, 1)),
            stable_borrowing_enabled=bool(_bits(word, 59, 1)),
            paused=bool(_bits(word, 60, 1)),
            reserve_factor=_bits(word, 64, 16),
            liquidation_protocol_fee=_bits(word, 152, 16),
            emode_category=_bits(word, 168, 8),
            flash_loan_enabled=bool(_bits(word, 63, 1)),
        )


@dataclass(frozen=True, slots=True)
class Reserve:
    """``Pool.getReserveData`` of one asset, plus whether anybody holds its stable debt."""

    asset: str
    id: int
    config: ReserveConfig
    liquidity_index: int
    current_liquidity_rate: int
    variable_borrow_index: int
    current_variable_borrow_rate: int
    last_update_timestamp: int
    a_token: str
    stable_debt_token: str
    variable_debt_token: str
    stable_debt_supply: int = 0
    cash: int = 0
    """Underlying held by the aToken: what a liquidation can pay out as the underlying itself."""
    price_source: str = ""
    """The oracle's source (a Chainlink-style feed) for this asset, when it reports one."""
    price_updated_at: int = 0
    """The source's ``latestRoundData().updatedAt``; 0 when unknown (first block, or no such view)."""
    virtual_underlying_balance: int = 0
    """v3.1+: ``getVirtualUnderlyingBalance``, the pool's own count of withdrawable underlying."""
    deficit: int = 0
    """v3.3+: ``getReserveDeficit``, debt burnt as bad debt and not yet covered."""
    liquidation_grace_period_until: int = 0
    """v3.1+: ``getLiquidationGracePeriod``; no liquidation of this reserve while ``now <= until``."""


@dataclass(frozen=True, slots=True)
class EModeCategory:
    id: int
    ltv: int
    liquidation_threshold: int
    liquidation_bonus: int
    price_source: str
    """Zero address when the category uses each asset's own price (always, from v3.2)."""
    collateral_bitmap: int = 0
    """v3.2+: bit ``i`` set when reserve id ``i`` takes the category's LTV/LT/bonus as collateral."""
    borrowable_bitmap: int = 0
    """v3.2+: bit ``i`` set when reserve id ``i`` may be borrowed in the category."""
    ltvzero_bitmap: int = 0
    """v3.6: bit ``i`` set when collateral reserve id ``i`` has LTV 0 in the category."""


ZERO_ADDRESS = "0x" + "00" * 20


@dataclass(frozen=True, slots=True)
class StableDebt:
    principal: int
    rate_ray: int
    last_update_timestamp: int


@dataclass(frozen=True, slots=True)
class UserReserve:
    """A user's scaled balances in one reserve (zero where the configuration bit is off)."""

    scaled_a_token: int = 0
    scaled_variable_debt: int = 0
    stable: StableDebt | None = None


@dataclass(frozen=True, slots=True)
class UserState:
    """``getUserConfiguration``, ``getUserEMode`` and the balances of every flagged reserve, by reserve id."""

    user: str
    configuration: int
    emode_category: int
    reserves: dict[int, UserReserve] = field(default_factory=dict)

    def is_borrowing(self, reserve_id: int) -> bool:
        return bool((self.configuration >> (reserve_id << 1)) & 1)

    def is_using_as_collateral(self, reserve_id: int) -> bool:
        return bool((self.configuration >> ((reserve_id << 1) + 1)) & 1)

    def flagged_reserve_ids(self) -> list[int]:
        """Reserve ids with either bit set, ascending (the order the pool iterates them)."""
        ids = []
        word, reserve_id = self.configuration, 0
        while word:
            if word & 3:
                ids.append(reserve_id)
            word >>= 2
            reserve_id += 1
        return ids


@dataclass(frozen=True, slots=True)
class PoolState:
    """Global state of one pool at one block: reserves by id, eMode categories, oracle prices by asset."""

    pool: str
    oracle: str
    reserves: dict[int, Reserve]
    emode_categories: dict[int, EModeCategory]
    prices: dict[str, int]
    """``AaveOracle.getAssetPrice`` of every reserve asset and every eMode price source."""

    def reserve_by_asset(self, asset: str) -> Reserve:
        for reserve in self.reserves.values():
            if reserve.asset == asset:
                return reserve
        raise KeyError(asset)
