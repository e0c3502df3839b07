from __future__ import annotations

from pathlib import Path

import pytest

from keeper.config import UNISWAP_V3_FEE_TIERS, AaveV3Config, MorphoBlueConfig, load_config
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


VENUE = """
[[venues]]
kind = "uniswap_v3"
factory = "0x1F98431c8aD98523631AE4a59f267346ea31F984"
swap_router = "0xe592427a0aece92de3edee1f18e0157c05861564"
quoter = "0x61fFE014bA17989E743c5F6cB21bF9697530B21e"
"""


def test_a_uniswap_venue_parses_with_mainnet_fee_tiers_by_default(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, GOOD)).venues == ()
    (venue,) = load_config(write(tmp_path, GOOD + VENUE)).venues
    assert venue.swap_router == "0xE592427A0AEce92De3Edee1F18E0157C05861564"  # normalized to checksum
    assert venue.fee_tiers == UNISWAP_V3_FEE_TIERS == (100, 500, 3000, 10000)
    (venue,) = load_config(write(tmp_path, GOOD + VENUE + "fee_tiers = [500]\n")).venues
    assert venue.fee_tiers == (500,)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t + "slippage_bps = 50\n", "venues.0.slippage_bps: unknown key"),
        (lambda t: t.replace('kind = "uniswap_v3"', 'kind = "curve"'), "venues.0.kind"),
        (lambda t: t.replace("0x61fFE014bA17989E743c5F6cB21bF9697530B21e", "0x61ffe014"), "20-byte hex"),
        (
            lambda t: t.replace(
                "0x1F98431c8aD98523631AE4a59f267346ea31F984", "0x1f98431C8aD98523631AE4a59f267346ea31F984"
            ),
            "bad checksum",
        ),
        (
            lambda t: t.replace('quoter = "0x61fFE014bA17989E743c5F6cB21bF9697530B21e"\n', ""),
            "venues.0.quoter: Field required",
        ),
        (lambda t: t + "fee_tiers = []\n", "venues.0.fee_tiers"),
        (lambda t: t + "fee_tiers = [500, 1000000]\n", "hundredths of a bip"),
        (lambda t: t + "fee_tiers = [500, 500]\n", "unique"),
    ],
)
def test_bad_venue_is_one_clear_line(tmp_path: Path, edit: object, message: str) -> None:
    assert callable(edit)
    with pytest.raises(UsageError, match=message) as info:
        load_config(write(tmp_path, GOOD + edit(VENUE)))
    assert "\n" not in str(info.value)


def test_the_commented_venue_in_the_example_parses_once_uncommented(tmp_path: Path) -> None:
    example = (Path(__file__).resolve().parents[2] / "config" / "example.toml").read_text()
    block = example[example.index("# [[venues]]") :].splitlines()
    uncommented = "\n".join(line.removeprefix("# ") for line in block if line.startswith("# "))
    (venue,) = load_config(write(tmp_path, example + "\n" + uncommented + "\n"), {}).venues
    assert venue.kind == "uniswap_v3" and venue.fee_tiers == UNISWAP_V3_FEE_TIERS


FEEDS = """
[[price_feeds]]
token = "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"
feed = "0x5f4eC3Df9cbd43714FE2740f5E3616155c5b8419"
max_age_s = 4500
"""


def test_price_feeds_parse_checksummed_with_the_keeper_wide_age_by_default(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, GOOD)).price_feeds == ()
    (feed,) = load_config(write(tmp_path, GOOD + FEEDS)).price_feeds
    assert feed.token == "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2" and feed.max_age_s == 4500
    (feed,) = load_config(write(tmp_path, GOOD + FEEDS.replace("max_age_s = 4500\n", ""))).price_feeds
    assert feed.max_age_s is None  # execution.max_price_age_s applies


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t + "heartbeat_s = 3600\n", "price_feeds.0.heartbeat_s: unknown key"),
        (lambda t: t.replace("0x5f4eC3Df9cbd43714FE2740f5E3616155c5b8419", "0x5f4e"), "20-byte hex"),
        (
            lambda t: t.replace(
                "0x5f4eC3Df9cbd43714FE2740f5E3616155c5b8419", "0x5F4eC3Df9cbd43714FE2740f5E3616155c5b8419"
            ),
            "bad checksum",
        ),
        (lambda t: t.replace("max_age_s = 4500", "max_age_s = 0"), "price_feeds.0.max_age_s"),
        (lambda t: t.replace('feed = "0x5f4eC3Df9cbd43714FE2740f5E3616155c5b8419"\n', ""), "Field required"),
        (lambda t: t + t, "price_feeds: one feed per token"),
    ],
)
def test_bad_price_feed_is_one_clear_line(tmp_path: Path, edit: object, message: str) -> None:
    assert callable(edit)
    with pytest.raises(UsageError, match=message) as info:
        load_config(write(tmp_path, GOOD + edit(FEEDS)))
    assert "\n" not in str(info.value)


def test_the_commented_price_feeds_in_the_example_parse_once_uncommented(tmp_path: Path) -> None:
    example = (Path(__file__).resolve().parents[2] / "config" / "example.toml").read_text()
    block = example[example.index("# [[price_feeds]]") : example.index("# DEX venues")].splitlines()
    uncommented = "\n".join(line.removeprefix("# ") for line in block if line.startswith("# "))
    feeds = load_config(write(tmp_path, example + "\n" + uncommented + "\n"), {}).price_feeds
    assert [f.max_age_s for f in feeds] == [4500, None]
