"""`keeper.fork.report`: the fork run's rows from sent transactions and receipts, no chain needed."""

from __future__ import annotations

from typing import Any

import pytest

from keeper.fork.report import TRANSFER, estimate_from_limit, report_json, rows, token_flows, valued_wei
from keeper.risk.opportunity import TokenPrice
from keeper.state.txstate import SentTx, TxState

KEEPER = "0x" + "11" * 20
BENEFICIARY = "0x" + "22" * 20
POOL = "0x" + "33" * 20
WETH = "0x" + "aa" * 20
USDC = "0x" + "bb" * 20
A_TOKEN = "0x" + "cc" * 20
BOOK = {WETH: TokenPrice(2_000 * 10**8, 18), USDC: TokenPrice(10**8, 6)}


def transfer(token: str, sender: str, to: str, value: int) -> dict[str, Any]:
    word = lambda a: "0x" + "0" * 24 + a[2:]  # noqa: E731
    return {
        "address": token,
        "topics": [TRANSFER.topic, word(sender), word(to)],
        "data": "0x" + value.to_bytes(32, "big").hex(),
    }


def receipt(
    logs: list[dict[str, Any]], status: int = 1, gas: int = 200_000, price: int = 10**9
) -> dict[str, Any]:
    return {
        "status": hex(status),
        "gasUsed": hex(gas),
        "effectiveGasPrice": hex(price),
        "blockNumber": "0x10",
        "logs": logs,
    }


def sent(nonce: int, tx_hash: str, note: str | None = None, state: TxState = TxState.PENDING) -> SentTx:
    return SentTx(
        nonce, tx_hash, "aave", "m", "u", "0x", 2, 1, 240_000, 5 * 10**15, 9, state=state, note=note
    )


@pytest.mark.parametrize("estimate", [1, 21_000, 199_999, 263_000, 700_000, 16_777_216])
@pytest.mark.parametrize("margin_bps", [0, 1, 2_000, 3_333, 10_000])
def test_the_estimate_is_recovered_exactly_from_the_gas_limit(estimate: int, margin_bps: int) -> None:
    assert estimate_from_limit(estimate * (10_000 + margin_bps) // 10_000, margin_bps) == estimate


def test_flows_count_what_the_keepers_accounts_gain_and_pay() -> None:
    logs = [
        transfer(USDC, KEEPER, POOL, 1_000 * 10**6),  # debt repaid
        transfer(WETH, POOL, KEEPER, 10**18),  # collateral seized
        transfer(WETH, KEEPER, BENEFICIARY, 10**17),  # between the keeper's own accounts: nothing
        transfer(WETH, POOL, "0x" + "44" * 20, 5 * 10**18),  # someone else's
        {"address": WETH, "topics": ["0x" + "00" * 32], "data": "0x"},  # not a Transfer
        {**transfer(WETH, POOL, KEEPER, 1), "data": "0x01"},  # a malformed one: not counted
    ]
    assert token_flows(logs, [KEEPER, BENEFICIARY]) == {USDC: -1_000 * 10**6, WETH: 10**18}


def test_flows_are_valued_with_the_first_book_pricing_the_token_and_the_native_one() -> None:
    flows = {USDC: -1_000 * 10**6, WETH: 10**18}
    assert valued_wei(flows, [{}, BOOK], WETH) == 10**18 - 10**18 // 2
    assert valued_wei({A_TOKEN: 1}, [BOOK], WETH) is None  # no price: unknown, not guessed


def test_a_nonce_is_reported_by_the_transaction_the_chain_mined() -> None:
    """The original of a fee bump was mined while the bump was refused: the receipt decides."""
    txs = [
        sent(1, "0x01", state=TxState.REPLACED),
        sent(1, "0x02", note="fee bump"),
        sent(2, "0x03", state=TxState.REPLACED),
        sent(2, "0x04", note="cancel", state=TxState.MINED),
        sent(3, "0x05"),
    ]
    landed = {
        "0x01": receipt(
            [transfer(USDC, KEEPER, POOL, 1_000 * 10**6), transfer(WETH, POOL, KEEPER, 6 * 10**17)]
        ),
        "0x04": receipt([], gas=21_000),
    }
    found = rows(txs, landed, [KEEPER], [BOOK], WETH, 2_000)
    assert [(r.tx.tx_hash, r.state) for r in found] == [("0x01", "mined"), ("0x05", "pending")]
    mined = found[0]
    assert mined.predicted_gas == 200_000 and mined.gas_paid_wei == 200_000 * 10**9
    assert mined.realized_net_wei == 10**17 - 200_000 * 10**9
    report = report_json(found, txs, landed, {"chain_id": 1})
    assert report["totals"] | {"predicted_gas": 0} == {
        "liquidations": 2,
        "mined": 1,
        "reverted": 0,
        "unsettled": 1,
        "realized_rows": 1,
        "predicted_net_profit_wei": str(5 * 10**15),
        "realized_net_profit_wei": str(10**17 - 200_000 * 10**9),
        "predicted_gas": 0,
        "gas_used": 200_000,
        "gas_paid_wei": str(200_000 * 10**9),
        "other_gas_paid_wei": str(21_000 * 10**9),
    }
    assert report["liquidations"][0]["profit_error_wei"] == str(10**17 - 200_000 * 10**9 - 5 * 10**15)
    assert report["liquidations"][1]["realized_net_profit_wei"] is None


def test_a_reverted_liquidation_costs_its_gas() -> None:
    found = rows([sent(7, "0x07")], {"0x07": receipt([], status=0, gas=50_000)}, [KEEPER], [BOOK], WETH, 0)
    assert found[0].state == "reverted" and found[0].realized_net_wei == -50_000 * 10**9
