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


def user_addresses(kind: str, count: int, seed: int) -> list[str]:
    """Deterministic borrower addresses; Anvil's auto-impersonation lets them send without keys."""
    rng = random.Random(f"{kind}:{seed}")
    return [to_checksum_address(keccak(rng.randbytes(32))[12:]) for _ in range(count)]
