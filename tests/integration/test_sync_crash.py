"""kill -9 in the middle of a backfill and in the middle of live following: a restart resumes from the
store's cursor (no rescan from start_block) and ends with the same book as a fresh resync."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from keeper.chain.rpc import HttpRpc
from keeper.state.store import Store
from tests.conftest import Devnet
from tests.support.config import variant

from .adapter_support import execute
from .sync_support import book, fresh_book, new_sync
from .test_sync import fresh_account, open_aave_position, open_morpho_position

pytestmark = pytest.mark.integration

PROGRESS = re.compile(r"backfill: ([\d,]+)/([\d,]+) blocks")


def config_with_store(devnet: Devnet, store: Path) -> Path:
    return variant(devnet, store.with_suffix(".toml"), {"store": {"path": str(store)}})


def keeper_sync(config: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "keeper", "sync", "--config", str(config), *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )


def read_until(
    proc: subprocess.Popen[str], pattern: re.Pattern[str], count: int = 1, timeout_s: float = 60
) -> list[str]:
    assert proc.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if sum(bool(pattern.search(seen)) for seen in lines) >= count:
            return lines
    raise AssertionError(f"never saw {pattern.pattern!r} {count}x; got {lines[-5:]}")


def kill_9(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    assert proc.stderr is not None
    proc.stderr.close()


async def warm_book(devnet: Devnet, store_path: Path) -> tuple[object, int]:
    async with HttpRpc(devnet.summary["rpc_url"]) as rpc:
        with Store.open(store_path) as store:
            sync = new_sync(devnet, rpc, store)
            await sync.start()
            return book(sync), sync.events_backfilled


async def test_kill_9_during_backfill_then_resume(chain: Devnet, tmp_path: Path) -> None:
    chain.rpc.call("anvil_mine", [hex(1_500)])  # a long chain, scanned one block per request
    store_path = tmp_path / "store.sqlite"
    config = config_with_store(chain, store_path)
    proc = keeper_sync(config, "--max-log-span", "1")
    lines = read_until(proc, PROGRESS, count=2)
    kill_9(proc)
    done, total = (int(v.replace(",", "")) for v in PROGRESS.findall("".join(lines))[-1])
    assert 0 < done < total, "the kill must land inside the backfill"
    with Store.open(store_path) as store:
        cursors = [store.cursor(name) for name in ("aave", "morpho")]
    head = chain.rpc.block_number()
    assert any(c is None or c.number < head for c in cursors), "the kill must land inside the backfill"

    resumed = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "keeper", "sync", "--config", str(config), "--max-log-span", "1000"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr
    first = PROGRESS.search(resumed.stderr)
    assert first is not None and int(first.group(2).replace(",", "")) < total  # resumed, not rescanned
    warm, _ = await warm_book(chain, store_path)
    assert warm == await fresh_book(chain, tmp_path / "fresh.sqlite")


async def test_kill_9_while_following_then_resume(chain: Devnet, tmp_path: Path) -> None:
    store_path = tmp_path / "store.sqlite"
    config = config_with_store(chain, store_path)
    proc = keeper_sync(config, "--follow")
    read_until(proc, re.compile(r"synced to block"))
    open_aave_position(chain, fresh_account("crash-aave-1"))
    read_until(proc, re.compile(r"touched aave 1"))
    open_morpho_position(chain, fresh_account("crash-morpho-1"))
    kill_9(proc)
    with Store.open(store_path) as store:
        cursor_at_kill = store.cursor("aave")
    open_aave_position(chain, fresh_account("crash-aave-2"))  # while the keeper is down
    execute(chain, [])
    assert cursor_at_kill is not None and cursor_at_kill.number < chain.rpc.block_number()

    warm, events = await warm_book(chain, store_path)
    assert events < 100, "a warm restart scans only the blocks after the cursor"
    assert warm == await fresh_book(chain, tmp_path / "fresh.sqlite")
