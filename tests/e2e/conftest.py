"""One devnet for the end-to-end tests: 1,000 + 1,000 borrowers, a block every second."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import LARGE_BORROWERS, devnet_up
from tests.support.devnet import Devnet
from tests.support.keeper import RUNNING


@pytest.fixture(scope="session")
def timed_devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    yield from devnet_up(tmp_path_factory, LARGE_BORROWERS, LARGE_BORROWERS, "--block-time", "1")


@pytest.fixture(autouse=True)
def no_keeper_left_running() -> Iterator[None]:
    yield
    while RUNNING:
        RUNNING.pop().kill()
