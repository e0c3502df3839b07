from __future__ import annotations

from pathlib import Path

import pytest

from keeper.config import AaveV3Config, MorphoBlueConfig, load_config
from keeper.errors import UsageError

GOOD = """
[chain]
chain_id = 31337
rpc_urls = ["ws://127.0.0.1:8545", "http://127.0.0.1:8545"]
[signer]
private_key_env = "KEEPER_PRIVATE_KEY"
[execution]
mode = "live"
[[protocols]]
kind = "aave_v3"
name = "aave"
pool_addresses_provider = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
[[protocols]]
kind = "morpho_blue"
name = "morpho"
address = "0xbbbbbbbbbb9cc5e90e3b3af64bdaf62c37eeffcb"
start_block = 18883124
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "keeper.toml"
    path.write_text(text)
    return path


def test_good_config_parses_with_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    assert config.chain.chain_id == 31337
    assert config.execution.mode == "live"
    assert config.store.path == Path("keeper.sqlite")
    aave, morpho = config.protocols
    assert isinstance(aave, AaveV3Config) and aave.start_block == 0
    assert isinstance(morpho, MorphoBlueConfig)
    assert morpho.address == "0xBBBBBbbBBb9cC5e90e3b3Af64bdAF62C37EEFFCb"  # normalized to checksum


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace("[chain]", "[chain]\ncolour = 1"), "chain.colour: unknown key"),
        (
            lambda t: t.replace(
                "0x5FbDB2315678afecb367f032d93F642f64180aa3", "0x5FbDB2315678afecb367f032d93F642f64180AA3"
            ),
            "bad checksum",
        ),
        (lambda t: t.replace('"0x5FbDB2315678afecb367f032d93F642f64180aa3"', '"0x1234"'), "20-byte hex"),
        (lambda t: t.replace('mode = "live"', 'mode = "yolo"'), "execution.mode"),
        (lambda t: t.replace("chain_id = 31337", "chain_id = -1"), "chain.chain_id"),
        (lambda t: t.replace('"ws://127.0.0.1:8545", ', '"ftp://x", '), "rpc_urls"),
        (lambda t: t.replace('name = "morpho"', 'name = "aave"'), "names must be unique"),
        (lambda t: t.replace('kind = "aave_v3"', 'kind = "compound"'), "protocols.0"),
        (lambda t: t + "\n[[[", "malformed TOML"),
        (lambda t: t.split("[signer]")[1], "chain: Field required"),
    ],
)
def test_bad_config_is_one_clear_line(tmp_path: Path, edit: object, message: str) -> None:
    assert callable(edit)
    with pytest.raises(ValueError, match=message) as info:
        load_config(write(tmp_path, edit(GOOD)))
    assert "\n" not in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("variable", "value", "read"),
    [
        ("KEEPER_METRICS__LISTEN", "0.0.0.0:9108", lambda c: c.metrics.listen),
        ("KEEPER_STORE__PATH", "/var/lib/keeper/keeper.sqlite", lambda c: str(c.store.path)),
        ("KEEPER_EXECUTION__MODE", "dry-run", lambda c: c.execution.mode),
        ("KEEPER_EXECUTION__MIN_PROFIT_WEI", "12345", lambda c: c.execution.min_profit_wei),
        ("KEEPER_CHAIN__RPC_URLS", '["http://node:8545"]', lambda c: c.chain.rpc_urls),
        ("KEEPER_PROTOCOLS__1__START_BLOCK", "7", lambda c: c.protocols[1].start_block),
    ],
)
def test_env_overrides_every_key(tmp_path: Path, variable: str, value: str, read: object) -> None:
    config = load_config(write(tmp_path, GOOD), {variable: value, "KEEPER_PRIVATE_KEY": "not an override"})
    expected: object = value
    if variable.endswith(("MIN_PROFIT_WEI", "START_BLOCK")):
        expected = int(value)
    if variable.endswith("RPC_URLS"):
        expected = ("http://node:8545",)
    assert read(config) == expected  # type: ignore[operator]


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("KEEPER_EXECUTION__MODE", "yolo", "execution.mode"),
        ("KEEPER_EXECUTION__NO_SUCH_KEY", "1", "execution.no_such_key: unknown key"),
        ("KEEPER_PROTOCOLS__5__START_BLOCK", "1", "KEEPER_PROTOCOLS__5__START_BLOCK: no protocols.5"),
        ("KEEPER_METRICS__LISTEN", "9108", "metrics: listen: '9108' is not host:port"),
    ],
)
def test_bad_env_override_is_one_line_naming_it(
    tmp_path: Path, variable: str, value: str, message: str
) -> None:
    with pytest.raises(UsageError) as caught:
        load_config(write(tmp_path, GOOD), {variable: value})
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("name", ["example.toml", "mainnet.example.toml"])
def test_shipped_examples_parse(name: str) -> None:
    config = load_config(Path(__file__).resolve().parents[2] / "config" / name, {})
    assert {p.kind for p in config.protocols} == {"aave_v3", "morpho_blue"}
