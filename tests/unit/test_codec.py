"""The ABI codec against eth_abi, the signatures the keeper was written against, the dataclasses it fills."""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

import pytest
from eth_abi.abi import encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from keeper.chain import abi
from keeper.chain.abi import AbiError, Binding, Param, contract
from keeper.devnet.abis import SPEC

# What the keeper was written against: a changed ABI file shows up here first.
SIGNATURES = [
    ("aave_v3_0/IPoolAddressesProvider", "getPool", "getPool()"),
    ("aave_v3_0/IPoolAddressesProvider", "getPriceOracle", "getPriceOracle()"),
    ("aave_v3_0/IPool", "getReservesList", "getReservesList()"),
    ("aave_v3_0/IPool", "getReserveData", "getReserveData(address)"),
    ("aave_v3_0/IPool", "getUserConfiguration", "getUserConfiguration(address)"),
    ("aave_v3_0/IPool", "getUserEMode", "getUserEMode(address)"),
    ("aave_v3_0/IPool", "getEModeCategoryData", "getEModeCategoryData(uint8)"),
    ("aave_v3_0/IPool", "liquidationCall", "liquidationCall(address,address,address,uint256,bool)"),
    ("aave_v3_0/IPool", "POOL_REVISION", "POOL_REVISION()"),
    ("aave_v3_6/IPool", "POOL_REVISION", "POOL_REVISION()"),
    ("aave_v3_6/IPool", "getLiquidationGracePeriod", "getLiquidationGracePeriod(address)"),
    ("aave_v3_6/IPool", "getEModeCategoryCollateralBitmap", "getEModeCategoryCollateralBitmap(uint8)"),
    ("aave_v3_6/IPool", "getReserveDeficit", "getReserveDeficit(address)"),
    ("aave_v3_6/IPool", "RESERVE_INTEREST_RATE_STRATEGY", "RESERVE_INTEREST_RATE_STRATEGY()"),
    ("aave_v3_6/IPool", "getEModeCategoryLtvzeroBitmap", "getEModeCategoryLtvzeroBitmap(uint8)"),
    ("aave_v3_0/IAaveOracle", "getAssetPrice", "getAssetPrice(address)"),
    ("aave_v3_0/IAaveOracle", "getSourceOfAsset", "getSourceOfAsset(address)"),
    ("aave_v3_0/IAToken", "scaledBalanceOf", "scaledBalanceOf(address)"),
    ("aave_v3_0/IVariableDebtToken", "scaledBalanceOf", "scaledBalanceOf(address)"),
    ("aave_v3_0/IStableDebtToken", "principalBalanceOf", "principalBalanceOf(address)"),
    ("aave_v3_0/IStableDebtToken", "getUserStableRate", "getUserStableRate(address)"),
    ("aave_v3_0/IStableDebtToken", "getUserLastUpdated", "getUserLastUpdated(address)"),
    ("common/IERC20", "balanceOf", "balanceOf(address)"),
    ("common/IERC20", "allowance", "allowance(address,address)"),
    ("common/IERC20", "totalSupply", "totalSupply()"),
    ("common/IERC20", "symbol", "symbol()"),
    ("common/IERC20", "decimals", "decimals()"),
    ("common/AggregatorV3Interface", "latestRoundData", "latestRoundData()"),
    ("common/Multicall3", "aggregate3", "aggregate3((address,bool,bytes)[])"),
    ("morpho_blue_1_0/IMorpho", "market", "market(bytes32)"),
    ("morpho_blue_1_0/IMorpho", "position", "position(bytes32,address)"),
    ("morpho_blue_1_0/IMorpho", "idToMarketParams", "idToMarketParams(bytes32)"),
    (
        "morpho_blue_1_0/IMorpho",
        "liquidate",
        "liquidate((address,address,address,address,uint256),address,uint256,uint256,bytes)",
    ),
    ("morpho_blue_1_0/IOracle", "price", "price()"),
    (
        "morpho_blue_1_0/IIrm",
        "borrowRateView",
        "borrowRateView((address,address,address,address,uint256),(uint128,uint128,uint128,uint128,uint128,uint128))",
    ),
]
EVENTS = [
    ("aave_v3_0/IPool", "Supply(address,address,address,uint256,uint16)"),
    ("aave_v3_0/IPool", "MintUnbacked(address,address,address,uint256,uint16)"),
    ("aave_v3_0/IPool", "Withdraw(address,address,address,uint256)"),
    ("aave_v3_0/IPool", "Borrow(address,address,address,uint256,uint8,uint256,uint16)"),
    ("aave_v3_0/IPool", "Repay(address,address,address,uint256,bool)"),
    ("aave_v3_0/IPool", "SwapBorrowRateMode(address,address,uint8)"),
    ("aave_v3_0/IPool", "RebalanceStableBorrowRate(address,address)"),
    ("aave_v3_0/IPool", "UserEModeSet(address,uint8)"),
    ("aave_v3_0/IPool", "ReserveUsedAsCollateralEnabled(address,address)"),
    ("aave_v3_0/IPool", "ReserveUsedAsCollateralDisabled(address,address)"),
    ("aave_v3_0/IPool", "LiquidationCall(address,address,address,uint256,uint256,address,bool)"),
    ("aave_v3_0/IAToken", "BalanceTransfer(address,address,uint256,uint256)"),
    ("aave_v3_6/IPool", "LiquidationCall(address,address,address,uint256,uint256,address,bool)"),
    ("aave_v3_6/IPool", "DeficitCreated(address,address,uint256)"),
    ("aave_v3_6/IPool", "DeficitCovered(address,address,uint256)"),
    ("common/AggregatorV3Interface", "AnswerUpdated(int256,uint256,uint256)"),
    ("morpho_blue_1_0/IMorpho", "CreateMarket(bytes32,(address,address,address,address,uint256))"),
    ("morpho_blue_1_0/IMorpho", "SupplyCollateral(bytes32,address,address,uint256)"),
    ("morpho_blue_1_0/IMorpho", "WithdrawCollateral(bytes32,address,address,address,uint256)"),
    ("morpho_blue_1_0/IMorpho", "Borrow(bytes32,address,address,address,uint256,uint256)"),
    ("morpho_blue_1_0/IMorpho", "Repay(bytes32,address,address,uint256,uint256)"),
    ("morpho_blue_1_0/IMorpho", "Liquidate(bytes32,address,address,uint256,uint256,uint256,uint256,uint256)"),
]


