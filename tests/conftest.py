"""Shared fixtures: one real devnet per session, snapshot/revert around each test that mutates it.

The helpers themselves live in `tests.support` (shared with `bench/`); the names below stay importable
from here for the test modules that import them from `tests.conftest`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.devnet import Devnet, running_devnet
from tests.support.keeper import run_keeper
from tests.support.ports import free_port

__all__ = ["Devnet", "devnet_up", "free_port", "run_keeper"]

AAVE_BORROWERS = 80
MORPHO_BORROWERS = 80
LARGE_BORROWERS = 1000
"""The differential proofs run on 1,000 borrowers per protocol, on a devnet of their own."""
V30_MORPHO_BORROWERS = 10

TESTS = Path(__file__).parent
NEEDS_A_CHAIN = (TESTS / "integration", TESTS / "e2e", TESTS / "faults")
"""Every test under these folders runs against Anvil (and the devnet's npm packages)."""


@pytest.hookimpl(tryfirst=True)  # before pytest's own hook deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark by folder, so ``-m "not integration"`` stays offline even for a file that forgot its
    ``pytestmark``."""
    for item in items:
        if any(item.path.is_relative_to(folder) for folder in NEEDS_A_CHAIN):
            item.add_marker(pytest.mark.integration)
        if item.path.is_relative_to(TESTS / "faults"):
            item.add_marker(pytest.mark.faults)


def devnet_up(
    tmp_path_factory: pytest.TempPathFactory, aave: int, morpho: int, *extra: str
) -> Iterator[Devnet]:
    with running_devnet(tmp_path_factory.mktemp("devnet") / "devnet.toml", aave, morpho, *extra) as devnet:
        yield devnet


@pytest.fixture(scope="session")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    yield from devnet_up(tmp_path_factory, AAVE_BORROWERS, MORPHO_BORROWERS)


@pytest.fixture(scope="session")
def timed_devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    """1,000 + 1,000 borrowers and a block every second: the end-to-end and fault tests' chain."""
    yield from devnet_up(tmp_path_factory, LARGE_BORROWERS, LARGE_BORROWERS, "--block-time", "1")


@pytest.fixture(scope="session")
def large_devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    yield from devnet_up(tmp_path_factory, LARGE_BORROWERS, LARGE_BORROWERS)


@pytest.fixture(scope="session")
def large_devnet_v30(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    """1,000 Aave borrowers on v3.0.x; Morpho gets a token seeding (the default devnet proves it)."""
    yield from devnet_up(tmp_path_factory, LARGE_BORROWERS, V30_MORPHO_BORROWERS, "--aave-version", "3.0")


def large_chain_for(protocol: str, request: pytest.FixtureRequest) -> Devnet:
    """The large devnet of the protocol's version, reverted to its seeded state after the test."""
    devnet: Devnet = request.getfixturevalue(
        "large_devnet_v30" if protocol == "aave_v3_0" else "large_devnet"
    )
    snapshot = devnet.rpc.call("evm_snapshot")

    def revert() -> None:
        assert devnet.rpc.call("evm_revert", [snapshot]) is True
        devnet.rpc.call("anvil_dropAllTransactions")

    request.addfinalizer(revert)
    return devnet


@pytest.fixture
def large_chain(large_devnet: Devnet) -> Iterator[Devnet]:
    """The large devnet, reverted to its seeded state after the test."""
    yield from reverted_after(large_devnet)


@pytest.fixture
def chain(devnet: Devnet) -> Iterator[Devnet]:
    """The session devnet, reverted to its seeded state after the test."""
    yield from reverted_after(devnet)


def reverted_after(devnet: Devnet) -> Iterator[Devnet]:
    rpc = devnet.rpc
    snapshot = rpc.call("evm_snapshot")
    try:
        yield devnet
    finally:
        assert rpc.call("evm_revert", [snapshot]) is True
        rpc.call("anvil_dropAllTransactions")  # Anvil re-queues the reverted blocks' transactions
