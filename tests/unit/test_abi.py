from __future__ import annotations

import pytest
from eth_utils.crypto import keccak

from keeper.chain.multicall import selector
from keeper.devnet.abi import arg_types, create_address, encode_call
from keeper.devnet.toolchain import link_bytecode


@pytest.mark.parametrize(
    ("sender", "nonce", "expected"),
    [
        # Anvil dev account #0's first contracts: addresses every Foundry user has seen.
        ("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266", 0, "0x5FbDB2315678afecb367f032d93F642f64180aa3"),
        ("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266", 1, "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"),
    ],
)
def test_create_address_matches_known_deployments(sender: str, nonce: int, expected: str) -> None:
    assert create_address(sender, nonce) == expected


def test_create_address_handles_multibyte_nonces() -> None:
    sender = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    addresses = {create_address(sender, n) for n in (0x7F, 0x80, 0xFF, 0x100, 0x10000)}
    assert len(addresses) == 5


@pytest.mark.parametrize(
    ("signature", "types"),
    [
        ("f()", []),
        ("supply(address,uint256,address,uint16)", ["address", "uint256", "address", "uint16"]),
        (
            "createMarket((address,address,address,address,uint256))",
            ["(address,address,address,address,uint256)"],
        ),
        ("aggregate3((address,bool,bytes)[])", ["(address,bool,bytes)[]"]),
        ("x((uint8,(bool,bytes))[],uint256)", ["(uint8,(bool,bytes))[]", "uint256"]),
    ],
)
def test_arg_types_split_at_top_level(signature: str, types: list[str]) -> None:
    assert arg_types(signature) == types


def test_encode_call_starts_with_selector() -> None:
    data = encode_call("transfer(address,uint256)", "0x" + "11" * 20, 5)
    assert data[:4] == selector("transfer(address,uint256)") == keccak(text="transfer(address,uint256)")[:4]
    assert data[:4].hex() == "a9059cbb"
    assert int.from_bytes(data[-32:], "big") == 5


def test_link_bytecode_replaces_placeholders_at_byte_offsets() -> None:
    placeholder = "__$" + "a" * 34 + "$__"
    bytecode = "0x6001" + placeholder + "00" + placeholder
    refs = {"lib.sol": {"Lib": [{"start": 2, "length": 20}, {"start": 23, "length": 20}]}}
    code = link_bytecode(bytecode, refs, {"Lib": "0x" + "ab" * 20})
    assert code == bytes.fromhex("6001" + "ab" * 20 + "00" + "ab" * 20)


def test_link_bytecode_requires_every_library() -> None:
    with pytest.raises(ValueError, match="library Lib"):
        link_bytecode("0x" + "__$" + "a" * 34 + "$__", {"f": {"Lib": [{"start": 0, "length": 20}]}}, {})
