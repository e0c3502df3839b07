"""The end-to-end tests share the session's `timed_devnet` (tests/conftest.py): 1,000 + 1,000
borrowers, a block every second."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.keeper import RUNNING


@pytest.fixture(autouse=True)
def no_keeper_left_running() -> Iterator[None]:
    yield
    while RUNNING:
        RUNNING.pop().kill()
