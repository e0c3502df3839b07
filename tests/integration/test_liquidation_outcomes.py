"""Predicted liquidation outcomes equal what the contracts do, to the wei, on every liquidatable position.

After a WETH crash, the adapter quotes every liquidatable position for the timestamp of the next
block; each liquidation is then executed for real (at that timestamp) on a snapshot, its event
compared with the quote, and the snapshot reverted.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from keeper.chain.rpc import HttpRpc
from keeper.devnet.abi import decode_result, encode_call
from keeper.devnet.feeds import set_price
from keeper.devnet.rpc import Rpc, Tx
from keeper.protocols.aave_v3.adapter import AaveV3Adapter
from keeper.protocols.aave_v3.v3_6 import liquidation as liquidation_v3_6
from keeper.protocols.aave_v3.v3_6.math import reserves_at as reserves_at_v3_6
from keeper.protocols.base import LiquidationQuote
from tests.conftest import Devnet, large_chain_for

from .adapter_support import AAVE, AAVE_V36, LIQUIDATION_PROTOCOLS, MAX_UINT, Follower, execute, make_adapter

pytestmark = pytest.mark.integration

AAVE_LIQUIDATION = (
    "0x" + keccak(text="LiquidationCall(address,address,address,uint256,uint256,address,bool)").hex()
)
MORPHO_LIQUIDATE = (
    "0x" + keccak(text="Liquidate(bytes32,address,address,uint256,uint256,uint256,uint256,uint256)").hex()
)
TRANSFER = "0x" + keccak(text="Transfer(address,address,uint256)").hex()
DEFICIT_CREATED = "0x" + keccak(text="DeficitCreated(address,address,uint256)").hex()
NEXT_BLOCK_DELAY_S = 12


def _words(data: str) -> list[int]:
    raw = bytes.fromhex(data[2:])
    return [int.from_bytes(raw[i : i + 32], "big") for i in range(0, len(raw), 32)]


def _topic_address(word: str) -> str:
    return to_checksum_address("0x" + word[-40:])


def wait_for_receipt(rpc: Rpc, tx_hash: str) -> dict[str, Any]:
    """Anvil's automine answers eth_sendTransaction before the block exists."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        receipt = rpc.call("eth_getTransactionReceipt", [tx_hash])
        if receipt is not None:
            return dict(receipt)
        time.sleep(0.002)
    raise AssertionError(f"{tx_hash} not mined")


def approve_everything(devnet: Devnet, spender: str) -> None:
    keeper = devnet.summary["keeper_address"]
    tokens = devnet.summary["aave"]["reserves"].values()
    execute(
        devnet,
        [
            Tx(keeper, t, encode_call("approve(address,uint256)", spender, MAX_UINT), "approve")
            for t in tokens
        ],
    )


def observed(protocol: str, receipt: dict[str, Any], quote: LiquidationQuote) -> dict[str, int]:
    """What the contract did, read from the liquidation's own events."""
    logs = receipt["logs"]
    if protocol in AAVE:
        (event,) = [log for log in logs if log["topics"][0] == AAVE_LIQUIDATION]
        debt, seized, *_ = _words(event["data"])
        fees = [
            _words(log["data"])[0]
            for log in logs
            if log["topics"][0] == TRANSFER
            and _topic_address(log["topics"][1]) == quote.user
            and int(log["topics"][2], 16) != 0
            and _topic_address(log["topics"][2]).lower() != receipt["from"].lower()  # not to the liquidator
            and log["address"].lower() != quote.collateral_asset.lower()
        ]
        deficits = [
            (_topic_address(log["topics"][2]), _words(log["data"])[0])
            for log in logs
            if log["topics"][0] == DEFICIT_CREATED
        ]
        return {
            "debt_repaid": debt,
            "collateral_seized": seized,
            "protocol_fee": sum(fees),
            "deficits": deficits,
        }
    (event,) = [log for log in logs if log["topics"][0] == MORPHO_LIQUIDATE]
    repaid_assets, repaid_shares, seized, bad_debt, _ = _words(event["data"])
    return {
        "debt_repaid": repaid_assets,
        "collateral_seized": seized,
        "repaid_shares": repaid_shares,
        "bad_debt": bad_debt,
    }


