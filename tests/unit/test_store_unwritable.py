"""A store that cannot write: `StoreUnwritable`, nothing kept, nothing sent, no nonce lost.

SQLite's own ``PRAGMA query_only`` makes the store's connection refuse every write, as root too
(the fault suite, tests/faults/test_store_faults.py, does it to a running keeper with a file-size
limit); the executor's part is checked against the fake node of test_executor_decisions.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from keeper.chain.types import BlockRef
from keeper.protocols.base import PositionKey
from keeper.state.store import Store, StoreUnwritable

from .test_executor_decisions import USERS, attempt, calldata, executor, funded, item

BLOCK = BlockRef(10, "0x" + "ab" * 32, 1_700_000_000)
KEY = PositionKey("0x" + "00" * 20, "0x" + "11" * 20)


def refusing(store: Store, refuse: bool) -> None:
    store._conn.execute(f"PRAGMA query_only = {'ON' if refuse else 'OFF'}")


def test_a_refused_write_raises_store_unwritable_and_keeps_nothing(tmp_path: Path) -> None:
    with Store.open(tmp_path / "keeper.sqlite") as store:
        refusing(store, True)
        with pytest.raises(StoreUnwritable, match="cannot write: attempt to write a readonly database"):
            store.apply_block("aave", BLOCK, "0x" + "aa" * 32, [KEY])
        assert store.cursor("aave") is None and store.positions("aave") == []
        refusing(store, False)
        store.apply_block("aave", BLOCK, "0x" + "aa" * 32, [KEY])
        store.apply_block("aave", BLOCK, "0x" + "aa" * 32, [KEY])  # the retry of a block already in
        assert store.positions("aave") == [KEY] and store.cursor("aave") is not None


async def test_what_cannot_be_recorded_is_not_sent_and_its_nonces_go_back(tmp_path: Path) -> None:
    with Store.open(tmp_path / "keeper.sqlite") as store:
        node = funded()
        ex = executor(node, store)
        refusing(store, True)
        with pytest.raises(StoreUnwritable):
            await attempt(ex, item(USERS[0], 2 * 10**18), item(USERS[1], 10**18))
        assert node.raw_sent == []
        refusing(store, False)
        attempts = await attempt(ex, item(USERS[0], 2 * 10**18), block=101)
        assert [a.outcome for a in attempts] == ["sent"]
        assert node.sent_nonces() == [(5, calldata(USERS[0]))]  # the nonce the refused wave had: no gap
