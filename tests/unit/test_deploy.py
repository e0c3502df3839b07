"""deploy/: what can be proven without a Docker daemon, a cluster or the network.

Manifests parse; the dashboard and alert rules name only metrics the keeper exports; the
Deployment cannot run two signers; the Dockerfile copies files that exist and reach the build
context; compose and the image run commands the real CLI accepts with env overrides the real
config accepts; the image's HEALTHCHECK program works against a live HTTP server. With promtool
(Debian: `apt-get install prometheus`, which .ci/run does) the rules and the dashboard's PromQL
are also checked and the alert unit tests (deploy/prometheus/alerts.test.yml) run; CI fails
without it, a developer's machine skips.
"""

from __future__ import annotations

import fnmatch
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from keeper.cli import build_parser
from keeper.config import apply_env_overrides, parse_config
from keeper.devnet.accounts import KEEPER_INDEX, dev_account
from keeper.devnet.config_out import devnet_config_toml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROMTOOL = shutil.which("promtool")

HISTOGRAMS = {"keeper_rpc_latency_seconds", "keeper_stage_latency_seconds"}
METRICS = HISTOGRAMS | {
    "keeper_rpc_requests_total",
    "keeper_rpc_errors_total",
    "keeper_head_block",
    "keeper_head_timestamp_seconds",
    "keeper_blocks_behind",
    "keeper_ready",
    "keeper_positions_tracked",
    "keeper_positions_below_health",
    "keeper_opportunities_total",
    "keeper_opportunities_skipped_total",
    "keeper_dry_run_liquidations_total",
    "keeper_gas_spent_wei_total",
    "keeper_profit_expected_wei_total",
    "keeper_transactions_in_flight",
    "keeper_wallet_balance",
    "keeper_feed_updates_total",
    "keeper_prices_rejected_total",
    "keeper_spend_guard_tripped",
    "keeper_spend_guard_gas_paid_wei",
    "keeper_spend_guard_realized_loss_wei",
    "keeper_spend_guard_reverted_transactions",
}
"""The keeper's metric names (keeper/obs/metrics.py); histograms also expose _bucket, _sum, _count."""

YAML_FILES = sorted(
    p for p in DEPLOY.rglob("*") if p.suffix in {".yml", ".yaml"} and DEPLOY / "devnet" not in p.parents
)
GRAFANA_VARS = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h", "$instance": ".*"}
GRAFANA_VARS |= {"$protocol": ".*"}


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """A compose service's short-syntax volumes as {source: target}."""
    return dict(tuple(volume.split(":")[:2]) for volume in service.get("volumes", []))


def load_yaml(relative: str) -> Any:
    docs = list(yaml.safe_load_all((DEPLOY / relative).read_text()))
    assert len(docs) == 1, f"{relative}: expected one YAML document"
    return docs[0]


# --- PromQL: the metric names an expression reads -------------------------------------------

PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or"}
PROMQL_WORDS |= {"unless", "offset", "inf", "nan"}


