"""A read larger than one request body may be (Anvil caps it at 2 MiB) comes back whole and in order."""

from __future__ import annotations

import pytest
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from keeper.chain.multicall import Call, address_arg, aggregate3, encode_aggregate3, selector, words
from keeper.chain.rpc import HttpRpc
from tests.conftest import Devnet

pytestmark = pytest.mark.integration


async def test_ten_thousand_calls_in_one_read(devnet: Devnet) -> None:
    token = devnet.summary["aave"]["reserves"]["USDC"]
    holders = [to_checksum_address(keccak(i.to_bytes(4, "big"))[12:]) for i in range(10_000)]
    holders[6_789] = devnet.summary["keeper_address"]  # the one holder with a balance, deep in the list
    calls = [Call(token, selector("balanceOf(address)") + address_arg(h)) for h in holders]
    assert len(encode_aggregate3(calls)) * 2 > 2 * 2**20  # as hex, more than one request body can carry
    async with HttpRpc(devnet.summary["rpc_url"]) as rpc:
        results = await aggregate3(rpc, calls, "latest")
    balances = [words(r.data)[0] for r in results]
    assert len(balances) == len(holders)
    assert [i for i, b in enumerate(balances) if b] == [6_789]
