"""docker-compose.yml, deploy/prometheus.yml and the Dockerfile: the stack a user with Docker starts.

No Docker engine is needed. The compose file is read with PyYAML when it is installed,
else through ``docker compose config --format json`` when the compose CLI is there, else
these tests skip; ``deploy/prometheus.yml``, ``deploy/alerts.yml`` and the Grafana files
need PyYAML. What is checked: the services, the single-node KRaft settings of Kafka, Redis'
append-only file, the health checks, that Prometheus scrapes exactly the services that
serve ``/metrics``, the labeler API published on loopback only, that every alert and
dashboard query names only series the services expose (and parses with Prometheus's own
parsers, ``deploy/promcheck``, which needs Go), and Grafana's data source and dashboard.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
PROMETHEUS = ROOT / "deploy" / "prometheus.yml"
ALERTS = ROOT / "deploy" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "activestream.json"
DOCKERFILE = ROOT / "Dockerfile"

APP_SERVICES = {"scorer": 2, "retrainer": 1, "dispatcher": 1, "labeler-api": 1}  # service -> replicas
# Started only with `docker compose --profile label-studio up`: the connector (an app service) and Label Studio.
PROFILE_SERVICES = {"label-studio": 1}
PROFILE_OTHERS = {"labelstudio-server"}
METRICS_PORT = "9310"


def _yaml() -> Any:
    try:
        import yaml
    except ImportError:
        return None
    return yaml


def _compose_cli() -> list[str] | None:
    for cmd in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(cmd[0]) is None:
            continue
        try:
            ok = subprocess.run([*cmd, "version"], capture_output=True, timeout=30).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            ok = False
        if ok:
            return cmd
    return None


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    yaml = _yaml()
    if yaml is not None:
        return yaml.safe_load(COMPOSE.read_text())
    cli = _compose_cli()
    if cli is None:
        pytest.skip("neither PyYAML nor the docker compose CLI is installed")
    import json

    out = subprocess.run([*cli, "-f", str(COMPOSE), "config", "--format", "json", "--no-interpolate"],
                         capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def prometheus() -> dict[str, Any]:
    yaml = _yaml()
    if yaml is None:
        pytest.skip("PyYAML is not installed")
    return yaml.safe_load(PROMETHEUS.read_text())


def env(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):  # ["KEY=value", ...]
        raw = dict(item.split("=", 1) for item in raw)
    return {k: str(v) for k, v in raw.items()}


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """target -> source, from the short (``src:dst[:ro]``) or the long form."""
    out = {}
    for v in service.get("volumes") or []:
        if isinstance(v, str):
            src, dst = v.split(":")[:2]
        else:
            src, dst = v.get("source", ""), v["target"]
        out[dst] = src
    return out


def published_ports(service: dict[str, Any]) -> set[str]:
    out = set()
    for p in service.get("ports") or []:
        out.add(str(p).split(":")[-1] if not isinstance(p, dict) else str(p["target"]))
    return out


def listeners(value: str) -> dict[str, tuple[str, str]]:
    """``NAME://host:port,...`` -> {NAME: (host, port)}."""
    out = {}
    for part in value.split(","):
        name, addr = part.split("://")
        host, port = addr.rsplit(":", 1)
        out[name] = (host, port)
    return out


