"""Read Morpho Blue markets and positions at one block in two batched round trips.

Round 1: ``market`` and the oracle ``price`` of every tracked market, ``position`` of each
requested borrower (and ``idToMarketParams`` of markets first seen through a position event).
Round 2: each IRM's ``borrowRateView`` against the market totals of round 1.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from keeper.chain.abi import Binding, contract
from keeper.chain.multicall import Call, aggregate3
from keeper.chain.rpc import BlockTag, Rpc

from .events import MARKET_PARAMS, MORPHO
from .state import Market, MarketParams, MarketState, Position

ORACLE = contract("morpho_blue_1_0/IOracle")
IRM = contract("morpho_blue_1_0/IIrm")

MARKET = MORPHO.fn("market")
POSITION = MORPHO.fn("position")
ID_TO_MARKET_PARAMS = MORPHO.fn("idToMarketParams")
PRICE = ORACLE.fn("price")
BORROW_RATE_VIEW = IRM.fn("borrowRateView")

MARKET_FIELDS = Binding(Market, MARKET.fields, source="IMorpho.market")
POSITION_FIELDS = Binding(Position, POSITION.fields, source="IMorpho.position")
ID_TO_MARKET_PARAMS_FIELDS = Binding(
    MarketParams, ID_TO_MARKET_PARAMS.fields, given=("id",), source="IMorpho.idToMarketParams"
)


async def read_market_params(
    rpc: Rpc, morpho: str, ids: Collection[str], block: BlockTag
) -> list[MarketParams]:
    ordered = sorted(ids)
    results = await aggregate3(rpc, [Call(morpho, ID_TO_MARKET_PARAMS.call(i)) for i in ordered], block)
    return [
        ID_TO_MARKET_PARAMS_FIELDS.fill(ID_TO_MARKET_PARAMS.values(result.data), id=market_id)
        for market_id, result in zip(ordered, results, strict=True)
    ]


def _rate_call(params: MarketParams, market: Market) -> Call:
    return Call(params.irm, BORROW_RATE_VIEW.call(MARKET_PARAMS.named(params), MARKET_FIELDS.named(market)))


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
        calls += [Call(morpho, MARKET.call(params.id)), Call(params.oracle, PRICE.call(), allow_failure=True)]
    calls += [Call(morpho, POSITION.call(m, u)) for m, u in positions]
    results = await aggregate3(rpc, calls, block)
    stored: list[tuple[MarketParams, Market, int]] = []
    for index, params in enumerate(markets):
        market = MARKET_FIELDS.fill(MARKET.values(results[2 * index].data))
        price = results[2 * index + 1]
        value = PRICE.value(price.data) if price.success and len(price.data) >= 32 else 0
        if value > 0:  # else liquidate reverts
            stored.append((params, market, value))
    offset = 2 * len(markets)
    read_positions = {
        key: POSITION_FIELDS.fill(POSITION.values(result.data))
        for key, result in zip(positions, results[offset:], strict=True)
    }
    with_irm = [(p, m) for p, m, _ in stored if p.has_irm]
    rates = await aggregate3(rpc, [_rate_call(p, m) for p, m in with_irm], block)
    rate_by_id = {p.id: BORROW_RATE_VIEW.value(r.data) for (p, _), r in zip(with_irm, rates, strict=True)}
    states = {
        params.id: MarketState(params, market, price, rate_by_id.get(params.id, 0))
        for params, market, price in stored
    }
    return states, read_positions
