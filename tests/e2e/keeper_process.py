"""Run `keeper run` as a subprocess against a devnet and collect its JSON log events."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import Devnet, free_port

KEEPER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
"""Anvil's public dev key #1: the devnet's keeper account."""

Event = dict[str, Any]


def keeper_config(devnet: Devnet, directory: Path, mode: str, **execution: str) -> Path:
    """The devnet's config with its own store and the given execution mode (and extra execution keys)."""
    text = devnet.config_path.read_text()
    text = re.sub(r'(?m)^path = ".*"$', f'path = "{directory / "store.sqlite"}"', text)
    text = re.sub(r'(?m)^mode = ".*"$', f'mode = "{mode}"', text)
    text = re.sub(r'(?m)^listen = ".*"$', f'listen = "127.0.0.1:{free_port()}"', text)  # never a fixed port
    for key, value in execution.items():
        text = text.replace("[execution]\n", f"[execution]\n{key} = {value}\n", 1)
    path = directory / "keeper.toml"
    path.write_text(text)
    return path


RUNNING: list[KeeperProcess] = []
"""Every keeper started, so a failed test cannot leave one running into the next (see conftest)."""


class KeeperProcess:
    def __init__(self, config: Path, key: str = KEEPER_KEY, *args: str) -> None:
        env = dict(os.environ, KEEPER_PRIVATE_KEY=key)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "keeper", "run", "--config", str(config), *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.events: list[Event] = []
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        RUNNING.append(self)

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            if line.startswith("{"):
                self.events.append(json.loads(line))

    def wait_for(self, predicate: Callable[[Event], bool], timeout_s: float = 60) -> Event:
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
        raise AssertionError(f"keeper never logged the awaited event; last lines: {self.lines[-5:]}")

    def stop(self) -> int:
        """SIGTERM, then wait for the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        return self.wait()

    def wait(self, timeout_s: float = 60) -> int:
        code = self.proc.wait(timeout=timeout_s)
        self._reader.join(timeout=10)
        assert self.proc.stderr is not None
        self.proc.stderr.close()
        return code

    def kill(self) -> None:
        """Leftover after a failure: SIGKILL and reap."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        if self.proc.stderr is not None and not self.proc.stderr.closed:
            self._reader.join(timeout=5)
            self.proc.stderr.close()

    def named(self, name: str) -> list[Event]:
        return [e for e in self.events if e.get("event") == name]