@pytest.mark.parametrize(("name", "function", "signature"), SIGNATURES)
def test_functions_have_the_signatures_the_keeper_was_written_against(
    name: str, function: str, signature: str
) -> None:
    fn = contract(name).fn(function)
    assert fn.signature == signature
    assert fn.selector == keccak(text=signature)[:4]


# Selectors and topics as `aave-v3.6-notes.md` lists them (computed there from the contracts, not here).
AAVE_V36_SELECTORS = [
    ("POOL_REVISION", "0148170e"),
    ("getReserveData", "35ea6a75"),
    ("getEModeCategoryCollateralConfig", "b286f467"),
    ("getEModeCategoryCollateralBitmap", "b0771dba"),
    ("getEModeCategoryBorrowableBitmap", "903a2c71"),
    ("getEModeCategoryLtvzeroBitmap", "fd89dee5"),
    ("getLiquidationGracePeriod", "5c9a8b18"),
    ("getVirtualUnderlyingBalance", "6fb07f96"),
    ("getReserveDeficit", "c952485d"),
    ("liquidationCall", "00a718a9"),
]


@pytest.mark.parametrize(("function", "selector"), AAVE_V36_SELECTORS)
def test_aave_v36_selectors_are_the_ones_the_notes_list(function: str, selector: str) -> None:
    assert contract("aave_v3_6/IPool").fn(function).selector.hex() == selector


@pytest.mark.parametrize(
    ("event", "topic_prefix"),
    [("DeficitCreated", "2bccfb3f"), ("DeficitCovered", "84b203e4"), ("LiquidationCall", "e413a321")],
)
def test_aave_v36_event_topics_are_the_ones_the_notes_list(event: str, topic_prefix: str) -> None:
    assert contract("aave_v3_6/IPool").event(event).topic.startswith("0x" + topic_prefix)


@pytest.mark.parametrize(("name", "signature"), EVENTS)
def test_events_have_the_signatures_the_keeper_was_written_against(name: str, signature: str) -> None:
    event = contract(name).event(signature.split("(", maxsplit=1)[0])
    assert event.signature == signature
    assert event.topic == "0x" + keccak(text=signature).hex()


def test_every_generated_abi_is_packaged_and_loads() -> None:
    for name in SPEC:
        built = contract(name)
        assert built.functions or built.events or built.errors, name


def test_unknown_names_say_which_file() -> None:
    with pytest.raises(AbiError, match=r"abis/aave_v3_0/IPool\.json"):
        contract("aave_v3_0/IPool").fn("getReserveDataExtended")
    with pytest.raises(AbiError, match="no ABI"):
        contract("aave_v3_0/IPoolV9")


# --- values in the codec's conventions, and the same values as eth_abi takes them ------------------


