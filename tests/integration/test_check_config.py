"""`keeper check-config`: a good config reports the wallet; each bad one is one line and exit 2."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from eth_account import Account

from keeper.devnet.abi import encode_call
from tests.conftest import Devnet, free_port, run_keeper
from tests.support.config import variant

pytestmark = pytest.mark.integration

KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
ENV = {"KEEPER_PRIVATE_KEY": KEY, "PATH": ""}


def check(config: Path, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = run_keeper("check-config", "--config", str(config), env=env if env is not None else ENV)
    return proc.returncode, proc.stdout, proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ""


def edited(devnet: Devnet, tmp_path: Path, old: str, new: str) -> Path:
    """The devnet's TOML text with one edit: for files the config model cannot express (malformed)."""
    text = devnet.config_path.read_text()
    assert old in text, old
    path = tmp_path / "keeper.toml"
    path.write_text(text.replace(old, new, 1))
    return path


def test_good_config_reports_chain_signer_and_wallet(devnet: Devnet) -> None:
    code, out, err = check(devnet.config_path)
    assert code == 0, err
    assert "chain         31337" in out
    assert "signer        0x70997970C51812dc3A010C7d01b50e0d17dc79C8" in out
    assert out.count("approved for") >= 4 and out.strip().endswith("config ok")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("[chain]", "[chain", "malformed TOML"),
        ("[signer]", "[signer]\ncolour = 1", "signer.colour: unknown key"),
        ("chain_id = 31337", "chain_id = 1", "chain.chain_id is 1 but the RPC endpoint serves chain 31337"),
    ],
)
def test_bad_configs_are_one_line(devnet: Devnet, tmp_path: Path, old: str, new: str, message: str) -> None:
    code, _, err = check(edited(devnet, tmp_path, old, new))
    assert code == 2 and message in err and err.startswith("keeper: error:")


def test_bad_checksum_names_the_key(devnet: Devnet, tmp_path: Path) -> None:
    morpho = devnet.summary["morpho"]["address"]
    at = next(i for i, c in enumerate(morpho) if i > 1 and c.isalpha())
    broken = morpho[:at] + morpho[at].swapcase() + morpho[at + 1 :]  # one letter's case: a bad checksum
    code, _, err = check(edited(devnet, tmp_path, morpho, broken))
    assert code == 2 and "protocols.1.morpho_blue.address" in err and "checksum" in err


def test_unreachable_rpc(devnet: Devnet, tmp_path: Path) -> None:
    dead = f"127.0.0.1:{free_port()}"
    urls = [f"ws://{dead}", f"http://{dead}"]
    code, _, err = check(variant(devnet, tmp_path / "keeper.toml", {"chain": {"rpc_urls": urls}}))
    assert code == 2 and err.startswith("keeper: error: chain.rpc_urls: no endpoint answered")


def test_contract_without_code(devnet: Devnet, tmp_path: Path) -> None:
    nobody = "0x000000000000000000000000000000000000dEaD"
    code, _, err = check(edited(devnet, tmp_path, devnet.summary["morpho"]["address"], nobody))
    assert (
        code == 2
        and err == f"keeper: error: protocols.morpho.address: {nobody} has no contract code on this chain"
    )


def test_missing_key_variable(devnet: Devnet) -> None:
    code, _, err = check(devnet.config_path, {"PATH": ""})
    assert code == 2 and err == "keeper: error: signer: environment variable KEEPER_PRIVATE_KEY is not set"


def test_keystore_wrong_password_and_unreadable_file(devnet: Devnet, tmp_path: Path) -> None:
    keystore = tmp_path / "key.json"
    keystore.write_text(json.dumps(Account.encrypt(KEY, "right", kdf="pbkdf2", iterations=2)))
    password = tmp_path / "password"
    password.write_text("Tr0ub4dor&3\n")
    signer = f'[signer]\nkeystore = "{keystore}"\npassword_file = "{password}"'
    config = edited(devnet, tmp_path, '[signer]\nprivate_key_env = "KEEPER_PRIVATE_KEY"', signer)
    code, _, err = check(config, {"PATH": ""})
    assert code == 2 and "cannot decrypt keystore" in err and "Tr0ub4dor" not in err
    password.write_text("right\n")
    assert check(config, {"PATH": ""})[0] == 0
    keystore.unlink()
    code, _, err = check(config, {"PATH": ""})
    assert code == 2 and str(keystore) in err


def test_good_config_reports_each_price_feed(devnet: Devnet) -> None:
    code, out, err = check(devnet.config_path)
    assert code == 0, err
    for symbol, token in devnet.summary["aave"]["reserves"].items():
        assert f"price feed    {token}: {devnet.summary['feeds'][symbol]} answers" in out


def test_each_bad_price_feed_is_one_line(chain: Devnet, tmp_path: Path) -> None:
    s = chain.summary
    tokens, feeds = s["aave"]["reserves"], s["feeds"]
    owner = "0x" + chain.rpc.eth_call(feeds["DAI"], encode_call("owner()"))[-20:].hex()
    zero = encode_call("updateAnswer(int256)", 0)
    chain.rpc.call("eth_sendTransaction", [{"from": owner, "to": feeds["DAI"], "data": "0x" + zero.hex()}])
    nobody = "0x000000000000000000000000000000000000dEaD"
    entries = [
        {"token": tokens["WETH"], "feed": nobody},  # no code
        {"token": tokens["USDC"], "feed": tokens["DAI"]},  # code, but an ERC-20: no latestRoundData
        {"token": tokens["DAI"], "feed": feeds["DAI"]},  # a feed answering 0
        {"token": tokens["WBTC"], "feed": feeds["WBTC"]},  # good
    ]
    config = variant(chain, tmp_path / "keeper.toml", {"price_feeds": entries})
    proc = run_keeper("check-config", "--config", str(config), env=ENV)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        f"keeper: error: price_feeds.0.feed: {nobody} has no contract code on this chain",
        f"keeper: error: price_feeds.1.feed: {tokens['DAI']} latestRoundData() reverted or did not answer",
        f"keeper: error: price_feeds.2.feed: {feeds['DAI']} answers 0, not a price above 0",
    ]


def test_a_venue_contract_without_code_is_one_line(devnet: Devnet, tmp_path: Path) -> None:
    nobody = "0x000000000000000000000000000000000000dEaD"
    (venue,) = tomllib.loads(devnet.config_path.read_text())["venues"]
    config = variant(devnet, tmp_path / "keeper.toml", {"venues": [venue | {"quoter": nobody}]})
    proc = run_keeper("check-config", "--config", str(config), env=ENV)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip() == (
        f"keeper: error: venues.0.quoter: {nobody} has no contract code on this chain"
    )
    good = run_keeper("check-config", "--config", str(devnet.config_path), env=ENV)
    assert f"venue         uniswap_v3: factory {venue['factory']}, router and quoter found" in good.stdout


def test_a_price_feed_without_code_stops_keeper_run_before_any_store(devnet: Devnet, tmp_path: Path) -> None:
    nobody = "0x000000000000000000000000000000000000dEaD"
    store = tmp_path / "store.sqlite"
    entries = [{"token": devnet.summary["aave"]["reserves"]["WETH"], "feed": nobody}]
    config = variant(
        devnet, tmp_path / "keeper.toml", {"price_feeds": entries, "store": {"path": str(store)}}
    )
    proc = run_keeper("run", "--config", str(config), env=ENV)
    assert proc.returncode == 2 and not store.exists()
    assert proc.stderr.strip().splitlines()[-1] == (
        f"keeper: error: price_feeds.0.feed: {nobody} has no contract code on this chain"
    )
