"""Reverts named: custom errors from the packaged ABIs, ``Error(string)``, panics, the unknown as hex."""

from __future__ import annotations

from eth_abi.abi import encode

from keeper.chain.revert import describe_revert, known_errors, revert_data


def test_aave_v36_custom_errors_by_name() -> None:
    # selectors as aave-v3.6-notes.md lists them, not as this codec computes them
    assert describe_revert(bytes.fromhex("b629b0e4")) == "MustNotLeaveDust()"
    assert describe_revert(bytes.fromhex("9e3e6060")) == "LiquidationGraceSentinelCheckFailed()"
    assert describe_revert(bytes.fromhex("930bb771")) == "HealthFactorNotBelowThreshold()"
    assert describe_revert(bytes.fromhex("44511af1")) == "SelfLiquidation()"
    assert len(known_errors()) >= 90


def test_error_string_panic_unknown_and_empty() -> None:
    assert describe_revert(bytes.fromhex("08c379a0") + encode(["string"], ["45"])) == "Error('45')"
    assert describe_revert(bytes.fromhex("4e487b71") + (0x11).to_bytes(32, "big")) == "Panic(0x11)"
    assert describe_revert(bytes.fromhex("deadbeef01")) == "0xdeadbeef01"
    assert describe_revert(b"") == "reverted without data"
    assert describe_revert(bytes.fromhex("08c379a0") + b"\x01").startswith("Error(<undecodable")


def test_revert_data_from_json_rpc_error_shapes() -> None:
    assert revert_data("0xb629b0e4") == bytes.fromhex("b629b0e4")
    assert revert_data({"data": "0x08c379a0"}) == bytes.fromhex("08c379a0")
    assert revert_data(None) is None and revert_data("0xzz") is None and revert_data(3) is None
