"""What the fault cases share: a flash keeper on the 1-second devnet that can be killed and started
again (its events kept across processes), a stalled base fee, and waiting for the keeper to settle."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from eth_account import Account
from eth_utils.crypto import keccak

from keeper.config import load_config
from keeper.devnet.feeds import set_price
from tests.e2e.test_keeper_flash import BENEFICIARY
from tests.support.config import changed, keeper_config, write_config
from tests.support.devnet import Devnet
from tests.support.keeper import Event, KeeperProcess, run_keeper

from .invariants import Run, in_node_pool

FAULT_KEY = "0x" + keccak(text="keeper fault suite").hex()
"""An ETH-only account of the fault suite's own: the flash keeper signs with it."""
STALL_BASE_FEE_WEI = 3 * 10**9
"""At least this base fee in a stall: above what the keeper bid at the devnet's near-zero one, so
what it sent waits in the pool (replaced after two blocks, or cancelled) until the fee decays."""
FREEZE_BASE_FEE_WEI = 200 * 10**9
"""A base fee at which no liquidation pays for a fee bump (2.25x is most of the keeper's 500 gwei
cap): its waiting bids stay where they are, while a cancel, which has no profit to protect, still
gets in. A case moves the price back under it, so no waiting liquidation can land after the move."""
NORMAL_BASE_FEE_WEI = 10
"""Where a case puts the base fee back after a stall (the seeded devnet idles near zero)."""


def deploy_executor(devnet: Devnet, key: str = FAULT_KEY) -> str:
    import json

    env = {**os.environ, "KEEPER_PRIVATE_KEY": key}
    config = str(devnet.config_path)
    proc = run_keeper("executor", "deploy", "--config", config, "--beneficiary", BENEFICIARY, env=env)
    assert proc.returncode == 0, proc.stderr
    return str(json.loads(proc.stdout)["executor"])


@contextmanager
def reverted(devnet: Devnet) -> Iterator[None]:
    """Snapshot around a case; after it the chain is back, its pool empty and mining every second."""
    rpc = devnet.rpc
    snapshot = rpc.call("evm_snapshot")
    try:
        yield
    finally:
        rpc.call("evm_setIntervalMining", [1])
        assert rpc.call("evm_revert", [snapshot]) is True
        rpc.call("anvil_dropAllTransactions")
        stall(devnet, NORMAL_BASE_FEE_WEI)  # a stall's base fee is not part of the snapshot


@dataclass
class Keeper:
    """`keeper run` that a case kills and starts again; every process's events are kept in order."""

    config: Path
    key: str = FAULT_KEY
    events: list[Event] = field(default_factory=list)
    process: KeeperProcess | None = None
    starts: int = 0

    @property
    def address(self) -> str:
        return str(Account.from_key(self.key).address)

    def start(self) -> Event:
        """A new process; returns its ``keeper_ready`` event."""
        assert self.process is None, "still running"
        self.process = KeeperProcess(self.config, self.key)
        self.starts += 1
        return self.process.wait_for(lambda e: e.get("event") == "keeper_ready", timeout_s=60)

    def wait_for(self, predicate: Callable[[Event], bool], timeout_s: float = 30) -> Event:
        assert self.process is not None
        return self.process.wait_for(predicate, timeout_s)

    def last_lines(self, count: int = 6) -> list[str]:
        return self.process.lines[-count:] if self.process is not None else []

    def new_events(self) -> list[Event]:
        assert self.process is not None
        return self.process.events

    def kill(self) -> list[Event]:
        """SIGKILL; returns the events the dead process logged (all of them: it cannot log after)."""
        assert self.process is not None
        process, self.process = self.process, None
        process.proc.send_signal(signal.SIGKILL)
        assert process.wait(timeout_s=10) == -signal.SIGKILL
        self.events += process.events
        return process.events

    def stop(self) -> None:
        """SIGTERM: the keeper settles what is in flight, then exits 0."""
        assert self.process is not None
        process, self.process = self.process, None
        code = process.stop()
        self.events += process.events
        assert code == 0, process.lines[-5:]


