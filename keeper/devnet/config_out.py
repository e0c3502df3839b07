"""The keeper config a devnet writes for itself (schema in keeper.config)."""

from __future__ import annotations

from typing import Any


def devnet_config_toml(summary: dict[str, Any]) -> str:
    rpc, ws = summary["rpc_url"], summary["ws_url"]
    uniswap = summary["uniswap_v3"]
    return f"""\
# Written by `keeper devnet up`: a keeper config for the local devnet. Regenerated on every run.
# The keeper account is Anvil's public dev account #1: export its key as KEEPER_PRIVATE_KEY.

[chain]
chain_id = {summary["chain_id"]}
rpc_urls = ["{ws}", "{rpc}"]

[signer]
private_key_env = "KEEPER_PRIVATE_KEY"

[execution]
mode = "dry-run"
native_asset = "{summary["aave"]["reserves"]["WETH"]}"   # profits valued in WETH (Aave oracle, else feeds)

[store]
path = "keeper-devnet.sqlite"

[metrics]
listen = "127.0.0.1:9108"

[[protocols]]
kind = "aave_v3"
name = "aave"
pool_addresses_provider = "{summary["aave"]["pool_addresses_provider"]}"
start_block = 0

[[protocols]]
kind = "morpho_blue"
name = "morpho"
address = "{summary["morpho"]["address"]}"
start_block = 0

[[venues]]
kind = "uniswap_v3"                      # the devnet's Uniswap V3, pools at the feed prices
factory = "{uniswap["factory"]}"
swap_router = "{uniswap["swap_router"]}"
quoter = "{uniswap["quoter"]}"
fee_tiers = [{", ".join(str(fee) for fee in uniswap["fee_tiers"])}]
{_price_feeds(summary)}"""


def _price_feeds(summary: dict[str, Any]) -> str:
    """One ``[[price_feeds]]`` per devnet token, with the SettableFeed Aave's oracle and the Morpho
    market oracles read too: valuing works without Aave (a Morpho-only variant of this config)."""
    tables = []
    for symbol, token in summary["aave"]["reserves"].items():
        tables.append(
            f"""
[[price_feeds]]
token = "{token}"   # {symbol}
feed = "{summary["feeds"][symbol]}"
"""
        )
    return "".join(tables)