def _values(param: Param) -> st.SearchStrategy[Any]:
    kind = param.type
    if kind.endswith("[]"):
        inner = dataclasses.replace(param, type=kind[:-2])
        return st.lists(_values(inner), max_size=3)
    if kind == "tuple":
        return st.fixed_dictionaries({c.name: _values(c) for c in param.components})
    if kind.startswith("uint"):
        return st.integers(0, 2 ** int(kind[4:]) - 1)
    if kind.startswith("int"):
        bits = int(kind[3:])
        return st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    if kind == "address":
        return st.binary(min_size=20, max_size=20).map(to_checksum_address)
    if kind == "bool":
        return st.booleans()
    if kind == "string":
        return st.text(max_size=40)
    if kind == "bytes":
        return st.binary(max_size=70)
    size = int(kind[5:])
    return st.binary(min_size=size, max_size=size).map(lambda b: "0x" + b.hex())


def _eth_abi(param: Param, value: Any) -> Any:
    if param.type.endswith("[]"):
        inner = dataclasses.replace(param, type=param.type[:-2])
        return [_eth_abi(inner, v) for v in value]
    if param.type == "tuple":
        return tuple(_eth_abi(c, value[c.name]) for c in param.components)
    if param.type.startswith("bytes") and param.type != "bytes":
        return bytes.fromhex(value[2:])
    return value


ALL_FUNCTIONS = [(name, fn) for name in SPEC for fn in contract(name).functions.values()]
ALL_EVENTS = [(name, event) for name in SPEC for event in contract(name).events.values()]


@pytest.mark.parametrize(("name", "fn"), ALL_FUNCTIONS, ids=[f"{n}.{f.name}" for n, f in ALL_FUNCTIONS])
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_call_encodes_as_eth_abi(name: str, fn: abi.Function, data: st.DataObject) -> None:
    args = [data.draw(_values(p)) for p in fn.inputs]
    converted = [_eth_abi(p, a) for p, a in zip(fn.inputs, args, strict=True)]
    expected = fn.selector + encode([p.canonical for p in fn.inputs], converted)
    assert fn.call(*args) == expected


@pytest.mark.parametrize(("name", "fn"), ALL_FUNCTIONS, ids=[f"{n}.{f.name}" for n, f in ALL_FUNCTIONS])
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_results_decode_as_eth_abi_encoded_them(name: str, fn: abi.Function, data: st.DataObject) -> None:
    values = [data.draw(_values(p)) for p in fn.outputs]
    converted = [_eth_abi(p, v) for p, v in zip(fn.outputs, values, strict=True)]
    raw = encode([p.canonical for p in fn.outputs], converted)
    struct = len(fn.outputs) == 1 and fn.outputs[0].type == "tuple"
    expected = values[0] if struct else dict(zip(fn.fields, values, strict=True))
    assert fn.decode(raw) == expected
    assert fn.values(raw) == tuple(expected[f] for f in fn.fields)
    if len(fn.fields) == 1:
        assert fn.value(raw) == expected[fn.fields[0]]


@pytest.mark.parametrize(("name", "event"), ALL_EVENTS, ids=[f"{n}.{e.name}" for n, e in ALL_EVENTS])
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_events_decode_topics_and_data(name: str, event: abi.Event, data: st.DataObject) -> None:
    values = {p.name: data.draw(_values(p)) for p in event.inputs}
    topics = [event.topic]
    for p in event.inputs:
        if p.indexed:
            topics.append("0x" + encode([p.canonical], [_eth_abi(p, values[p.name])]).hex())
    plain = [p for p in event.inputs if not p.indexed]
    body = encode([p.canonical for p in plain], [_eth_abi(p, values[p.name]) for p in plain])
    log = {"address": "0x" + "11" * 20, "topics": topics, "data": "0x" + body.hex()}
    assert event.matches(log)
    assert event.decode(log) == values


def test_an_event_with_its_fields_elsewhere_is_not_matched() -> None:
    liquidation = contract("aave_v3_0/IPool").event("LiquidationCall")
    log = {"topics": [liquidation.topic, "0x" + "00" * 32], "data": "0x"}
    assert not liquidation.matches(log)
    with pytest.raises(AbiError):
        liquidation.decode(log)


def test_topic_index_names_the_topic_of_an_indexed_field() -> None:
    supply = contract("aave_v3_0/IPool").event("Supply")  # reserve, user, onBehalfOf (idx), amount, referral
    assert [supply.topic_index(f) for f in ("reserve", "onBehalfOf", "referralCode")] == [1, 2, 3]
    with pytest.raises(AbiError, match="no indexed field user"):
        supply.topic_index("user")


@pytest.mark.parametrize("size", [0, 31])
def test_short_results_are_refused_not_read_as_zero(size: int) -> None:
    fn = contract("aave_v3_0/IAToken").fn("scaledBalanceOf")
    with pytest.raises(AbiError, match="expected 32"):
        fn.value(bytes(size))
    with pytest.raises(AbiError):
        contract("aave_v3_0/IPool").fn("getReserveData").decode(bytes(32 * 14))


