"""Unit tests for keeper.execution.signer: real signatures, chain-id refusal, and no secret ever shown."""

from __future__ import annotations

import copy
import json
import logging
import pickle
from pathlib import Path
from typing import Any

import pytest
import structlog
from eth_account import Account
from eth_typing import HexStr
from eth_utils.address import to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from keeper.config import SignerConfig
from keeper.errors import Halt, UsageError
from keeper.execution.signer import Signer

# Anvil's public dev account #1: a well-known test key, worthless on any real chain.
KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
ADDRESS = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
PASSWORD = "correct horse battery staple"
CHAIN_ID = 31337


def tx(**overrides: Any) -> dict[str, Any]:
    return {
        "type": 2,
        "chainId": CHAIN_ID,
        "nonce": 7,
        "to": "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
        "data": b"\x12\x34",
        "value": 0,
        "gas": 300_000,
        "maxFeePerGas": 30 * 10**9,
        "maxPriorityFeePerGas": 10**9,
    } | overrides


@pytest.fixture
def keystore(tmp_path: Path) -> tuple[Path, Path]:
    path, password_path = tmp_path / "keystore.json", tmp_path / "password"
    path.write_text(json.dumps(Account.encrypt(HexStr(KEY), PASSWORD, kdf="pbkdf2", iterations=2)))
    password_path.write_text(PASSWORD + "\n")
    return path, password_path


def assert_no_secret(exc: BaseException) -> None:
    shown = f"{exc} {exc!r} {exc.args!r}"
    for secret in (KEY, KEY[2:], KEY[2:].upper(), PASSWORD):
        assert secret not in shown
    assert exc.__cause__ is None and exc.__context__ is None  # no chained error can quote the secret
    assert "\n" not in str(exc)


# --- signing ---------------------------------------------------------------------------------------


def test_from_key_signs_a_transaction_that_recovers_to_its_address() -> None:
    signer = Signer.from_key(KEY, CHAIN_ID)
    raw, tx_hash = signer.sign(tx())
    assert signer.address == ADDRESS
    assert Account.recover_transaction(raw) == ADDRESS
    assert tx_hash.startswith("0x") and len(tx_hash) == 66
    assert raw[0] == 2  # EIP-2718 type byte of an EIP-1559 transaction


@settings(max_examples=200, deadline=None)
@given(
    nonce=st.integers(0, 2**64 - 2),
    to=st.binary(min_size=20, max_size=20),
    data=st.binary(max_size=1_200),
    gas=st.integers(21_000, 30_000_000),
    fees=st.tuples(st.integers(0, 2**128), st.integers(0, 2**128)),
    chain_id=st.sampled_from([1, 8453, 31337, 2**32 + 7]),
)
def test_the_direct_path_signs_the_same_bytes_as_eth_account(
    nonce: int, to: bytes, data: bytes, gas: int, fees: tuple[int, int], chain_id: int
) -> None:
    signer = Signer.from_key(KEY, chain_id)
    max_fee, tip = max(fees), min(fees)
    address = to_checksum_address(to)
    expected = signer.sign(
        tx(
            chainId=chain_id,
            nonce=nonce,
            to=address,
            data=data,
            gas=gas,
            maxFeePerGas=max_fee,
            maxPriorityFeePerGas=tip,
        )
    )
    assert signer.sign_liquidation(nonce, address, data, gas, max_fee, tip) == expected


def test_sign_fills_a_missing_chain_id() -> None:
    unsigned = tx()
    del unsigned["chainId"]
    raw, tx_hash = Signer.from_key(KEY, CHAIN_ID).sign(unsigned)
    assert "chainId" not in unsigned  # the caller's dict is not mutated
    assert (raw, tx_hash) == Signer.from_key(KEY, CHAIN_ID).sign(tx())


@pytest.mark.parametrize("chain_id", [1, 31336, "31337", 0x7A69 + 1, True])
def test_sign_refuses_another_chain(chain_id: object) -> None:
    with pytest.raises(Halt, match="refusing to sign for chain id"):
        Signer.from_key(KEY, CHAIN_ID).sign(tx(chainId=chain_id))


def test_key_without_0x_prefix_and_with_whitespace() -> None:
    assert Signer.from_key(f"  {KEY[2:]}\n", 1).address == ADDRESS


@pytest.mark.parametrize("chain_id", [0, -1, True])
def test_chain_id_must_be_positive(chain_id: int) -> None:
    with pytest.raises(ValueError, match="chain id must be a positive integer"):
        Signer.from_key(KEY, chain_id)


# --- the key is never shown ------------------------------------------------------------------------


def test_repr_and_str_show_only_the_address() -> None:
    signer = Signer.from_key(KEY, CHAIN_ID)
    assert repr(signer) == str(signer) == f"Signer(address={ADDRESS}, chain_id={CHAIN_ID})"
    assert not hasattr(signer, "__dict__")  # nothing but the two slots


def test_signer_cannot_be_pickled_or_copied() -> None:
    signer = Signer.from_key(KEY, CHAIN_ID)
    for serialize in (pickle.dumps, copy.copy, copy.deepcopy):
        with pytest.raises(TypeError, match="cannot be pickled or copied"):
            serialize(signer)