def flash_keeper(devnet: Devnet, directory: Path) -> Keeper:
    """A live flash keeper for ``devnet``: the fault account funded with ETH only, its own executor."""
    devnet.rpc.call("anvil_setBalance", [Account.from_key(FAULT_KEY).address, hex(100 * 10**18)])
    return Keeper(flash_config(devnet, directory, deploy_executor(devnet)))


GUARD = {
    "max_gas_per_hour_wei": 10**20,
    "max_gas_per_day_wei": 10**20,
    "max_loss_per_hour_wei": 10**20,
    "max_loss_per_day_wei": 10**20,
}
"""The spend guard sized to these cases: a frozen 200 gwei base fee makes each cancel cost ~0.01
ETH, so the devnet defaults (0.2 ETH of loss an hour) would trip mid-case; the guard's own tests
trip each cap (tests/faults/test_spend_guard.py). The revert cap stays: no case may revert."""


def flash_config(devnet: Devnet, directory: Path, executor: str) -> Path:
    """A live flash config for ``devnet`` and ``executor``, its store in ``directory``."""
    path = keeper_config(devnet, directory, "live", strategy="flash", executor=executor)
    return write_config(changed(load_config(path, {}), {"guard": GUARD}), path)


def base_fee(devnet: Devnet) -> int:
    return int(devnet.rpc.call("eth_getBlockByNumber", ["latest", False])["baseFeePerGas"], 16)


def stall(devnet: Devnet, base_fee_wei: int | None = None) -> None:
    """The next block's base fee jumps (to ``base_fee_wei``, else 5x, at least 3 gwei): what the
    keeper bid at the current one (2.25x + 1 gwei tip) waits in the pool."""
    fee = base_fee_wei if base_fee_wei is not None else max(5 * base_fee(devnet), STALL_BASE_FEE_WEI)
    devnet.rpc.call("anvil_setNextBlockBaseFeePerGas", [hex(fee)])


def bounce(devnet: Devnet, keeper: Keeper, symbol: str, percent: Decimal) -> None:
    """Move ``symbol`` by ``percent`` in a block whose base fee is frozen high: none of the keeper's
    waiting bids can be mined with or after the move (mining is off until that block is mined, so
    the keeper cannot bid at the frozen fee first)."""
    rpc = devnet.rpc
    rpc.call("evm_setIntervalMining", [0])
    try:
        _freeze(devnet)  # the price mover's transactions bid above it
        miner = threading.Thread(target=_mine_when_sent, args=(devnet, keeper.address), daemon=True)
        miner.start()
        moved = set_price(rpc, symbol, move=percent)  # returns once the miner has mined its block
        miner.join(timeout=10)
    finally:
        rpc.call("evm_setIntervalMining", [1])
    header = rpc.call("eth_getBlockByNumber", [hex(moved.block), False])
    assert int(header["baseFeePerGas"], 16) == FREEZE_BASE_FEE_WEI, (
        f"the price came back in block {moved.block} at base fee {int(header['baseFeePerGas'], 16)}:"
        " the keeper's waiting bids could be mined after it"
    )


def _freeze(devnet: Devnet, settle_s: float = 0.1) -> None:
    """With mining paused: the next block's base fee at `FREEZE_BASE_FEE_WEI`, and still there once
    no block is being mined (an interval block mined as mining was paused overwrites the setting
    when it is stored); checked with ``eth_feeHistory``, whose last base fee is the next block's."""
    rpc = devnet.rpc
    for attempt in range(20):
        number = rpc.block_number()
        stall(devnet, FREEZE_BASE_FEE_WEI)
        time.sleep(settle_s)
        upcoming = int(rpc.call("eth_feeHistory", [1, "latest", []])["baseFeePerGas"][-1], 16)
        if rpc.block_number() == number and upcoming == FREEZE_BASE_FEE_WEI:
            if attempt:
                print(f"base fee freeze held at attempt {attempt + 1}")
            return
    raise AssertionError("the next block's base fee did not stay frozen with mining paused")


