"""A liquidation that waits is replaced with higher fees on the same nonce; one whose position is no
longer liquidatable is cancelled; the store follows every move and nothing reverts. Real Anvil
mempool (automine off while the transactions wait)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from keeper.app import fee_policy
from keeper.chain.rpc import HttpRpc
from keeper.config import ExecutionConfig, load_config
from keeper.devnet.feeds import set_price
from keeper.engine import Engine
from keeper.execution.executor import Executor
from keeper.execution.nonces import NonceManager
from keeper.execution.signer import Signer
from keeper.obs.metrics import Metrics
from keeper.protocols.registry import build_adapter
from keeper.state.store import Store
from keeper.state.sync import PositionSync, tracked_protocols
from keeper.state.txstate import TxState
from tests.conftest import Devnet

pytestmark = pytest.mark.integration

KEEPER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"


async def test_replace_then_cancel_on_one_nonce(chain: Devnet, tmp_path: Path) -> None:
    rpc_sync, s = chain.rpc, chain.summary
    set_price(rpc_sync, "WETH", move=Decimal("-25"))
    config = load_config(chain.config_path)
    async with HttpRpc(s["rpc_url"]) as rpc:
        with Store.open(tmp_path / "store.sqlite") as store:
            sync = PositionSync(rpc, store, tracked_protocols(config.protocols, build_adapter))
            head = await sync.start()
            signer = Signer.from_key(KEEPER_KEY, config.chain.chain_id)
            nonce = int(await rpc.request("eth_getTransactionCount", [signer.address, "pending"]), 16)
            policy = fee_policy(ExecutionConfig(replace_after_blocks=2, max_gas_cost_share_bps=10_000))
            executor = Executor(rpc, signer.address, policy, 2_000, store, NonceManager(nonce, []), signer)
            engine = Engine(sync, executor, s["aave"]["reserves"]["WETH"], Metrics(CollectorRegistry()))
            opportunity = next(o for o in engine.opportunities(head.timestamp + 1) if o.name == "aave")
            tracked = sync.protocols[0]
            rpc_sync.call("evm_setAutomine", [False])
            try:
                call = tracked.adapter.liquidation_call(opportunity.quote)
                base_fee = int(
                    (await rpc.request("eth_getBlockByNumber", ["latest", False]))["baseFeePerGas"], 16
                )
                (attempt,) = await executor.attempt_all([(opportunity, call)], head.number, base_fee)
                assert attempt.outcome == "sent", attempt.reason
                (original,) = store.in_flight()

                await executor.track(head.number + 1, base_fee, lambda tx: True)  # too early to replace
                assert [tx.tx_hash for tx in store.in_flight()] == [original.tx_hash]

                await executor.track(head.number + 2, base_fee, lambda tx: True)
                (replacement,) = store.in_flight()
                assert replacement.nonce == original.nonce and replacement.tx_hash != original.tx_hash
                assert replacement.max_fee_per_gas * 8 >= original.max_fee_per_gas * 9
                assert replacement.max_priority_fee_per_gas * 8 >= original.max_priority_fee_per_gas * 9

                await executor.track(head.number + 3, base_fee, lambda tx: False)  # someone else won
                (cancel,) = store.in_flight()
                assert cancel.note == "cancel" and cancel.nonce == original.nonce
                pool = rpc_sync.call("txpool_content")["pending"]
                # txpool_content keys nonces in decimal
                queued = {int(n): tx["hash"] for sender in pool.values() for n, tx in sender.items()}
                assert queued[original.nonce] == cancel.tx_hash  # the node holds only the newest

                rpc_sync.call("evm_mine")
                mined = int((await rpc.request("eth_getBlockByNumber", ["latest", False]))["number"], 16)
                settled = await executor.track(mined, base_fee, lambda tx: False)
            finally:
                rpc_sync.call("evm_setAutomine", [True])
            assert [tx.tx_hash for tx in settled] == [cancel.tx_hash]
            states = {tx.tx_hash: tx.state for tx in store.transactions()}
            assert states == {
                original.tx_hash: TxState.DROPPED,
                replacement.tx_hash: TxState.DROPPED,
                cancel.tx_hash: TxState.MINED,
            }
            assert store.in_flight() == []
            assert executor.settled["reverted"] == 0 and executor.settled["mined"] == 0
            assert executor.nonces is not None and executor.nonces.holder(original.position) is None


async def test_a_replaced_liquidation_that_is_mined_settles_its_nonce(chain: Devnet, tmp_path: Path) -> None:
    """The original is included while its fee bump is being sent (the node then refuses the bump,
    "nonce too low"): the receipt of the replaced transaction settles the nonce; the bump is dropped,
    never left pending to be bumped and cancelled for a nonce already used."""
    rpc_sync, s = chain.rpc, chain.summary
    set_price(rpc_sync, "WETH", move=Decimal("-25"))
    config = load_config(chain.config_path)
    async with HttpRpc(s["rpc_url"]) as rpc:
        with Store.open(tmp_path / "store.sqlite") as store:
            sync = PositionSync(rpc, store, tracked_protocols(config.protocols, build_adapter))
            head = await sync.start()
            signer = Signer.from_key(KEEPER_KEY, config.chain.chain_id)
            nonce = int(await rpc.request("eth_getTransactionCount", [signer.address, "pending"]), 16)
            policy = fee_policy(ExecutionConfig(replace_after_blocks=1, max_gas_cost_share_bps=10_000))
            executor = Executor(rpc, signer.address, policy, 2_000, store, NonceManager(nonce, []), signer)
            engine = Engine(sync, executor, s["aave"]["reserves"]["WETH"], Metrics(CollectorRegistry()))
            opportunity = next(o for o in engine.opportunities(head.timestamp + 1) if o.name == "aave")
            base_fee = int(
                (await rpc.request("eth_getBlockByNumber", ["latest", False]))["baseFeePerGas"], 16
            )
            rpc_sync.call("evm_setAutomine", [False])
            try:
                call = sync.protocols[0].adapter.liquidation_call(opportunity.quote)
                (attempt,) = await executor.attempt_all([(opportunity, call)], head.number, base_fee)
                assert attempt.outcome == "sent", attempt.reason
                (original,) = store.in_flight()
                await executor.track(head.number + 1, base_fee, lambda tx: True)
                (bump,) = store.in_flight()
                assert bump.note == "fee bump" and bump.nonce == original.nonce
                # the node mines the original instead of its bump
                assert rpc_sync.call("anvil_dropTransaction", [bump.tx_hash]) == bump.tx_hash
                rpc_sync.call("eth_sendRawTransaction", [original.raw_tx])
                rpc_sync.call("evm_mine")
                mined = int((await rpc.request("eth_getBlockByNumber", ["latest", False]))["number"], 16)
                settled = await executor.track(mined, base_fee, lambda tx: True)
            finally:
                rpc_sync.call("evm_setAutomine", [True])
            assert [tx.tx_hash for tx in settled] == [original.tx_hash]
            states = {tx.tx_hash: tx.state for tx in store.transactions()}
            assert states == {original.tx_hash: TxState.MINED, bump.tx_hash: TxState.DROPPED}
            assert store.in_flight() == [] and executor.settled["mined"] == 1


async def test_a_restart_rebroadcasts_what_was_in_flight_and_settles_it(
    chain: Devnet, tmp_path: Path
) -> None:
    rpc_sync, s = chain.rpc, chain.summary
    set_price(rpc_sync, "WETH", move=Decimal("-25"))
    config = load_config(chain.config_path)
    signer = Signer.from_key(KEEPER_KEY, config.chain.chain_id)
    policy = fee_policy(ExecutionConfig(max_gas_cost_share_bps=10_000))
    rpc_sync.call("evm_setAutomine", [False])
    try:
        async with HttpRpc(s["rpc_url"]) as rpc:
            with Store.open(tmp_path / "store.sqlite") as store:  # the keeper before the crash
                sync = PositionSync(rpc, store, tracked_protocols(config.protocols, build_adapter))
                head = await sync.start()
                nonce = int(await rpc.request("eth_getTransactionCount", [signer.address, "pending"]), 16)
                executor = Executor(
                    rpc, signer.address, policy, 2_000, store, NonceManager(nonce, []), signer
                )
                engine = Engine(sync, executor, s["aave"]["reserves"]["WETH"], Metrics(CollectorRegistry()))
                opportunity = next(o for o in engine.opportunities(head.timestamp + 1) if o.name == "aave")
                call = sync.protocols[0].adapter.liquidation_call(opportunity.quote)
                (attempt,) = await executor.attempt_all([(opportunity, call)], head.number, 10**9)
                assert attempt.outcome == "sent"
            rpc_sync.call("anvil_dropAllTransactions")  # the node forgot it while the keeper was down
            assert rpc_sync.call("txpool_status")["pending"] == "0x0"

            with Store.open(tmp_path / "store.sqlite") as store:  # the keeper after the restart
                (in_flight,) = store.in_flight()
                chain_nonce = int(
                    await rpc.request("eth_getTransactionCount", [signer.address, "pending"]), 16
                )
                nonces = NonceManager(chain_nonce, store.in_flight())
                assert nonces.next_nonce == in_flight.nonce + 1  # the chain alone would reuse it
                restarted = Executor(rpc, signer.address, policy, 2_000, store, nonces, signer)
                await restarted.rebroadcast()
                rpc_sync.call("evm_mine")
                mined = int((await rpc.request("eth_getBlockByNumber", ["latest", False]))["number"], 16)
                settled = await restarted.track(mined, 10**9, lambda tx: True)
                assert [tx.tx_hash for tx in settled] == [attempt.tx_hash]
                assert store.in_flight() == [] and restarted.settled["mined"] == 1
    finally:
        rpc_sync.call("evm_setAutomine", [True])