def test_wrong_argument_counts_are_refused() -> None:
    with pytest.raises(TypeError):  # the one-word fast path: Python's own argument check
        contract("common/IERC20").fn("balanceOf").call()
    with pytest.raises(AbiError, match="takes 5 arguments"):
        contract("morpho_blue_1_0/IMorpho").fn("liquidate").call({}, "0x" + "00" * 20)


# --- dataclasses filled by name -------------------------------------------------------------------

READERS = [
    "keeper.protocols.aave_v3.reader",
    "keeper.protocols.morpho_blue.reader",
    "keeper.protocols.morpho_blue.events",
]


def test_every_state_dataclass_read_from_chain_is_filled_by_name() -> None:
    for module in READERS:
        importlib.import_module(module)  # a mismatch raises AbiError here
    filled = {b.cls.__name__ for b in abi.BINDINGS}
    assert {"Reserve", "EModeCategory", "Market", "MarketParams", "Position"} <= filled


def test_each_binding_maps_every_field_to_a_field_its_abi_has() -> None:
    for module in READERS:
        importlib.import_module(module)
    for binding in abi.BINDINGS:
        names = {f.name for f in dataclasses.fields(binding.cls)}
        assert set(binding.mapping) | binding.given == names, binding.source


@dataclasses.dataclass(frozen=True)
class _Renamed:
    total_supply_assets: int
    total_borrowed: int  # Morpho calls it totalBorrowAssets


def test_a_field_the_abi_lacks_fails_when_the_binding_is_built() -> None:
    market = contract("morpho_blue_1_0/IMorpho").fn("market")
    with pytest.raises(AbiError, match="totalBorrowed"):
        Binding(_Renamed, market.fields)
    with pytest.raises(AbiError, match="totalBorrows"):
        Binding(_Renamed, market.fields, renames={"total_borrowed": "totalBorrows"})
    fixed = Binding(_Renamed, market.fields, renames={"total_borrowed": "totalBorrowAssets"})
    raw = encode(["uint128"] * 6, [1, 2, 3, 4, 5, 6])
    assert fixed.fill(market.values(raw)) == _Renamed(1, 3)
    assert fixed.fill_named(market.decode(raw)) == _Renamed(1, 3)
    assert fixed.named(_Renamed(7, 9)) == {"totalSupplyAssets": 7, "totalBorrowAssets": 9}


def test_topics_by_field_name_equal_the_hand_typed_tables_they_replace() -> None:
    from keeper.protocols.aave_v3.events import A_TOKEN_USER_TOPICS, POOL_USER_TOPICS
    from keeper.protocols.morpho_blue.events import BORROWER_TOPICS

    def topic(signature: str) -> str:
        return "0x" + keccak(text=signature).hex()

    assert {
        topic("Supply(address,address,address,uint256,uint16)"): (2,),
        topic("MintUnbacked(address,address,address,uint256,uint16)"): (2,),
        topic("Withdraw(address,address,address,uint256)"): (2,),
        topic("Borrow(address,address,address,uint256,uint8,uint256,uint16)"): (2,),
        topic("Repay(address,address,address,uint256,bool)"): (2,),
        topic("SwapBorrowRateMode(address,address,uint8)"): (2,),
        topic("RebalanceStableBorrowRate(address,address)"): (2,),
        topic("UserEModeSet(address,uint8)"): (1,),
        topic("ReserveUsedAsCollateralEnabled(address,address)"): (2,),
        topic("ReserveUsedAsCollateralDisabled(address,address)"): (2,),
        topic("LiquidationCall(address,address,address,uint256,uint256,address,bool)"): (3,),
        topic("DeficitCreated(address,address,uint256)"): (1,),
    } == POOL_USER_TOPICS
    assert {topic("BalanceTransfer(address,address,uint256,uint256)"): (1, 2)} == A_TOKEN_USER_TOPICS
    assert {
        topic("SupplyCollateral(bytes32,address,address,uint256)"): 3,
        topic("WithdrawCollateral(bytes32,address,address,address,uint256)"): 2,
        topic("Borrow(bytes32,address,address,address,uint256,uint256)"): 2,
        topic("Repay(bytes32,address,address,uint256,uint256)"): 3,
        topic("Liquidate(bytes32,address,address,uint256,uint256,uint256,uint256,uint256)"): 3,
    } == BORROWER_TOPICS


def test_camel_case_is_how_solidity_spells_the_fields() -> None:
    assert abi.camel("total_borrow_shares") == "totalBorrowShares"
    assert abi.camel("lltv") == "lltv"
