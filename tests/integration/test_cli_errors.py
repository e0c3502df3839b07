"""Bad input ends with one clear error line on stderr and exit code 2."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from tests.conftest import Devnet, free_port, run_keeper


def assert_usage_error(proc: object, fragment: str) -> None:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)  # type: ignore[attr-defined]
    lines = proc.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1 and lines[0].startswith("keeper: error:") and fragment in lines[0], lines


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--asset", "DOGE", "--move", "-20"], "unknown asset 'DOGE'"),
        (["--asset", "WETH", "--move", "twenty"], "not a percentage"),
        (["--asset", "WETH", "--move", "-100"], "above -100"),
        (["--asset", "WETH", "--set", "-5"], "positive USD price"),
        (["--asset", "WETH"], "one of the arguments --set --move is required"),
    ],
)
def test_price_bad_input(devnet: Devnet, args: list[str], fragment: str) -> None:
    assert_usage_error(run_keeper("devnet", "price", "--rpc", devnet.summary["rpc_url"], *args), fragment)


def test_price_against_a_chain_without_the_devnet(tmp_path: Path) -> None:
    port = free_port()
    assert_usage_error(
        run_keeper("devnet", "price", "--rpc", f"http://127.0.0.1:{port}", "--asset", "WETH", "--move", "-1"),
        "unreachable",
    )


def test_up_on_a_port_in_use() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert_usage_error(
            run_keeper("devnet", "up", "--port", str(port), "--config-out", os.devnull),
            f"port {port} is in use",
        )


def test_up_without_npm_packages(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ANVIL"} | {"KEEPER_DEVNET_DIR": str(tmp_path)}
    proc = run_keeper("devnet", "up", "--port", str(free_port()), "--config-out", os.devnull, env=env)
    assert_usage_error(proc, "npm ci")


def test_down_without_a_devnet() -> None:
    assert_usage_error(run_keeper("devnet", "down", "--port", str(free_port())), "no detached devnet")


def test_unknown_flag() -> None:
    assert_usage_error(run_keeper("devnet", "up", "--borrowers", "3"), "unrecognized arguments")
