"""Anvil's well-known development accounts (public test mnemonic) and seeded user addresses."""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cache

from eth_account import Account
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

ANVIL_MNEMONIC = "test test test test test test test test test test test junk"


@dataclass(frozen=True)
class DevAccount:
    address: str
    private_key: str  # a public test key; never used outside the devnet


@cache
def dev_account(index: int) -> DevAccount:
    Account.enable_unaudited_hdwallet_features()
    acct = Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
    return DevAccount(acct.address, acct.key.hex())


DEPLOYER_INDEX = 0
KEEPER_INDEX = 1
COMPETITOR_INDEX = 2
SUPPLIER_INDEXES = (3, 4)
ISSUER_INDEX = 5
"""Deploys tokens and feeds (and owns the feeds), so the deployer's nonce 0 is Aave's provider."""
UNISWAP_DEPLOYER_INDEX = 6
"""Deploys Uniswap V3 and nothing else: its nonces 0-3 are the factory, router, quoter and position
manager, which `devnet price` finds again from the address alone."""
LIQUIDITY_PROVIDER_INDEX = 7
"""Creates the pools and owns their liquidity positions."""
ARBITRAGEUR_INDEX = 8
"""Swaps the pools to the feeds' prices when `devnet price` moves a feed."""


def user_addresses(kind: str, count: int, seed: int) -> list[str]:
    """Deterministic borrower addresses; Anvil's auto-impersonation lets them send without keys."""
    rng = random.Random(f"{kind}:{seed}")
    return [to_checksum_address(keccak(rng.randbytes(32))[12:]) for _ in range(count)]