def promql_metrics(expr: str) -> set[str]:
    """Series names in ``expr``: identifiers left after strings, label matchers, ranges, grouping
    clauses, numbers and function calls are removed. Good enough for the expressions kept here."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"(?<![\w.])\d+(?:\.\d+)?(?:[eE][+-]?\d+)?", " ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][\w:]*(?!\w)(\s*\()?", text):
        word = match.group(0).rstrip("( \t\n")
        if match.group(1) is None and word.lower() not in PROMQL_WORDS:
            names.add(word)
    return names


def known_metric(name: str) -> bool:
    if name in METRICS:
        return True
    base, _, suffix = name.rpartition("_")
    return suffix in {"bucket", "sum", "count"} and base in HISTOGRAMS


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'sum by (le, stage) (rate(keeper_stage_latency_seconds_bucket{a="b"}[5m]))',
            {"keeper_stage_latency_seconds_bucket"},
        ),
        ('keeper_wallet_balance{token="native"} < 0.1e18', {"keeper_wallet_balance"}),
        ("time() - keeper_head_timestamp_seconds > 120", {"keeper_head_timestamp_seconds"}),
        ('up{job="keeper"} == 0', {"up"}),
        ("a_total / on (x) group_left b_total", {"a_total", "b_total"}),
    ],
)
def test_promql_metrics_finds_series_names(expr: str, names: set[str]) -> None:
    assert promql_metrics(expr) == names


def test_known_metric_accepts_histogram_series_only_for_histograms() -> None:
    assert known_metric("keeper_rpc_latency_seconds_bucket")
    assert not known_metric("keeper_head_block_count")
    assert not known_metric("keeper_rpc_requests")


def test_the_metric_list_is_what_the_keeper_exports() -> None:
    """The dashboard and alerts are checked against METRICS; METRICS against keeper/obs/metrics.py."""
    from prometheus_client import CollectorRegistry

    from keeper.obs.metrics import Metrics

    registry = CollectorRegistry()
    Metrics(registry)
    exported = {f.name + ("_total" if f.type == "counter" else "") for f in registry.collect()}
    assert exported == METRICS
    assert {f.name for f in registry.collect() if f.type == "histogram"} == HISTOGRAMS


# --- every manifest parses --------------------------------------------------------------------


def test_the_expected_manifests_exist() -> None:
    names = {str(p.relative_to(DEPLOY)) for p in YAML_FILES}
    expected = {
        "compose.yaml",
        "prometheus/prometheus.yml",
        "prometheus/alerts.yml",
        "prometheus/alerts.test.yml",
        "grafana/provisioning/datasources/prometheus.yml",
        "grafana/provisioning/dashboards/keeper.yml",
    } | {f"k8s/{n}.yaml" for n in ("deployment", "configmap", "secret", "pvc", "service", "kustomization")}
    assert expected <= names


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_yaml_parses(path: Path) -> None:
    docs = list(yaml.safe_load_all(path.read_text()))
    assert docs
    assert all(isinstance(doc, dict) for doc in docs)


# --- Grafana ---------------------------------------------------------------------------------


def dashboard_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from dashboard_panels(panel.get("panels", []))


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "keeper.json").read_text())
    exprs = [t["expr"] for p in dashboard_panels(dashboard["panels"]) for t in p.get("targets", [])]
    return exprs + [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]


def test_dashboard_reads_only_known_metrics_and_shows_them_all() -> None:
    exprs = dashboard_exprs()
    assert len(exprs) > 20
    used = set()
    for expr in exprs:
        names = promql_metrics(re.sub(r"label_values\((\w+),.*\)", r"\1", expr))
        assert names, f"no metric in {expr!r}"
        unknown = {n for n in names if not known_metric(n)}
        assert not unknown, f"{expr!r} reads unknown metrics {unknown}"
        used |= {n.removesuffix("_bucket").removesuffix("_sum").removesuffix("_count") for n in names}
    assert used == METRICS


def test_dashboard_panels_are_well_formed() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "keeper.json").read_text())
    panels = list(dashboard_panels(dashboard["panels"]))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert {"h", "w", "x", "y"} <= panel["gridPos"].keys()
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        ref_ids = [t["refId"] for t in panel.get("targets", [])]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
    assert dashboard["uid"] == "keeper"


def test_grafana_provisioning_matches_compose() -> None:
    compose = load_yaml("compose.yaml")["services"]
    datasource = load_yaml("grafana/provisioning/datasources/prometheus.yml")["datasources"][0]
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    assert "prometheus" in compose
    provider = load_yaml("grafana/provisioning/dashboards/keeper.yml")["providers"][0]
    grafana = mounts(compose["grafana"])
    dashboard_target = grafana["./grafana/keeper.json"]
    assert Path(dashboard_target).parent == Path(provider["options"]["path"])
    assert grafana["./grafana/provisioning"] == "/etc/grafana/provisioning"


# --- Prometheus ------------------------------------------------------------------------------

REQUIRED_ALERTS = {"KeeperDown", "KeeperHeadStale", "KeeperNotReady", "KeeperReverts"}
REQUIRED_ALERTS |= {"KeeperWalletBalanceLow", "KeeperNoBlocks", "KeeperRpcErrors", "KeeperSpendGuardTripped"}
FIRE_AT_ONCE = {"KeeperReverts", "KeeperSpendGuardTripped"}
"""Rules without ``for``: a single reverted liquidation, or a keeper its spend guard stopped, is
worth a page immediately."""


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml("prometheus/alerts.yml")["groups"] for rule in group["rules"]]


def test_alert_rules_are_complete() -> None:
    rules = alert_rules()
    assert {r["alert"] for r in rules} == REQUIRED_ALERTS
    for rule in rules:
        name = rule["alert"]
        assert rule["expr"].strip(), name
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        assert rule["annotations"]["summary"].strip(), name
        assert rule["annotations"]["description"].strip(), name
        if name not in FIRE_AT_ONCE:
            assert re.fullmatch(r"\d+[smh]", rule["for"]), name


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
def test_alert_reads_only_known_metrics(rule: dict[str, Any]) -> None:
    names = promql_metrics(rule["expr"])
    assert names
    assert {n for n in names if not known_metric(n) and n != "up"} == set()


def test_prometheus_scrapes_the_keeper_service_and_loads_the_rules() -> None:
    config = load_yaml("prometheus/prometheus.yml")
    compose = load_yaml("compose.yaml")["services"]
    (job,) = config["scrape_configs"]
    (target,) = job["static_configs"][0]["targets"]
    host, port = target.split(":")
    assert host in compose
    assert compose["keeper"]["environment"]["KEEPER_METRICS__LISTEN"] == f"0.0.0.0:{port}"
    assert job.get("metrics_path", "/metrics") == "/metrics"
    prometheus = mounts(compose["prometheus"])
    config_dir = Path(prometheus["./prometheus/prometheus.yml"]).parent
    for rule_file in config["rule_files"]:
        assert prometheus[f"./prometheus/{rule_file}"] == str(config_dir / rule_file)


@pytest.fixture
def promtool_path() -> str:
    """promtool, or a skip on a developer's machine without it; in CI (``CI`` set) a failure.

    .ci/run installs it, so a missing promtool there is a broken CI script, not a reason to skip.
    """
    if PROMTOOL is not None:
        return PROMTOOL
    missing = "promtool not on PATH (Debian: apt-get install prometheus; .ci/run installs it)"
    if os.environ.get("CI"):
        pytest.fail(f"{missing}: CI runs the alert rules' unit tests, it never skips them")
    pytest.skip(missing)


def promtool(path: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([path, *args], capture_output=True, text=True, check=False, timeout=60)


def test_promtool_accepts_rules_config_and_alert_unit_tests(promtool_path: str) -> None:
    for args in (
        ("check", "rules", "alerts.yml"),
        ("check", "config", "prometheus.yml"),
        ("test", "rules", "alerts.test.yml"),
    ):
        result = subprocess.run(
            [promtool_path, *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
            cwd=DEPLOY / "prometheus",
        )
        assert result.returncode == 0, f"promtool {' '.join(args)}:\n{result.stdout}\n{result.stderr}"


def test_promtool_parses_every_dashboard_query(promtool_path: str, tmp_path: Path) -> None:
    rules = []
    for index, query in enumerate(e for e in dashboard_exprs() if not e.startswith("label_values")):
        expr = query
        for variable, value in sorted(GRAFANA_VARS.items(), key=lambda kv: -len(kv[0])):
            expr = expr.replace(variable, value)
        assert "$" not in expr, f"unsubstituted Grafana variable in {expr!r}"
        rules.append({"record": f"dashboard:query_{index}", "expr": expr})
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = promtool(promtool_path, "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


# --- Kubernetes ------------------------------------------------------------------------------


def k8s(kind: str) -> dict[str, Any]:
    docs: list[dict[str, Any]] = [
        d for p in sorted((DEPLOY / "k8s").glob("*.yaml")) for d in yaml.safe_load_all(p.read_text())
    ]
    (doc,) = [d for d in docs if d.get("kind") == kind]
    return doc


def keeper_container() -> dict[str, Any]:
    containers: list[dict[str, Any]] = k8s("Deployment")["spec"]["template"]["spec"]["containers"]
    (container,) = containers
    return container


def probe_port(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    (match,) = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    return int(match)


def test_deployment_runs_one_signer_non_root() -> None:
    deployment = k8s("Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    container = keeper_container()
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["terminationGracePeriodSeconds"] > 30  # execution.shutdown_grace_s


def test_deployment_probes_hit_the_status_server() -> None:
    container = keeper_container()
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = container[probe]["httpGet"]
        assert get["path"] == path
        assert probe_port(container, get["port"]) == 9108
    assert any(p["containerPort"] == 9108 for p in container["ports"])


def test_deployment_mounts_store_config_secret_and_tmp() -> None:
    pod = k8s("Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in keeper_container()["volumeMounts"]}
    assert (
        mounts["/var/lib/keeper"]["persistentVolumeClaim"]["claimName"]
        == k8s("PersistentVolumeClaim")["metadata"]["name"]
    )
    config_map = k8s("ConfigMap")
    assert mounts["/etc/keeper"]["configMap"]["name"] == config_map["metadata"]["name"]
    assert "emptyDir" in mounts["/tmp"]
    args = keeper_container()["args"]
    config_path = Path(args[args.index("--config") + 1])
    assert config_path.parent == Path("/etc/keeper")
    assert config_path.name in config_map["data"]
    env = {e["name"]: e for e in keeper_container()["env"]}
    secret_ref = env["KEEPER_PRIVATE_KEY"]["valueFrom"]["secretKeyRef"]
    secret = k8s("Secret")
    assert secret_ref["name"] == secret["metadata"]["name"]
    assert secret_ref["key"] in secret["stringData"]


def test_configmap_is_a_valid_keeper_config_for_the_container() -> None:
    toml = k8s("ConfigMap")["data"]["keeper.toml"]
    env = {e["name"]: e["value"] for e in keeper_container()["env"] if "value" in e}
    config = parse_config(apply_env_overrides(tomllib.loads(toml), env), "configmap keeper.toml")
    assert config.store.path.parent == Path("/var/lib/keeper")
    host, _, port = config.metrics.listen.rpartition(":")
    assert host == "0.0.0.0"
    assert port == "9108"
    assert config.signer.private_key_env == "KEEPER_PRIVATE_KEY"
    assert (
        config.execution.shutdown_grace_s
        < k8s("Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    )


def test_service_and_kustomization_cover_the_manifests() -> None:
    service = k8s("Service")
    (port,) = service["spec"]["ports"]
    assert (port["name"], port["port"]) == ("metrics", 9108)
    assert probe_port(keeper_container(), port["targetPort"]) == 9108
    pod_labels = k8s("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    resources = k8s("Kustomization")["resources"]
    on_disk = {p.name for p in (DEPLOY / "k8s").glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(resources) == sorted(on_disk)
    assert "namespace" not in k8s("Kustomization")
    assert all("namespace" not in k8s(kind)["metadata"] for kind in ("Deployment", "Service", "ConfigMap"))


# --- Dockerfile ------------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    lines = [ln for ln in (DEPLOY / "Dockerfile").read_text().splitlines() if not ln.lstrip().startswith("#")]
    text = re.sub(r"\\\n", " ", "\n".join(lines))
    return [
        (ln.split(None, 1)[0].upper(), ln.split(None, 1)[1].strip()) for ln in text.splitlines() if ln.strip()
    ]


def stages() -> dict[str, list[tuple[str, str]]]:
    """Each stage's instructions, inherited ones first (``FROM <stage>`` continues that stage);
    ``${ARG}`` in FROM resolves with the global ARG defaults."""
    result: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    global_args: dict[str, str] = {}
    for instruction, args in dockerfile():
        if instruction == "ARG" and current is None:
            name, _, default = args.partition("=")
            global_args[name] = default
        elif instruction == "FROM":
            image = re.sub(r"\$\{(\w+)\}", lambda m: global_args[m.group(1)], args)
            base, _, name = re.sub(r"--platform=\S+\s+", "", image).partition(" AS ")
            current = list(result.get(base.strip(), [("FROM", base.strip())]))
            result[name.strip() or f"stage{len(result)}"] = current
        elif current is not None:
            current.append((instruction, args))
    return result


def last(instructions: list[tuple[str, str]], name: str) -> str:
    return [args for instruction, args in instructions if instruction == name][-1]


def dockerignored(relative: str) -> bool:
    patterns = [
        ln.strip()
        for ln in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    parts = relative.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        if pattern.startswith("**/"):
            if any(fnmatch.fnmatchcase(part, pattern[3:]) for part in parts):
                return True
        elif any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes):
            return True
    return False


def test_dockerignore_matcher() -> None:
    assert dockerignored("deploy/devnet/node_modules/solc/package.json")
    assert dockerignored(".git/HEAD")
    assert dockerignored("keeper/__pycache__/cli.cpython-311.pyc")
    assert not dockerignored("keeper/cli.py")


def test_the_default_image_is_the_keeper_and_runs_as_non_root() -> None:
    all_stages = stages()
    default = list(all_stages.values())[-1]
    assert default == all_stages["keeper"]
    assert default[0][0] == "FROM"
    assert default[0][1].startswith("python:3.11-slim")
    user = last(default, "USER").split(":")[0]
    assert user not in {"root", "0"}
    assert json.loads(last(default, "ENTRYPOINT")) == ["keeper"]
    assert json.loads(last(default, "CMD")) == ["run", "--config", "/etc/keeper/keeper.toml"]
    assert "/var/lib/keeper" in json.loads(last(default, "VOLUME"))
    assert "9108" in last(default, "EXPOSE").split()
    env = " ".join(args for instruction, args in default if instruction == "ENV")
    assert "KEEPER_METRICS__LISTEN=0.0.0.0:9108" in env.split()
    assert "KEEPER_STORE__PATH=/var/lib/keeper/keeper.sqlite" in env.split()
    assert "/healthz" in last(default, "HEALTHCHECK")


def test_every_copy_source_exists_and_reaches_the_build_context() -> None:
    names = set(stages())
    copies = [args for instruction, args in dockerfile() if instruction == "COPY"]
    assert copies
    for args in copies:
        words = args.split()
        flags = [w for w in words if w.startswith("--")]
        sources = [w for w in words if not w.startswith("--")][:-1]
        from_stage = [f.split("=", 1)[1] for f in flags if f.startswith("--from=")]
        if from_stage:
            assert from_stage[0] in names, args
            continue
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
            assert not dockerignored(source), f"COPY {source}: excluded by Dockerfile.dockerignore"


def test_links_inside_copied_folders_point_at_what_is_copied_too() -> None:
    """keeper/abis links to abis/: an image that copies keeper/ without abis/ builds a wheel with no
    ABIs, and the keeper fails at import. Every link must land inside a folder the same stage copies."""
    for stage, instructions in stages().items():
        copied = set()
        for instruction, args in instructions:
            if instruction == "COPY" and "--from=" not in args:
                copied |= {Path(w).parts[0] for w in args.split()[:-1] if not w.startswith("--")}
        for top in sorted(copied):
            if not (ROOT / top).is_dir():
                continue
            for link in (ROOT / top).rglob("*"):
                if link.is_symlink():
                    target = link.resolve().relative_to(ROOT)
                    assert target.parts[0] in copied, f"stage {stage}: {link} -> {target} is not copied"


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        code = self.status if self.path == "/healthz" else 404
        self.send_response(code)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


@pytest.mark.parametrize(("status", "exit_code"), [(200, 0), (503, 1)])
def test_healthcheck_program_reflects_healthz(status: int, exit_code: int) -> None:
    check = json.loads(last(stages()["keeper"], "HEALTHCHECK").split(" CMD ", 1)[1])
    assert check[:2] == ["python", "-c"]
    handler = type("Handler", (_Health,), {"status": status})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        program = check[2].replace("127.0.0.1:9108", f"127.0.0.1:{server.server_address[1]}")
        assert program != check[2]
        result = subprocess.run([sys.executable, "-c", program], capture_output=True, check=False, timeout=30)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert result.returncode == exit_code


# --- compose and the CLI ---------------------------------------------------------------------

ANVIL_KEY_1 = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"


def compose() -> dict[str, Any]:
    services: dict[str, Any] = load_yaml("compose.yaml")["services"]
    return services


def test_compose_services_build_stages_that_exist() -> None:
    services = compose()
    assert set(services) == {"devnet", "keeper", "prometheus", "grafana"}
    for name in ("devnet", "keeper"):
        build = services[name]["build"]
        context = (DEPLOY / build["context"]).resolve()
        assert context == ROOT
        assert (context / build["dockerfile"]).is_file()
        assert build["target"] in stages()
    assert services["keeper"]["depends_on"]["devnet"]["condition"] == "service_healthy"
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), source


def test_compose_keeper_command_is_accepted_by_the_cli_and_reads_the_devnet_config() -> None:
    services = compose()
    args = build_parser().parse_args(services["keeper"]["command"])
    assert args.command == "run"
    shared = mounts(services["devnet"])
    keeper_mounts = mounts(services["keeper"])
    devnet_command = services["devnet"]["command"]
    config_out = Path(devnet_command[devnet_command.index("--config-out") + 1])
    assert args.config == config_out
    (volume,) = [name for name, target in shared.items() if Path(target) == config_out.parent]
    assert Path(keeper_mounts[volume]) == config_out.parent


def test_compose_devnet_command_is_accepted_by_the_cli() -> None:
    command = compose()["devnet"]["command"]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    args = build_parser().parse_args(command)
    assert (args.command, args.devnet_command, args.port) == ("devnet", "up", 8545)


def test_compose_keeper_env_makes_a_valid_config_from_the_devnet_one() -> None:
    summary = {
        "rpc_url": "http://127.0.0.1:8545",
        "ws_url": "ws://127.0.0.1:8545",
        "chain_id": 31337,
        "aave": {
            "reserves": {"WETH": "0x" + "11" * 20, "USDC": "0x" + "12" * 20},
            "pool_addresses_provider": "0x" + "22" * 20,
        },
        "morpho": {"address": "0x" + "33" * 20},
        "feeds": {"WETH": "0x" + "f1" * 20, "USDC": "0x" + "f2" * 20},
        "uniswap_v3": {
            "factory": "0x" + "44" * 20,
            "swap_router": "0x" + "55" * 20,
            "quoter": "0x" + "66" * 20,
            "fee_tiers": [100, 500, 3000],
        },
    }
    env = compose()["keeper"]["environment"]
    config = parse_config(apply_env_overrides(tomllib.loads(devnet_config_toml(summary)), env), "compose")
    assert config.chain.rpc_urls == ("ws://devnet:8545", "http://devnet:8545")
    assert config.metrics.listen == "0.0.0.0:9108"
    assert config.store.path == Path("/var/lib/keeper/keeper.sqlite")
    assert config.signer.private_key_env is not None
    key = env[config.signer.private_key_env]
    assert key == ANVIL_KEY_1
    assert key.removeprefix("0x") == dev_account(KEEPER_INDEX).private_key.removeprefix("0x")
    (venue,) = config.venues
    assert (venue.kind, venue.quoter, venue.fee_tiers) == ("uniswap_v3", "0x" + "66" * 20, (100, 500, 3000))
    feeds = {(f.token.lower(), f.feed.lower(), f.max_age_s) for f in config.price_feeds}
    assert feeds == {("0x" + "11" * 20, "0x" + "f1" * 20, None), ("0x" + "12" * 20, "0x" + "f2" * 20, None)}


def test_the_console_script_and_module_accept_the_image_command() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert json.loads(last(stages()["keeper"], "ENTRYPOINT")) == [next(iter(scripts))]
    keeper = Path(sys.executable).parent / "keeper"
    cmd = json.loads(last(stages()["keeper"], "CMD"))
    for argv in (
        [str(keeper), "--help"],
        [str(keeper), cmd[0], "--help"],
        [sys.executable, "-m", "keeper", cmd[0], "--help"],
    ):
        result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
        assert result.returncode == 0, result.stderr
        if cmd[0] in argv:
            assert "--config" in result.stdout
    devnet_cmd = json.loads(last(stages()["devnet"], "CMD"))
    assert devnet_cmd[:2] == ["devnet", "up"]
    assert devnet_cmd[devnet_cmd.index("--config-out") + 1] == "/shared/devnet.toml"