def predicted(protocol: str, quote: LiquidationQuote, adapter: Any, at: int) -> dict[str, Any]:
    if protocol in AAVE:
        deficits = []
        if protocol == AAVE_V36:  # the deficits the quote's outcome names, in the pool's order
            deficits = [(d.asset, d.amount) for d in _v36_outcome(adapter, quote, at).deficits]
        return {
            "debt_repaid": quote.debt_repaid,
            "collateral_seized": quote.collateral_seized,
            "protocol_fee": quote.protocol_fee,
            "deficits": deficits,
        }
    return {
        "debt_repaid": quote.debt_repaid,
        "collateral_seized": quote.collateral_seized,
        "repaid_shares": quote.repaid_shares,
        "bad_debt": quote.bad_debt,
    }


def _v36_outcome(adapter: AaveV3Adapter, quote: LiquidationQuote, at: int) -> liquidation_v3_6.Outcome:
    pool = adapter.pool_state
    assert pool is not None
    debt_to_cover = MAX_UINT if quote.debt_to_cover is None else quote.debt_to_cover
    return liquidation_v3_6.liquidation_outcome(
        pool,
        reserves_at_v3_6(pool, at),
        adapter.users[quote.user],
        quote.collateral_asset,
        quote.debt_asset,
        debt_to_cover,
        at,
        quote.receive_a_token,
    )


def _predicted_flags(adapter: AaveV3Adapter, quote: LiquidationQuote, at: int) -> tuple[bool, bool]:
    outcome = _v36_outcome(adapter, quote, at)
    return outcome.collateral_flag_cleared, outcome.debt_flag_cleared


def _cleared_flags(rpc: Rpc, pool: str, adapter: AaveV3Adapter, quote: LiquidationQuote) -> tuple[bool, bool]:
    """Whether the liquidation cleared the user's collateral bit and borrowing bit of the pair."""
    state = adapter.pool_state
    assert state is not None
    before = adapter.users[quote.user]
    (after,) = decode_result(
        ["uint256"], rpc.eth_call(pool, encode_call("getUserConfiguration(address)", quote.user))
    )
    collateral_id = state.reserve_by_asset(quote.collateral_asset).id
    debt_id = state.reserve_by_asset(quote.debt_asset).id
    collateral_bit, debt_bit = 1 << (2 * collateral_id + 1), 1 << (2 * debt_id)
    return (
        bool(before.configuration & collateral_bit) and not after & collateral_bit,
        bool(before.configuration & debt_bit) and not after & debt_bit,
    )


def _pairs(adapter: AaveV3Adapter, users: set[str]) -> list[tuple[str, str, str]]:
    state = adapter.pool_state
    assert state is not None
    pairs = []
    for user in sorted(users):
        held = adapter.users[user]
        for c in held.flagged_reserve_ids():
            for d in held.flagged_reserve_ids():
                if held.is_using_as_collateral(c) and held.is_borrowing(d):
                    pairs.append((user, state.reserves[c].asset, state.reserves[d].asset))
    return pairs


def _liquidation_succeeds(rpc: Rpc, keeper: str, pool: str, pair: tuple[str, str, str], at: int) -> bool:
    """``liquidationCall`` of the pair for uint256 max (aTokens), run by the node on the next block."""
    user, collateral, debt = pair
    data = encode_call(
        "liquidationCall(address,address,address,uint256,bool)", collateral, debt, user, MAX_UINT, True
    )
    call = {"from": keeper, "to": pool, "data": "0x" + data.hex()}
    try:
        rpc.call("eth_call", [call, "latest", None, {"time": hex(at)}])
    except Exception:
        return False
    return True


def _assert_the_pool_refuses(
    rpc: Rpc, keeper: str, pool: str, adapter: AaveV3Adapter, users: set[str], at: int
) -> None:
    accepted = [p for p in _pairs(adapter, users) if _liquidation_succeeds(rpc, keeper, pool, p, at)]
    assert not accepted, f"the keeper found no liquidation the pool accepts: {accepted[:3]}"