def test_loading_logs_source_and_address_never_the_key(caplog: pytest.LogCaptureFixture) -> None:
    with structlog.testing.capture_logs() as events, caplog.at_level(logging.DEBUG):
        Signer.from_config(SignerConfig(), CHAIN_ID, {"KEEPER_PRIVATE_KEY": KEY})
    assert events == [
        {
            "event": "signer_loaded",
            "log_level": "info",
            "source": "environment variable KEEPER_PRIVATE_KEY",
            "address": ADDRESS,
            "chain_id": CHAIN_ID,
        }
    ]
    assert KEY[2:] not in repr(events) + caplog.text


@pytest.mark.parametrize(
    "bad_key",
    [
        pytest.param(KEY[:-2], id="short"),
        pytest.param(KEY + "00", id="long"),
        pytest.param(KEY[:-2] + "zz", id="not-hex"),
        pytest.param("0x" + "00" * 32, id="zero"),
        pytest.param("0x" + "ff" * 32, id="above-curve-order"),
        pytest.param("", id="empty"),
    ],
)
def test_bad_key_is_a_usage_error_without_the_key(bad_key: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG), pytest.raises(UsageError) as info:
        Signer.from_config(SignerConfig(private_key_env="MY_KEY"), CHAIN_ID, {"MY_KEY": bad_key})
    assert str(info.value) == (
        "signer: environment variable MY_KEY is not a valid private key"
        " (expected 32 bytes of hex, 0x optional)"
        if bad_key
        else "signer: environment variable MY_KEY is not set"
    )
    assert_no_secret(info.value)
    if bad_key:
        assert bad_key[2:] not in f"{info.value!r} {caplog.text}"


# --- sources ---------------------------------------------------------------------------------------


def test_keystore_round_trip(keystore: tuple[Path, Path]) -> None:
    path, password_path = keystore
    signer = Signer.from_keystore(path, password_path, CHAIN_ID)
    assert signer.address == ADDRESS
    assert Account.recover_transaction(signer.sign(tx())[0]) == ADDRESS


def test_from_config_prefers_the_keystore(keystore: tuple[Path, Path]) -> None:
    path, password_path = keystore
    config = SignerConfig(keystore=path, password_file=password_path)
    other_key = "0x" + "11" * 32
    assert Signer.from_config(config, CHAIN_ID, {"KEEPER_PRIVATE_KEY": other_key}).address == ADDRESS


def test_from_config_missing_env_var() -> None:
    with pytest.raises(UsageError) as info:
        Signer.from_config(SignerConfig(), CHAIN_ID, {"OTHER": KEY})
    assert str(info.value) == "signer: environment variable KEEPER_PRIVATE_KEY is not set"


def test_from_config_without_any_source() -> None:
    with pytest.raises(UsageError, match="no key source configured"):
        Signer.from_config(SignerConfig(private_key_env=None), CHAIN_ID, {"KEEPER_PRIVATE_KEY": KEY})


def test_wrong_password(keystore: tuple[Path, Path], caplog: pytest.LogCaptureFixture) -> None:
    path, password_path = keystore
    password_path.write_text("not the password\n")
    with caplog.at_level(logging.DEBUG), pytest.raises(UsageError) as info:
        Signer.from_keystore(path, password_path, CHAIN_ID)
    assert str(info.value) == (
        f"signer: cannot decrypt keystore {path} (wrong password in {password_path}, or corrupt file)"
    )
    assert_no_secret(info.value)
    assert "not the password" not in f"{info.value} {info.value!r} {caplog.text}"


def test_password_needs_its_exact_text(keystore: tuple[Path, Path]) -> None:
    """Only one trailing newline is stripped: surrounding spaces are part of the password."""
    path, password_path = keystore
    password_path.write_text(f" {PASSWORD}\n")
    with pytest.raises(UsageError, match="cannot decrypt keystore"):
        Signer.from_keystore(path, password_path, CHAIN_ID)
    password_path.write_text(f"{PASSWORD}\r\n")
    assert Signer.from_keystore(path, password_path, CHAIN_ID).address == ADDRESS


@pytest.mark.parametrize(
    ("which", "content", "message"),
    [
        ("keystore", None, "signer: cannot read keystore {path}: No such file or directory"),
        ("password", None, "signer: cannot read password file {password_path}: No such file or directory"),
        (
            "password",
            b"\xff\xfe" + PASSWORD.encode(),
            "signer: cannot read password file {password_path}: not UTF-8 text",
        ),
        ("keystore", b"not json " + KEY.encode(), "signer: keystore {path} is not a JSON keystore object"),
        ("keystore", b"[1, 2]", "signer: keystore {path} is not a JSON keystore object"),
        (
            "keystore",
            b"{}",
            "signer: cannot decrypt keystore {path} (wrong password in {password_path}, or corrupt file)",
        ),
    ],
)
def test_unreadable_sources_name_the_file(
    keystore: tuple[Path, Path], which: str, content: bytes | None, message: str
) -> None:
    path, password_path = keystore
    target = path if which == "keystore" else password_path
    if content is None:
        target.unlink()
    else:
        target.write_bytes(content)
    with pytest.raises(UsageError) as info:
        Signer.from_keystore(path, password_path, CHAIN_ID)
    assert str(info.value) == message.format(path=path, password_path=password_path)
    assert_no_secret(info.value)


def test_keystore_path_is_a_directory(keystore: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=f"cannot read keystore {tmp_path}: Is a directory"):
        Signer.from_keystore(tmp_path, keystore[1], CHAIN_ID)
