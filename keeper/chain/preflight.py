"""Start-up checks against the chain itself: the right chain, and code where the config says."""

from __future__ import annotations

from keeper.config import Config
from keeper.errors import UsageError

from .rpc import Rpc


async def check_chain_id(rpc: Rpc, expected: int) -> None:
    actual = int(await rpc.request("eth_chainId"), 16)
    if actual != expected:
        raise UsageError(f"chain.chain_id is {expected} but the RPC endpoint serves chain {actual}")


async def require_multicall3(rpc: Rpc, address: str) -> None:
    """Every batched read goes through Multicall3: without it nothing can be read, say so first."""
    if await rpc.request("eth_getCode", [address, "latest"]) in ("0x", "0x0", None):
        raise UsageError(
            f"chain.multicall3: no contract code at {address} on this chain "
            "(deploy Multicall3 or set chain.multicall3 to its address here)"
        )


async def require_code(rpc: Rpc, config: Config) -> None:
    """Every configured contract must exist on this chain: a wrong address is an error, not a quiet keeper."""
    for protocol in config.protocols:
        key, address = protocol.entry_contract
        if await rpc.request("eth_getCode", [address, "latest"]) in ("0x", "0x0", None):
            raise UsageError(f"protocols.{protocol.name}.{key}: {address} has no contract code on this chain")
    for index, feed in enumerate(config.price_feeds):
        if await rpc.request("eth_getCode", [feed.feed, "latest"]) in ("0x", "0x0", None):
            raise UsageError(f"price_feeds.{index}.feed: {feed.feed} has no contract code on this chain")
    for index, venue in enumerate(config.venues):
        for key in ("factory", "swap_router", "quoter"):
            address = getattr(venue, key)
            if await rpc.request("eth_getCode", [address, "latest"]) in ("0x", "0x0", None):
                raise UsageError(f"venues.{index}.{key}: {address} has no contract code on this chain")