def _assert_every_case_is_covered(devnet: Devnet, quotes: list[LiquidationQuote]) -> None:
    """The devnet's case borrowers: each v3.3+ rule was on the table."""
    quoted = {q.user for q in quotes}
    for case, users in devnet.summary["aave"]["cases"].items():
        assert (set(users) & quoted) == (set() if case == "grace_period" else set(users)), case
    assert any(q.debt_to_cover is not None for q in quotes), "no quote sized by the dust rule"
    assert sum(q.bad_debt > 0 for q in quotes) >= 3, "too few deficits"


@pytest.mark.parametrize("protocol", LIQUIDATION_PROTOCOLS)
async def test_predicted_liquidations_equal_executed_ones(
    request: pytest.FixtureRequest, protocol: str
) -> None:
    large_chain = large_chain_for(protocol, request)
    rpc = large_chain.rpc
    keeper = large_chain.summary["keeper_address"]
    set_price(rpc, "WETH", move=Decimal("-25"))
    target = (
        large_chain.summary["aave"]["pool"] if protocol in AAVE else large_chain.summary["morpho"]["address"]
    )
    approve_everything(large_chain, target)
    async with HttpRpc(large_chain.summary["rpc_url"]) as arpc:
        follower = Follower(make_adapter(protocol, large_chain), arpc)
        block = await follower.sync()
    at = block.timestamp + NEXT_BLOCK_DELAY_S
    adapter = follower.adapter
    quotes = [q for q in (adapter.quote(k, at) for k in adapter.tracked()) if q is not None]
    liquidatable = [h for h in adapter.health(at) if h.liquidatable]
    assert len(liquidatable) >= 100
    unquoted = {h.user for h in liquidatable} - {q.user for q in quotes}
    if protocol == AAVE_V36:  # a grace period rules some out: the pool must refuse every pair of them
        assert isinstance(adapter, AaveV3Adapter)
        assert len(unquoted) < len(liquidatable) // 10, unquoted
        _assert_the_pool_refuses(rpc, keeper, target, adapter, unquoted, at)
        _assert_every_case_is_covered(large_chain, quotes)
    else:
        assert not unquoted
    differences = []
    for quote in quotes:
        to, data = adapter.liquidation_call(quote)
        snapshot = rpc.call("evm_snapshot")
        try:
            rpc.call("evm_setNextBlockTimestamp", [hex(at)])
            tx_hash = rpc.call(
                "eth_sendTransaction",
                [{"from": keeper, "to": to, "data": "0x" + data.hex(), "gas": hex(3_000_000)}],
            )
            receipt = wait_for_receipt(rpc, tx_hash)
            mined = rpc.call("eth_getBlockByNumber", [receipt["blockNumber"], False])
            assert int(mined["timestamp"], 16) == at, "the quote was made for another timestamp"
            assert mined["transactions"] == [tx_hash], "the liquidation must be alone on the quoted state"
            if int(receipt["status"], 16) != 1:
                differences.append(f"{quote.user}: reverted")
                continue
            expected, actual = predicted(protocol, quote, adapter, at), observed(protocol, receipt, quote)
            if protocol == AAVE_V36:
                assert isinstance(adapter, AaveV3Adapter)
                expected["flags_cleared"] = _predicted_flags(adapter, quote, at)
                actual["flags_cleared"] = _cleared_flags(rpc, target, adapter, quote)
            if expected != actual:
                context = [(log["address"], log["topics"], log["data"]) for log in receipt["logs"]]
                differences.append(f"{quote.user}: predicted {expected} got {actual}; logs {context}")
        finally:
            assert rpc.call("evm_revert", [snapshot]) is True
            # Anvil puts the reverted block's transactions back in its pool: left there, the previous
            # liquidation would be mined ahead of the next one and move the state it was quoted on.
            rpc.call("anvil_dropAllTransactions")
            assert rpc.block_number() == block.number, "a liquidation survived the revert"
    assert not differences, f"{len(differences)} of {len(quotes)} differ, first: {differences[:3]}"
