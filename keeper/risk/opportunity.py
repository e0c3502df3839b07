"""Liquidation opportunities valued in the native token with reference prices. Pure.

A quote says what a liquidation moves (debt paid, collateral received, in token units); this module
says what that is worth in wei of the native token, so it can be weighed against gas. Prices come
in books, one per source, in order of preference: the protocol oracles' (Aave's ``AaveOracle``:
base-currency units per whole token), then the keeper's ``[[price_feeds]]``. One opportunity is
valued with one book, never a mix: two sources need not share a base currency (an Aave fork may
price in ETH, the feeds in USD), and a ratio of prices from different units is meaningless.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from keeper.protocols.base import LiquidationQuote, TokenPrice

__all__ = ["Opportunity", "TokenPrice", "first_complete", "gross_profit_wei", "ranked", "value_wei"]


@dataclass(frozen=True, slots=True)
class Opportunity:
    name: str
    """The protocol's name in the config."""
    quote: LiquidationQuote
    gross_profit_wei: int
    """Value received minus value paid, before gas."""


def value_wei(amount: int, token: TokenPrice, native: TokenPrice) -> int:
    """``amount`` token units in wei of the native token, rounded down."""
    return int(amount * token.price * 10**native.decimals // (10**token.decimals * native.price))


def gross_profit_wei(
    quote: LiquidationQuote, prices: Mapping[str, TokenPrice], native_asset: str
) -> int | None:
    """None when a token of the quote has no reference price (the opportunity cannot be weighed)."""
    native = prices.get(native_asset)
    collateral = prices.get(quote.collateral_asset)
    debt = prices.get(quote.debt_asset)
    if native is None or collateral is None or debt is None or native.price == 0:
        return None
    return value_wei(quote.collateral_seized, collateral, native) - value_wei(quote.debt_repaid, debt, native)


def first_complete(
    books: Sequence[Mapping[str, TokenPrice]], tokens: Sequence[str]
) -> Mapping[str, TokenPrice] | None:
    """The first book that prices every one of ``tokens`` (a price of 0 does not count), else None."""
    for book in books:
        if all(token in book and book[token].price > 0 for token in tokens):
            return book
    return None


def ranked(opportunities: list[Opportunity]) -> list[Opportunity]:
    """Most profitable first: with limited inventory and one nonce stream, the best go out first."""
    return sorted(opportunities, key=lambda o: (-o.gross_profit_wei, o.name, o.quote.market, o.quote.user))
