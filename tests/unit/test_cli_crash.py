"""A bug that escapes a command is one line for the operator and one log event with the traceback."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator

import pytest
import structlog

from keeper import cli


@pytest.fixture(autouse=True)
def default_logging() -> Iterator[None]:
    """The crash path configures logging on the captured stderr, which closes after the test."""
    yield
    structlog.reset_defaults()


def crash(error: BaseException) -> object:
    def dispatch(_: argparse.Namespace) -> int:
        raise error

    return dispatch


@pytest.mark.parametrize(
    "error",
    [ValueError("boom"), ExceptionGroup("unhandled errors in a TaskGroup", [ValueError("boom")])],
    ids=["plain", "from the daemon's task group"],
)
def test_an_unexpected_error_is_one_line_and_a_logged_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], error: BaseException
) -> None:
    monkeypatch.setattr(cli, "_dispatch", crash(error))
    assert cli.main(["status"]) == cli.EXIT_FAILURE
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1] == "keeper: failed: unexpected ValueError: boom (traceback in the keeper_crashed event)"
    event = json.loads(lines[0])  # not a terminal: JSON lines
    assert event["event"] == "keeper_crashed" and event["level"] == "error"
    assert "Traceback" in event["exception"] and "ValueError: boom" in event["exception"]
    assert len(lines) == 2, "a raw traceback leaked to stderr"


def test_keeper_errors_keep_their_own_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from keeper.errors import Halt

    monkeypatch.setattr(cli, "_dispatch", crash(Halt("reorg deeper than the 3 blocks kept")))
    assert cli.main(["status"]) == cli.EXIT_FAILURE
    assert capsys.readouterr().err == "keeper: failed: reorg deeper than the 3 blocks kept\n"
