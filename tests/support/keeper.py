"""The keeper as a subprocess: one command run to completion, or a long-running one whose JSON log
lines are collected as they come."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

KEEPER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
"""Anvil's public dev key #1: the devnet's keeper account."""

Event = dict[str, Any]


def run_keeper(
    *args: str, env: dict[str, str] | None = None, timeout_s: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "keeper", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=env,
        check=False,
    )


def named(name: str) -> Callable[[Event], bool]:
    """``wait_for`` predicate: the first event called ``name``."""
    return lambda event: event.get("event") == name


class LoggedProcess:
    """A subprocess whose JSON lines on one stream (``json_on``) are collected by a thread.

    With JSON on stdout the child's stderr is inherited, so a crash stays visible."""

    def __init__(
        self,
        args: Sequence[str],
        env: dict[str, str],
        json_on: Literal["stdout", "stderr"] = "stderr",
        log_path: Path | None = None,
    ) -> None:
        """``log_path``: every line is also written there as it comes (kept with the test's files)."""
        self.proc = subprocess.Popen(
            list(args),
            stdout=subprocess.PIPE if json_on == "stdout" else subprocess.DEVNULL,
            stderr=subprocess.PIPE if json_on == "stderr" else None,
            text=True,
            env=env,
        )
        self.label = " ".join(list(args)[2:4])
        """What ran, for messages: ``keeper run``, ``bench.baseline.poller --rpc``."""
        self.stream = self.proc.stdout if json_on == "stdout" else self.proc.stderr
        self.events: list[Event] = []
        self.lines: list[str] = []
        self.log_path = log_path
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.stream is not None
        log = open(self.log_path, "a", encoding="utf-8") if self.log_path else None  # noqa: SIM115
        for line in self.stream:
            self.lines.append(line)
            if log is not None:
                log.write(line)
                log.flush()
            if line.startswith("{"):
                self.events.append(json.loads(line))
        if log is not None:
            log.close()

    def wait_for(self, predicate: Callable[[Event], bool], timeout_s: float = 60) -> Event:
        """The first event (since start) that satisfies ``predicate``, waiting for it if need be."""
        deadline = time.monotonic() + timeout_s
        seen = 0
        while time.monotonic() < deadline:
            for event in self.events[seen:]:
                if predicate(event):
                    return event
            seen = len(self.events)
            if self.proc.poll() is not None and seen == len(self.events):
                break
            time.sleep(0.05)
        raise AssertionError(f"{self.label} never logged the awaited event; last lines: {self.lines[-5:]}")

    def named(self, name: str) -> list[Event]:
        return [e for e in self.events if e.get("event") == name]

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 60) -> int:
        """Send ``sig``, then wait for the exit code (SIGKILL after ``timeout_s``: then -9)."""
        self.proc.send_signal(sig)
        try:
            return self.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.proc.returncode

    def wait(self, timeout_s: float = 60) -> int:
        code = self.proc.wait(timeout=timeout_s)
        self._reader.join(timeout=10)
        assert self.stream is not None
        self.stream.close()
        return code

    def kill(self) -> None:
        """Leftover after a failure: SIGKILL and reap."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        if self.stream is not None and not self.stream.closed:
            self._reader.join(timeout=5)
            self.stream.close()


RUNNING: list[KeeperProcess] = []
"""Every keeper started, so a failed test cannot leave one running into the next (see tests/e2e/conftest)."""


class KeeperProcess(LoggedProcess):
    """`keeper run --config config` signing with ``key``; its JSON log events are on stderr."""

    def __init__(self, config: Path, key: str = KEEPER_KEY, *args: str) -> None:
        super().__init__(
            [sys.executable, "-m", "keeper", "run", "--config", str(config), *args],
            dict(os.environ, KEEPER_PRIVATE_KEY=key),
            log_path=config.with_name("keeper.log"),
        )
        RUNNING.append(self)
