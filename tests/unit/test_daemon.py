"""The daemon's supervisor on a real event loop with real signals: what stops it, and how it leaves.

The work is a dummy coroutine; everything else (the TaskGroup, the stop timer, the signal handlers)
is the daemon's own.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from keeper.daemon import Shutdown, supervise
from keeper.errors import Halt, KeeperError, Retryable, UsageError


async def forever() -> None:
    await asyncio.Event().wait()


def send_signal_soon(signum: int = signal.SIGTERM, delay_s: float = 0.05) -> None:
    """A real signal to this process, delivered while the supervisor runs."""
    asyncio.get_running_loop().call_later(delay_s, os.kill, os.getpid(), signum)


@pytest.mark.parametrize(
    "error",
    [
        Halt("reorg deeper than the 3 blocks kept in memory; restart to resync"),
        UsageError("chain.chain_id is 1 but the RPC endpoint serves chain 31337"),
        Retryable("every endpoint failed"),
    ],
)
async def test_a_keeper_error_inside_the_group_leaves_alone(error: KeeperError) -> None:
    listener_cancelled = asyncio.Event()

    async def listener() -> None:
        try:
            await forever()
        finally:
            listener_cancelled.set()

    async def work() -> None:
        await asyncio.sleep(0.01)
        raise error

    with pytest.raises(KeeperError) as raised:
        await supervise(work, Shutdown(30.0), listener)
    assert raised.value is error  # the error itself, not an ExceptionGroup around it
    assert raised.value.__suppress_context__  # and nothing chained for a traceback to print
    assert listener_cancelled.is_set()
    assert asyncio.all_tasks() == {asyncio.current_task()}  # nothing left behind


async def test_a_bug_keeps_its_exception_group_and_traceback() -> None:
    async def work() -> None:
        raise ZeroDivisionError

    with pytest.raises(ExceptionGroup) as raised:
        await supervise(work, Shutdown(30.0))
    assert raised.group_contains(ZeroDivisionError)


async def test_the_first_signal_gives_the_work_until_the_grace_deadline() -> None:
    send_signal_soon()
    started = time.monotonic()
    async with asyncio.timeout(5):  # fail, not hang, if nothing stops it
        await supervise(forever, Shutdown(0.5))  # no block ever comes: the timer is what stops it
    assert 0.5 <= time.monotonic() - started < 1.5


async def test_zero_grace_stops_at_the_first_signal() -> None:
    send_signal_soon(signal.SIGINT)
    started = time.monotonic()
    async with asyncio.timeout(5):
        await supervise(forever, Shutdown(0.0))  # keeper sync --follow
    assert time.monotonic() - started < 0.5


async def test_work_that_settles_within_the_grace_returns_by_itself() -> None:
    shutdown = Shutdown(30.0)
    finished: list[str] = []

    async def work() -> None:
        await shutdown.requested.wait()
        await asyncio.sleep(0.1)  # in-flight transactions settling
        finished.append("settled")

    send_signal_soon()
    started = time.monotonic()
    await supervise(work, shutdown)
    assert finished == ["settled"]  # returned, not cancelled
    assert time.monotonic() - started < 5


async def test_a_second_signal_stops_at_once() -> None:
    send_signal_soon(delay_s=0.05)
    send_signal_soon(delay_s=0.2)
    started = time.monotonic()
    async with asyncio.timeout(5):
        await supervise(forever, Shutdown(600.0))
    assert time.monotonic() - started < 2


async def test_work_ending_by_itself_stops_the_listener_and_the_timer() -> None:
    async def work() -> None:
        await asyncio.sleep(0.01)

    await supervise(work, Shutdown(30.0), forever)
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_signal_handlers_are_the_daemons_only_while_it_runs() -> None:
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    seen: list[object] = []

    async def work() -> None:
        seen.append(signal.getsignal(signal.SIGTERM))
        await forever()

    send_signal_soon()
    async with asyncio.timeout(5):
        await supervise(work, Shutdown(0.0))
    assert seen and seen[0] != before[1]  # the loop's handler while running
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == (
        signal.default_int_handler,
        signal.SIG_DFL,
    )
    with pytest.raises(KeyboardInterrupt):  # after it: Ctrl-C behaves as usual again
        signal.raise_signal(signal.SIGINT)
