"""The fault-injection suite: a real Anvil and the keeper as a subprocess, broken on purpose."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.keeper import RUNNING


@pytest.fixture(autouse=True)
def no_keeper_left_running() -> Iterator[None]:
    yield
    while RUNNING:
        RUNNING.pop().kill()
