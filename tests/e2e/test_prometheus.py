"""A real Prometheus (Debian's `prometheus`) scraping a running keeper with the project's own config,
alert rules and dashboard queries.

The keeper runs live on an Anvil fork of the 1-second devnet (an endpoint the test can cut), and a
WETH -25 % move on the fork gives it opportunities to count (each skipped: the profit floor is
out of reach, so nothing is sent and nothing waits for inclusion). Prometheus runs
deploy/prometheus/prometheus.yml and alerts.yml as shipped except for what a test cannot wait for,
derived in `derived` (each derivation names the text it replaces, so a change to the real rule
fails here until it is carried over): scrape and evaluation every second instead of 5 s, the
scrape target the test keeper's status port, KeeperDown's ``for: 2m`` -> 2s, and
KeeperHeadStale's head age threshold 120 s -> 10 s with ``for: 1m`` -> 1s (the fork's head cannot be
made two minutes old; its blocks come every second), plus the fork's clock offset: the session's
devnet has been through snapshots, reverts and time jumps by then, so its block timestamps need
not be the wall clock's, and the alert compares them with Prometheus' ``time()``. The expressions
are otherwise the real ones.

Checked: every metric the Grafana dashboard (deploy/grafana/keeper.json) queries is a series in
Prometheus; KeeperHeadStale fires when the keeper's RPC (the fork) is cut and not before; KeeperDown
fires when the keeper is stopped and not before.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from keeper.devnet.abi import decode_result, encode_call
from keeper.devnet.anvil import stop_pid
from keeper.devnet.feeds import discover_feeds
from keeper.devnet.rpc import Rpc
from keeper.devnet.toolchain import find_anvil, toolchain
from keeper.fork.anvil import Fork, running_fork
from tests.conftest import Devnet
from tests.support.config import variant
from tests.support.keeper import KeeperProcess
from tests.support.ports import free_port
from tests.unit.test_deploy import dashboard_exprs, promql_metrics

from .scenario import move_price

pytestmark = pytest.mark.integration

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
INTERVAL = "1s"
HEAD_AGE_S = 10


def derived(clock_offset_s: int) -> dict[str, dict[str, tuple[str, str]]]:
    """alert -> field -> (the shipped text, what the test runs instead)."""
    return {
        "KeeperDown": {"for": ("2m", "2s")},
        "KeeperHeadStale": {"for": ("1m", "1s"), "expr": ("> 120", f"> {HEAD_AGE_S + clock_offset_s}")},
    }


def derived_rules(target: Path, clock_offset_s: int = 0) -> Path:
    rules = yaml.safe_load((DEPLOY / "alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            for field, (shipped, derived_text) in (
                derived(clock_offset_s).get(rule.get("alert", ""), {}).items()
            ):
                assert shipped in str(rule[field]), f"{rule['alert']}.{field} no longer has {shipped!r}"
                rule[field] = str(rule[field]).replace(shipped, derived_text)
    target.write_text(yaml.safe_dump(rules))
    return target


def derived_config(directory: Path, keeper_listen: str, clock_offset_s: int = 0) -> Path:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": INTERVAL, "evaluation_interval": INTERVAL}
    assert config["rule_files"] == ["alerts.yml"]
    config["rule_files"] = [str(derived_rules(directory / "alerts.yml", clock_offset_s))]
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "keeper"
    job["static_configs"][0]["targets"] = [keeper_listen]
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


class Prometheus:
    def __init__(self, config: Path, directory: Path) -> None:
        binary = shutil.which("prometheus")
        assert binary is not None, "the prometheus server is missing: apt-get install prometheus (.ci/run)"
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = (directory / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address={self.url.removeprefix('http://')}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.wait_until(lambda: self.get("/-/ready") is not None, "ready")

    def get(self, path: str) -> Any:
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as response:
                body = response.read()
        except OSError:
            assert self.proc.poll() is None, f"prometheus exited: see {self.log.name}"
            return None
        return json.loads(body) if body.startswith(b"{") else body

    def names(self) -> set[str]:
        return set(self.get("/api/v1/label/__name__/values")["data"])

    def alerts(self, state: str) -> set[str]:
        return {
            a["labels"]["alertname"]
            for a in self.get("/api/v1/alerts")["data"]["alerts"]
            if a["state"] == state
        }

    def wait_until(self, condition: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            assert time.monotonic() < deadline, f"prometheus: never {what}"
            time.sleep(0.25)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


@pytest.fixture
def prometheus_on_a_fork(
    timed_devnet: Devnet, tmp_path: Path
) -> Iterator[tuple[Prometheus, KeeperProcess, Fork]]:
    anvil = find_anvil(toolchain())
    with running_fork(anvil, timed_devnet.summary["rpc_url"], 1.0, tmp_path / "anvil.log") as fork:
        listen = f"127.0.0.1:{free_port()}"
        changes = {
            "chain": {"rpc_urls": [fork.rpc_url, fork.ws_url]},
            "execution": {"mode": "live", "min_profit_wei": 10**30},  # every opportunity skipped
            "metrics": {"listen": listen},
        }
        keeper = KeeperProcess(variant(timed_devnet, tmp_path / "keeper.toml", changes))
        head = Rpc(fork.rpc_url).call("eth_getBlockByNumber", ["latest", False])
        offset = round(time.time()) - int(head["timestamp"], 16)  # wall clock minus the chain's
        prometheus = Prometheus(derived_config(tmp_path, listen, offset), tmp_path)
        try:
            yield prometheus, keeper, fork
        finally:
            keeper.kill()
            prometheus.stop()


def dashboard_metrics() -> set[str]:
    names: set[str] = set()
    for expr in dashboard_exprs():
        names |= promql_metrics(re.sub(r"label_values\((\w+),.*\)", r"\1", expr))
    return names


def test_prometheus_sees_every_dashboard_series_and_fires_the_alerts(
    prometheus_on_a_fork: tuple[Prometheus, KeeperProcess, Fork], timed_devnet: Devnet
) -> None:
    prometheus, keeper, fork = prometheus_on_a_fork
    keeper.wait_for(lambda e: e.get("event") == "keeper_ready", timeout_s=90)
    on_fork = Devnet(timed_devnet.summary | {"rpc_url": fork.rpc_url}, timed_devnet.config_path, 0)
    feed = discover_feeds(on_fork.rpc)["WETH"]
    (owner,) = decode_result(["address"], on_fork.rpc.eth_call(feed, encode_call("owner()")))
    on_fork.rpc.call("anvil_impersonateAccount", [owner])
    move_price(on_fork, "WETH", "-25")
    keeper.wait_for(lambda e: e.get("event") == "opportunity_skipped")

    # the RPC is cut: its errors are counted, the head goes stale
    wanted = dashboard_metrics()
    assert len(wanted) > 20
    prometheus.wait_until(lambda: "up" in prometheus.names(), "scraped the keeper")
    assert not prometheus.alerts("firing") & {"KeeperDown", "KeeperHeadStale"}
    stop_pid(fork.pid)
    keeper.wait_for(lambda e: e.get("event") == "rpc_unavailable")
    prometheus.wait_until(lambda: "KeeperHeadStale" in prometheus.alerts("firing"), "fired KeeperHeadStale")
    missing = wanted - prometheus.names()
    assert not missing, f"the dashboard queries series Prometheus does not have: {sorted(missing)}"
    # firing, not pending: one slow scrape makes `up == 0` pending for a moment; the rule's `for:`
    # is what keeps that from being an alert
    assert "KeeperDown" not in prometheus.alerts("firing")

    # the keeper is stopped
    keeper.kill()
    prometheus.wait_until(lambda: "KeeperDown" in prometheus.alerts("firing"), "fired KeeperDown")
