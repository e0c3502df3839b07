"""The hand-written aggregate3 codec agrees with eth_abi, and chunking covers every call once."""

from __future__ import annotations

from eth_abi.abi import decode, encode
from hypothesis import given, settings
from hypothesis import strategies as st

from keeper.chain.multicall import (
    AGGREGATE3_SELECTOR,
    Call,
    Result,
    chunks,
    decode_aggregate3,
    encode_aggregate3,
    selector,
)

addresses = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
calls = st.lists(st.builds(Call, addresses, st.binary(max_size=200), st.booleans()), max_size=20)


def test_selector_is_aggregate3() -> None:
    assert selector("aggregate3((address,bool,bytes)[])") == AGGREGATE3_SELECTOR


@given(calls)
@settings(max_examples=200, deadline=None)
def test_encoding_matches_eth_abi(batch: list[Call]) -> None:
    expected = encode(["(address,bool,bytes)[]"], [[(c.target, c.allow_failure, c.data) for c in batch]])
    assert encode_aggregate3(batch) == AGGREGATE3_SELECTOR + expected


@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=300)), max_size=20))
@settings(max_examples=200, deadline=None)
def test_decoding_matches_eth_abi(results: list[tuple[bool, bytes]]) -> None:
    raw = encode(["(bool,bytes)[]"], [results])
    assert decode_aggregate3(raw) == [Result(ok, data) for ok, data in results]
    assert [tuple(r) for r in decode(["(bool,bytes)[]"], raw)[0]] == results


@given(calls, st.integers(1, 7), st.integers(100, 2_000))
@settings(max_examples=200, deadline=None)
def test_chunks_cover_every_call_once_in_order(batch: list[Call], max_calls: int, max_bytes: int) -> None:
    pieces = list(chunks(batch, max_calls, max_bytes))
    assert [c for piece in pieces for c in piece] == batch
    assert all(0 < len(piece) <= max_calls for piece in pieces)
    assert all(len(piece) == 1 or sum(160 + len(c.data) for c in piece) <= max_bytes for piece in pieces)
