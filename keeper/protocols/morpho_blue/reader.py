"""Read Morpho Blue markets and positions at one block in two batched round trips.

Round 1: ``market`` and the oracle ``price`` of every tracked market, ``position`` of each
requested borrower (and ``idToMarketParams`` of markets first seen through a position event).
Round 2: each IRM's ``borrowRateView`` against the market totals of round 1.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from eth_utils.address import to_checksum_address

from keeper.chain.multicall import Call, address_arg, aggregate3, selector, words
from keeper.chain.rpc import BlockTag, Rpc

from .state import Market, MarketParams, MarketState, Position

MARKET = selector("market(bytes32)")
POSITION = selector("position(bytes32,address)")
ID_TO_MARKET_PARAMS = selector("idToMarketParams(bytes32)")
PRICE = selector("price()")
BORROW_RATE_VIEW = selector(
    "borrowRateView((address,address,address,address,uint256),(uint128,uint128,uint128,uint128,uint128,uint128))"
)


def _id(market_id: str) -> bytes:
    return bytes.fromhex(market_id[2:])


def _address(word: int) -> str:
    return to_checksum_address(word.to_bytes(20, "big"))


async def read_market_params(
    rpc: Rpc, morpho: str, ids: Collection[str], block: BlockTag
) -> list[MarketParams]:
    ordered = sorted(ids)
    results = await aggregate3(rpc, [Call(morpho, ID_TO_MARKET_PARAMS + _id(i)) for i in ordered], block)
    params = []
    for market_id, result in zip(ordered, results, strict=True):
        loan, collateral, oracle, irm, lltv = words(result.data)
        params.append(
            MarketParams(
                market_id, _address(loan), _address(collateral), _address(oracle), _address(irm), lltv
            )
        )
    return params


def _rate_call(params: MarketParams, market: Market) -> Call:
    encoded_params = b"".join(
        address_arg(a) for a in (params.loan_token, params.collateral_token, params.oracle, params.irm)
    ) + params.lltv.to_bytes(32, "big")
    encoded_market = b"".join(
        v.to_bytes(32, "big")
        for v in (
            market.total_supply_assets,
            market.total_supply_shares,
            market.total_borrow_assets,
            market.total_borrow_shares,
            market.last_update,
            market.fee,
        )
    )
    return Call(params.irm, BORROW_RATE_VIEW + encoded_params + encoded_market)


async def read_markets_and_positions(
    rpc: Rpc,
    morpho: str,
    block: BlockTag,
    markets: Sequence[MarketParams],
    positions: Sequence[tuple[str, str]],
) -> tuple[dict[str, MarketState], dict[tuple[str, str], Position]]:
    """Markets (with price and rate) and positions, all at ``block``."""
    calls = []
    for params in markets:
        calls += [Call(morpho, MARKET + _id(params.id)), Call(params.oracle, PRICE, allow_failure=True)]
    calls += [Call(morpho, POSITION + _id(m) + address_arg(u)) for m, u in positions]
    results = await aggregate3(rpc, calls, block)
    stored: list[tuple[MarketParams, Market, int]] = []
    for index, params in enumerate(markets):
        market = Market(*words(results[2 * index].data))
        price = results[2 * index + 1]
        if price.success and len(price.data) >= 32 and words(price.data)[0] > 0:  # else liquidate reverts
            stored.append((params, market, words(price.data)[0]))
    offset = 2 * len(markets)
    read_positions = {key: Position(*words(results[offset + i].data)) for i, key in enumerate(positions)}
    with_irm = [(p, m) for p, m, _ in stored if p.has_irm]
    rates = await aggregate3(rpc, [_rate_call(p, m) for p, m in with_irm], block)
    rate_by_id = {p.id: words(r.data)[0] for (p, _), r in zip(with_irm, rates, strict=True)}
    states = {
        params.id: MarketState(params, market, price, rate_by_id.get(params.id, 0))
        for params, market, price in stored
    }
    return states, read_positions