def test_compose_config_is_valid() -> None:
    cli = _compose_cli()
    if cli is None:
        pytest.skip("the docker compose CLI is not installed")
    out = subprocess.run([*cli, "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr


def test_services_and_replicas(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"kafka", "redis", "prometheus", "grafana", *APP_SERVICES, *PROFILE_SERVICES, *PROFILE_OTHERS}
    for name in (*PROFILE_SERVICES, *PROFILE_OTHERS):
        assert services[name]["profiles"] == ["label-studio"], name
    for name, replicas in (APP_SERVICES | PROFILE_SERVICES).items():
        svc = services[name]
        assert svc.get("deploy", {}).get("replicas", 1) == replicas, name
        assert svc["build"], name
        assert "container_name" not in svc, f"{name}: a fixed container name forbids replicas"
        cmd = [str(c) for c in svc["command"]]
        assert cmd[0] == name
        assert cmd[cmd.index("--metrics-port") + 1] == METRICS_PORT
        assert METRICS_PORT in [str(p) for p in svc.get("expose", [])]


def test_services_reach_kafka_and_redis(compose: dict[str, Any]) -> None:
    services = compose["services"]
    kafka_env = env(services["kafka"])
    advertised = listeners(kafka_env["KAFKA_ADVERTISED_LISTENERS"])
    internal = advertised[kafka_env["KAFKA_INTER_BROKER_LISTENER_NAME"]]
    for name in (*APP_SERVICES, *PROFILE_SERVICES):
        svc = services[name]
        e = env(svc)
        assert e["KAFKA_BOOTSTRAP_SERVERS"] == f"kafka:{internal[1]}" and internal[0] == "kafka", name
        assert re.fullmatch(r"redis://redis:6379(/\d+)?", e["REDIS_URL"]), name
        deps = svc["depends_on"]
        assert deps["kafka"]["condition"] == "service_healthy"
        assert deps["redis"]["condition"] == "service_healthy"
        test = " ".join(str(t) for t in svc["healthcheck"]["test"])
        assert f"127.0.0.1:{METRICS_PORT}/healthz" in test, name
    for name in ("kafka", "redis"):
        assert services[name]["healthcheck"]["test"], name


def test_retrainer_runs_on_faust_by_default(compose: dict[str, Any]) -> None:
    cmd = [str(c) for c in compose["services"]["retrainer"]["command"]]
    engine = cmd[cmd.index("--engine") + 1]
    assert engine in ("faust", "${RETRAINER_ENGINE:-faust}")


def test_kafka_is_single_node_kraft(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    assert re.fullmatch(r"apache/kafka:3\.9\.\d+", kafka["image"])
    e = env(kafka)
    assert set(e["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    node = e["KAFKA_NODE_ID"]
    own = listeners(e["KAFKA_LISTENERS"])
    controller = e["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert controller in own
    assert e["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{node}@kafka:{own[controller][1]}"
    protocols = dict(p.split(":") for p in e["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(own) <= set(protocols)
    advertised = listeners(e["KAFKA_ADVERTISED_LISTENERS"])
    assert controller not in advertised
    for name, (_, port) in advertised.items():
        assert own[name][1] == port, f"{name} is advertised on another port than it listens on"
    assert e["KAFKA_INTER_BROKER_LISTENER_NAME"] in advertised
    for key in ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"):
        assert e[key] == "1", key
    assert e["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", e["CLUSTER_ID"])
    assert mounts(kafka)[e["KAFKA_LOG_DIRS"]] in compose["volumes"], "the log dir is on a named volume"
    # Host clients use the listener advertised as localhost, published on the same port.
    host = [(n, p) for n, (h, p) in advertised.items() if h == "localhost"]
    assert host and host[0][1] in published_ports(kafka)


def test_redis_keeps_an_append_only_file(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    assert re.fullmatch(r"redis:7(\.[\w.-]+)?(-alpine)?", redis["image"])
    cmd = redis_command(redis)
    assert cmd[cmd.index("--appendonly") + 1] == "yes"
    assert mounts(redis)["/data"] in compose["volumes"]


def redis_command(redis: dict[str, Any]) -> list[str]:
    """The redis-server command line, also when a shell (``sh -c "... && exec redis-server ..."``) starts it."""
    cmd = [str(c) for c in redis["command"]] if isinstance(redis["command"], list) else redis["command"].split()
    if cmd[:2] == ["sh", "-c"]:
        cmd = cmd[2].split("exec ", 1)[1].split()
    assert cmd[0] == "redis-server"
    return cmd


def host_ports(service: dict[str, Any]) -> list[str]:
    """``host_ip:published:target`` of each published port (no host_ip: every interface)."""
    out = []
    for p in service.get("ports") or []:
        if isinstance(p, dict):
            out.append(f"{p.get('host_ip', '')}:{p['published']}:{p['target']}")
        else:
            parts = str(p).split(":")
            out.append(":".join(parts) if len(parts) == 3 else ":" + ":".join(parts if len(parts) == 2 else [parts[0], parts[0]]))
    return out


def test_nothing_is_published_beyond_this_hosts_loopback(compose: dict[str, Any]) -> None:
    """The issue's trigger: Kafka (9094), Redis (6379) and Prometheus (9090) were published on every interface, unauthenticated."""
    published = {name: host_ports(svc) for name, svc in compose["services"].items() if svc.get("ports")}
    assert {"kafka", "redis", "prometheus"} <= set(published)
    for name, ports in published.items():
        for p in ports:
            assert p.startswith("127.0.0.1:"), f"{name} publishes {p} beyond this host's loopback"
    assert [p.split(":")[1] for p in published["kafka"]] == ["9094"]
    assert [p.split(":")[1] for p in published["redis"]] == ["6379"]
    assert [p.split(":")[1] for p in published["prometheus"]] == ["9090"]


def test_redis_wants_the_password_of_a_compose_secret(compose: dict[str, Any], tmp_path: Path) -> None:
    from activestream.config import Settings

    services = compose["services"]
    secret = compose["secrets"]["redis_password"]
    assert Path(secret["file"]).parts[:3] == (".", "deploy", "secrets") or Path(secret["file"]).parts[:2] == ("deploy", "secrets")
    assert "deploy/secrets/" in (ROOT / ".gitignore").read_text()  # never committed
    redis = services["redis"]
    assert "redis_password" in redis["secrets"]
    shell = " ".join(str(c) for c in redis["command"])
    assert "requirepass" in shell and "/run/secrets/redis_password" in shell
    assert "/run/secrets/redis_password" not in " ".join(redis_command(redis))  # read from a file, not on the command line
    health = " ".join(str(t) for t in redis["healthcheck"]["test"])
    assert "REDISCLI_AUTH" in health and "/run/secrets/redis_password" in health and "PONG" in health
    password = tmp_path / "redis_password"
    password.write_text("0123abcd\n")
    for name in APP_SERVICES:
        svc, e = services[name], env(services[name])
        assert "redis_password" in svc["secrets"], name
        assert e["ACTIVESTREAM_REDIS_PASSWORD_FILE"] == "/run/secrets/redis_password", name
        # Every service's REDIS_URL carries the secret's password once the settings are read.
        given = {k: v for k, v in e.items() if "${" not in v}  # (compose interpolates the rest from the host)
        url = Settings.from_env({**given, "ACTIVESTREAM_REDIS_PASSWORD_FILE": str(password)}).redis_url
        assert url == e["REDIS_URL"].replace("redis://", "redis://:0123abcd@"), name


def test_services_are_static_group_members_per_container(compose: dict[str, Any]) -> None:
    for name in APP_SERVICES:
        assert env(compose["services"][name])["ACTIVESTREAM_INSTANCE_ID"] == "{hostname}", name


def test_prometheus_scrapes_every_service(compose: dict[str, Any], prometheus: dict[str, Any]) -> None:
    prom = compose["services"]["prometheus"]
    assert prom["image"].startswith("prom/prometheus")
    source = mounts(prom)["/etc/prometheus/prometheus.yml"]
    assert Path(source).name == "prometheus.yml" and Path(source).parent.name == "deploy"
    targets: dict[str, set[str]] = {}
    for job in prometheus["scrape_configs"]:
        assert job.get("metrics_path", "/metrics") == "/metrics"
        for sd in job.get("dns_sd_configs", []):
            assert sd.get("type", "SRV") == "A" and str(sd["port"]) == METRICS_PORT, job["job_name"]
            targets.setdefault(job["job_name"], set()).update(sd["names"])
        for sc in job.get("static_configs", []):
            targets.setdefault(job["job_name"], set()).update(t.rsplit(":", 1)[0] for t in sc["targets"])
    assert targets == {name: {name} for name in (*APP_SERVICES, *PROFILE_SERVICES)}


def test_dockerfile_installs_the_faust_extra() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    assert 'pip install ".[faust,labelstudio]"' in text and "label-studio-sdk" in text
    assert re.search(r'^ENTRYPOINT \["activestream"\]', text, re.M)
    assert not re.search(r"openjdk|default-jre|temurin", text, re.I), "the image needs no Java"
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(d.startswith("faust-streaming") for d in extras["faust"])
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored


def test_the_labeling_page_is_published_on_this_host_only(compose: dict[str, Any]) -> None:
    api = compose["services"]["labeler-api"]
    cmd = [str(c) for c in api["command"]]
    port = cmd[cmd.index("--port") + 1]
    assert cmd[cmd.index("--host") + 1] == "0.0.0.0"  # (inside the container: for the published port)
    ports = [p if isinstance(p, str) else f"{p.get('host_ip', '')}:{p['published']}:{p['target']}" for p in api["ports"]]
    assert ports == [f"127.0.0.1:{port}:{port}"]
    assert "ACTIVESTREAM_LABELER_TOKENS" in env(api)


def _exposed_metrics() -> set[str]:
    """Every series name the services expose on /metrics, from their own registries."""
    from prometheus_client import CollectorRegistry

    from activestream.labeling.dispatcher import Dispatcher
    from activestream.labeling.metrics import LabelingMetrics
    from activestream.rankedqueue import QueueKeys
    from activestream.retrainer.metrics import RetrainerMetrics
    from activestream.scorer.metrics import ScorerMetrics
    from activestream.streams.memory import InMemoryBus
    from activestream.streams.topics import Topics

    class Idle:  # what the labeler API's gauges read at scrape time
        k = QueueKeys("m")

        def n_waiting(self) -> int:
            return 0

        n_leased = n_labeled = n_dropped = n_waiting

    # A family with labels has no sample before its first label value: name its series by type.
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    registries = [CollectorRegistry()]
    LabelingMetrics.create(registries[0], Idle())
    for build in (ScorerMetrics.create, RetrainerMetrics.create, lambda reg: Dispatcher(Idle(), InMemoryBus(), Topics("m"), registry=reg)):  # type: ignore[arg-type]
        registries.append(CollectorRegistry())
        build(registries[-1])
    names: set[str] = set()
    for registry in registries:
        for family in registry.collect():
            names |= {sample.name for sample in family.samples} | {family.name + s for s in suffixes.get(family.type, ("",))}
    return names


def _unknown_metrics(expr: str, exposed: set[str]) -> set[str]:
    return set(re.findall(r"\b(activestream_[a-z_]+)", expr)) - exposed


def test_alerts_are_loaded_and_name_only_metrics_the_services_export(compose: dict[str, Any], prometheus: dict[str, Any]) -> None:
    import yaml

    prom = compose["services"]["prometheus"]
    mounted = mounts(prom)
    assert prometheus["rule_files"] == ["/etc/prometheus/alerts.yml"] and Path(mounted["/etc/prometheus/alerts.yml"]).name == "alerts.yml"
    exposed = _exposed_metrics()
    assert {"activestream_scorer_model_version", "activestream_dispatch_skipped_total", "activestream_labeler_api_pending_items"} <= exposed
    rules = [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]
    assert len({r["alert"] for r in rules}) == len(rules) >= 5
    jobs = {job["job_name"] for job in prometheus["scrape_configs"]}
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning") and rule["annotations"]["summary"], rule["alert"]
        assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]
        assert not _unknown_metrics(rule["expr"], exposed), f"{rule['alert']}: no service exposes {_unknown_metrics(rule['expr'], exposed)}"
        for job in re.findall(r'job=~?"([^"]+)"', rule["expr"]):
            assert set(job.split("|")) <= jobs, f"{rule['alert']}: {job} is not a scrape job"


def test_alerts_and_dashboard_parse_with_prometheus_own_parsers(go: str) -> None:
    # deploy/promcheck: Prometheus's rulefmt and PromQL parser, as `promtool check rules` uses them;
    # its go test evaluates each alert with Prometheus's PromQL engine on made-up series.
    out = subprocess.run([go, "run", ".", str(ALERTS), str(DASHBOARD)], cwd=ROOT / "deploy" / "promcheck", capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and out.stdout.count("OK") == 2, out.stdout + out.stderr
    out = subprocess.run([go, "test", "."], cwd=ROOT / "deploy" / "promcheck", capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr


def _aggregations(expr: str) -> list[tuple[str, list[str]]]:
    """``(operator, its by-labels)`` of each aggregation in a PromQL expression."""
    found = re.findall(r"\b(sum|max|min|avg|count)\s*(?:by\s*\(([^)]*)\))?\s*\(", expr)
    return [(op, [x.strip() for x in by.split(",") if x.strip()]) for op, by in found]


def test_the_dashboard_and_every_alert_compare_within_one_namespace() -> None:
    # Two campaigns on one Prometheus: a sum, max or min across namespaces mixes them up (a
    # scorer of campaign a "behind" the retrainer of campaign b).
    import json

    import yaml

    rules = [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]
    exprs = [(r["alert"], r["expr"]) for r in rules if "activestream_" in r["expr"]]
    targets = [(p["title"], t["expr"]) for p in json.loads(DASHBOARD.read_text())["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 5 and len(targets) >= 15
    for what, expr in exprs + targets:
        aggs = _aggregations(expr)
        assert aggs and all("namespace" in by for _, by in aggs), (what, expr)
        if len(aggs) > 1 and re.search(r"\)\s*(>|-)\s*(min|max)", expr):  # (a comparison of two services' figures)
            assert "on (namespace)" in expr, (what, expr)
    for title, expr in targets:  # (the dashboard's campaign picker; a panel may pick a figure too: {namespace=~"$namespace", figure="..."})
        metrics = re.findall(r"\b(activestream_[a-z_]+)", expr)
        assert all(re.search(re.escape(f'{m}{{namespace=~"$namespace"') + r"[,}]", expr) for m in metrics), (title, expr)
        assert expr.count("activestream_") == sum(expr.count(f'{m}{{namespace=~"$namespace"') for m in set(metrics)), (title, expr)


def test_two_campaigns_on_one_prometheus_raise_no_alert(go: str, tmp_path: Path) -> None:
    # Two campaigns' services, each with its own registry (as each process has), every metric
    # labelled with its namespace; each scorer serves its own retrainer's newest version (v3 and
    # v7), with some dead letters and rejections long ago. Their /metrics text, held constant
    # for two hours, is evaluated against every alert by Prometheus's PromQL engine
    # (deploy/promcheck: TestTheServicesOwnSeriesRaiseNoAlert): none fires.
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from activestream.labeling.metrics import DispatcherMetrics, LabelingMetrics
    from activestream.rankedqueue import QueueKeys
    from activestream.retrainer.metrics import RetrainerMetrics
    from activestream.scorer.metrics import ScorerMetrics

    class Queue:
        def n_waiting(self) -> int:
            return 5

        n_leased = n_labeled = n_dropped = n_waiting

    targets: dict[str, CollectorRegistry] = {}
    for namespace, version in (("campaign-a", 3), ("campaign-b", 7)):
        QueueKeys(namespace)  # (a valid namespace)
        for scorer_no in (1, 2):
            targets[f"{namespace}-scorer{scorer_no}"] = registry = CollectorRegistry()
            scorer = ScorerMetrics.create(registry, namespace)
            scorer.model_version.set(version)
            scorer.items_scored.inc(1000)
            scorer.dead_letters.labels(source="items", reason="features").inc(2)
            scorer.consumer_lag.labels(topic=f"{namespace}.items").set(30_000)  # (its partitions: 60k in all, under the alert's 100k)
            scorer.oldest_pending_age.set(3600)
        targets[f"{namespace}-retrainer"] = registry = CollectorRegistry()
        retrainer = RetrainerMetrics.create(registry, namespace)
        retrainer.model_version.set(version)
        retrainer.models_rejected.labels(reason="held-out").inc(3)
        # Each campaign's figures: one told to stop (v3), one not; auto-accept on in both, not paused.
        retrainer.campaign.show({"stop": float(version == 3), **({"stop_stable_predictions_version": 3.0, "stop_stable_predictions_n_labels": 505.0}
                                                                 if version == 3 else {}),
                                 "auto_accept_threshold": 0.97, "auto_accept_precision_lower_bound": 0.991, "auto_accept_paused": 0.0,
                                 "n_control": 200.0, "est_accuracy": 0.9, "est_accuracy_low": 0.85, "est_accuracy_high": 0.94, "est_hours_spent": 1.5})
        targets[f"{namespace}-labeler-api"] = registry = CollectorRegistry()
        LabelingMetrics.create(registry, Queue(), namespace)
        DispatcherMetrics.create(registry, namespace).dispatched.inc(10)
    for name, registry in targets.items():
        text = generate_latest(registry).decode()
        samples = [line for line in text.splitlines() if line and not line.startswith("#")]
        assert samples and all(re.search(r'\bnamespace="campaign-[ab]"', line) for line in samples), name
        if name.endswith("-retrainer"):  # (the payoff figures too, each labelled with its campaign)
            ns = name.removesuffix("-retrainer")
            got = {(smp.name, tuple(sorted(smp.labels.items()))): smp.value for fam in text_string_to_metric_families(text) for smp in fam.samples}
            for series, labels, value in (("activestream_campaign_stop", {}, float(ns == "campaign-a")), ("activestream_campaign_hours_spent", {}, 1.5),
                                          ("activestream_campaign_auto_accept", {"figure": "paused"}, 0.0),
                                          ("activestream_campaign_estimate", {"figure": "accuracy", "bound": "low"}, 0.85)):
                assert got[(series, tuple(sorted({"namespace": ns, **labels}.items())))] == value, (name, series)
        (tmp_path / f"{name}.prom").write_text(text)
    out = subprocess.run([go, "test", "-count=1", "-run", "TestTheServicesOwnSeriesRaiseNoAlert", "-v", "."], cwd=ROOT / "deploy" / "promcheck",
                         capture_output=True, text=True, timeout=600, env={**os.environ, "PROMCHECK_EXPOSITION": str(tmp_path)})
    assert out.returncode == 0 and "--- PASS: TestTheServicesOwnSeriesRaiseNoAlert" in out.stdout, out.stdout + out.stderr


def test_grafana_shows_the_dashboard_from_the_compose_prometheus(compose: dict[str, Any]) -> None:
    import json

    import yaml

    grafana = compose["services"]["grafana"]
    mounted = mounts(grafana)
    provisioning = ROOT / mounted["/etc/grafana/provisioning"]
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    prom_port = str(compose["services"]["prometheus"]["ports"][0]).split(":")[-1]
    assert source["type"] == "prometheus" and source["url"] == f"http://prometheus:{prom_port}"
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "activestream.yml").read_text())["providers"]
    assert ROOT / mounted[provider["options"]["path"]] == DASHBOARD.parent
    assert env(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"] == f"{provider['options']['path']}/{DASHBOARD.name}"
    assert [str(p) for p in grafana["ports"]] == ["127.0.0.1:3000:3000"]
    dashboard = json.loads(DASHBOARD.read_text())
    exposed = _exposed_metrics()
    targets = [(p["title"], t) for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(targets) >= 15
    for title, target in targets:
        assert target["datasource"]["uid"] == source["uid"], title
        assert not _unknown_metrics(target["expr"], exposed), f"{title}: no service exposes {_unknown_metrics(target['expr'], exposed)}"
    shown = " ".join(t["expr"] for _, t in targets)
    for what in ("activestream_items_auto_accepted_total", "activestream_queue_depth", "activestream_oldest_pending_age_seconds",
                 "activestream_scorer_model_version", "activestream_consumer_lag"):  # throughput, queue depth and age, model lag
        assert what in shown, what


def test_the_dashboard_has_a_payoff_row_over_the_campaign_gauges() -> None:
    # Issue 20: whether labeling pays off or is done, where operators look: the live estimates with
    # their intervals, hours spent and saved, the stop signal, the auto-accept state.
    import json

    panels = json.loads(DASHBOARD.read_text())["panels"]
    rows = [p for p in panels if p["type"] == "row"]
    (payoff,) = [r for r in rows if r["title"] == "Payoff"]
    below = [p for p in panels if p["type"] != "row" and p["gridPos"]["y"] > payoff["gridPos"]["y"]
             and not any(payoff["gridPos"]["y"] < r["gridPos"]["y"] < p["gridPos"]["y"] for r in rows)]
    exprs = " ".join(t["expr"] for p in below for t in p["targets"])
    for figure in ("accuracy", "random_labels", "labels_saved", "savings_share", "hours_saved", "accuracy_at_budget"):
        assert f'activestream_campaign_estimate{{namespace=~"$namespace", figure="{figure}"' in exprs, figure
    assert "by (namespace, bound)" in exprs  # (the estimate with its interval, per campaign)
    for what in ("activestream_campaign_hours_spent", "activestream_campaign_stop{", "activestream_campaign_stop_fired_labels",
                 "activestream_campaign_auto_accept", "activestream_campaign_control_labels"):
        assert what in exprs, what
    for figure in ("threshold", "precision_lower_bound", "labels_needed", "paused", "audit_precision_lower_bound"):
        assert figure in exprs, figure
    exposed = _exposed_metrics()
    assert {"activestream_campaign_estimate", "activestream_campaign_hours_spent", "activestream_campaign_stop",
            "activestream_campaign_auto_accept"} <= exposed


def test_an_exited_container_is_alerted_with_the_replicas_compose_runs(compose: dict[str, Any]) -> None:
    # Prometheus finds the services by DNS, which drops an exited container: 'up == 0' never sees
    # it, so ActivestreamServiceMissing counts targets against the replicas compose runs.
    import yaml

    (rule,) = [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"] if r["alert"] == "ActivestreamServiceMissing"]
    expr = " ".join(rule["expr"].split())
    for service in APP_SERVICES:
        replicas = compose["services"][service].get("deploy", {}).get("replicas", 1)
        assert f'absent(up{{job="{service}"}})' in expr, service
        if replicas > 1:
            assert f'count by (job) (up{{job="{service}"}}) < {replicas}' in expr, service