def _mine_when_sent(devnet: Devnet, keeper: str, timeout_s: float = 30) -> None:
    """Mine one block once someone other than ``keeper`` has transactions in the pool."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pending = devnet.rpc.call("txpool_content").get("pending") or {}
        if any(sender.lower() != keeper.lower() for sender in pending):
            time.sleep(0.3)  # the price update and its arbitrage swaps leave in one batch
            devnet.rpc.call("evm_mine")
            return
        time.sleep(0.02)


def account_settled(devnet: Devnet, account: str) -> bool:
    """Nothing of ``account``'s in the node's pool, queued behind a gap included."""
    latest, pending, pooled = in_node_pool(devnet, account)
    return latest == pending and not pooled


def wait_event(
    keeper: Keeper, predicate: Callable[[Event], bool], after: int, timeout_s: float
) -> int | None:
    """Index of the first event past ``after`` of the running process that satisfies ``predicate``,
    polled every millisecond (a kill timed from it lands where meant); None on timeout or exit."""
    assert keeper.process is not None
    deadline = time.monotonic() + timeout_s
    seen = after
    while time.monotonic() < deadline:
        events = keeper.process.events
        for index in range(seen, len(events)):
            if predicate(events[index]):
                return index
        seen = len(events)
        if keeper.process.proc.poll() is not None:
            return None
        time.sleep(0.001)
    return None


BUSY = ("liquidation_sent", "liquidation_replaced", "liquidation_cancelled", "transactions_persisted")


def wait_settled(devnet: Devnet, keeper: Keeper, timeout_s: float = 40, quiet_blocks: int = 2) -> None:
    """Until the keeper has sent nothing for ``quiet_blocks`` handled blocks and the account has
    nothing in the pool: what was liquidatable is done, what waited is mined or cancelled."""
    deadline = time.monotonic() + timeout_s
    seen, quiet = len(keeper.new_events()), 0
    while time.monotonic() < deadline:
        index = wait_event(keeper, lambda e: e.get("event") == "block_handled", seen, 10)
        assert index is not None, f"the keeper stopped handling blocks: {keeper.last_lines()}"
        fresh, seen = keeper.new_events()[seen : index + 1], index + 1
        busy = any(e.get("event") in BUSY for e in fresh)
        quiet = 0 if busy or not account_settled(devnet, keeper.address) else quiet + 1
        if quiet >= quiet_blocks:
            return
    raise AssertionError(f"the keeper never settled: {diagnosis(devnet, keeper)}")


def diagnosis(devnet: Devnet, keeper: Keeper) -> str:
    """The account's nonces, the store's lowest pending ones and whether the node knows them."""
    from keeper.state.store import Store

    latest, pending = devnet.rpc.batch(
        [
            ("eth_getTransactionCount", [keeper.address, "latest"]),
            ("eth_getTransactionCount", [keeper.address, "pending"]),
        ]
    )
    with Store.open(keeper.config.parent / "store.sqlite") as store:
        waiting = store.in_flight()[:4]
        gap = [
            (t.tx_hash[:10], t.state.value, t.note, t.mined_block)
            for t in store.nonce_records(int(latest, 16))
        ]
    about = [
        {k: e.get(k) for k in ("event", "tx", "old", "error", "block")}
        for e in keeper.events + keeper.new_events()
        if e.get("nonce") == int(latest, 16) or int(latest, 16) in (e.get("nonces") or [])
    ]
    known = [devnet.rpc.call("eth_getTransactionByHash", [t.tx_hash]) is not None for t in waiting]
    lowest = [(t.nonce, t.note, k) for t, k in zip(waiting, known, strict=True)]
    block = devnet.rpc.call("eth_getBlockByNumber", ["latest", False])
    return (
        f"nonce latest {int(latest, 16)} pending {int(pending, 16)}; store's lowest pending {lowest};"
        f" base fee {int(block['baseFeePerGas'], 16)}; records at {int(latest, 16)}: {gap}; events {about}"
    )


def run_of(devnet: Devnet, keeper: Keeper, first_block: int, by_hand: set[str] | None = None) -> Run:
    return Run(
        devnet,
        keeper.address,
        Path(str(keeper.config.parent / "store.sqlite")),
        first_block,
        keeper.events,
        by_hand or set(),
    )
