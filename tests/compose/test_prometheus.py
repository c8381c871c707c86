"""compose/prometheus: the config and alert rules pass promtool (and the rules' unit tests), every metric a
rule names is in the exposition of the running services, and the scrape targets are compose's services."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from services.api.app import create_app as create_api
from services.api.settings import ApiSettings
from services.ingest.app import create_app as create_ingest
from services.ingest.settings import IngestSettings
from shared.bus import create_celery
from tests.compose.test_compose_files import COMPOSE_FILE, command_line, environment
from tests.conftest import settings_from
from tests.http_server import serve
from tests.shared.test_worker_metrics import running_worker

PROMETHEUS_DIR = COMPOSE_FILE.parent / "prometheus"
CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULES = PROMETHEUS_DIR / "alerts.yml"
RULE_TESTS = PROMETHEUS_DIR / "alerts.test.yml"
REQUIRED_ALERTS = {"BatchQuarantined", "BatchFailed", "BatchStuck", "FreshnessBreach", "QueueBackingUp", "WorkerDown"}
WORKERS = {"transform-worker": "TRANSFORM", "quality-worker": "QUALITY", "warehouse-worker": "WAREHOUSE"}
# Series Prometheus makes itself for every target.
SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "and", "or", "unless", "bool"}
# Suffixes under which the exposition writes a counter's or a histogram's samples.
SAMPLE_SUFFIXES = ("_total", "_bucket", "_sum", "_count", "_created")


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (strings, label matchers and ranges taken out first)."""
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", bare)
    names = set()
    for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)(?!\w)\s*(\()?", bare):
        name, call = match.group(1), match.group(2)
        if not call and name not in PROMQL_WORDS and not re.fullmatch(r"\d+[smhdwy]", name):
            names.add(name)
    return names


def exposed_names(text: str) -> set[str]:
    """Every name the exposition declares (``# TYPE``, also for families without samples yet), with the names
    of their samples."""
    names = set()
    for declared in re.findall(r"^# TYPE (\S+) \S+$", text, re.MULTILINE):
        names.add(declared)
        names.update(f"{declared}{suffix}" for suffix in SAMPLE_SUFFIXES)
    return names


def test_metric_names_reads_promql() -> None:
    expr = 'increase(sdp_a_total{job=~"x|y"}[15m]) > 0 or absent(up{job="w"}) - sdp_b offset 15m'
    assert metric_names(expr) == {"sdp_a_total", "up", "sdp_b"}


def test_the_rules_cover_the_operations_alerts() -> None:
    found = {rule["alert"] for rule in rules()}
    assert found >= REQUIRED_ALERTS
    for rule in rules():
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed (Debian: prometheus)")
def test_promtool_checks_the_config_and_runs_the_rule_tests() -> None:
    promtool = shutil.which("promtool")
    assert promtool is not None
    for args in (["check", "config", CONFIG.name], ["check", "rules", RULES.name], ["test", "rules", RULE_TESTS.name]):
        result = subprocess.run([promtool, *args], cwd=PROMETHEUS_DIR, capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"promtool {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    tested = set(re.findall(r"alertname: (\w+)", RULE_TESTS.read_text()))
    assert tested == {rule["alert"] for rule in rules()}, "every alert has a unit test"


def test_every_metric_the_rules_name_is_exposed(test_env: dict[str, str], tmp_path: Path) -> None:
    expositions = []
    with serve(create_api(settings_from(test_env, ApiSettings))) as api:
        expositions.append(httpx.get(f"{api}/metrics", timeout=30).raise_for_status().text)
    with serve(create_ingest(settings_from(test_env, IngestSettings))) as ingest:
        expositions.append(httpx.get(f"{ingest}/metrics", timeout=30).raise_for_status().text)
    with running_worker(test_env, tmp_path, "solo") as (prefix, worker):
        # A worker's multiprocess files hold only what it has counted: a task that raises gives every family.
        settings = settings_from({**test_env, "SDP_QUEUE_PREFIX": prefix})
        create_celery(settings, "rules-test").send_task(
            "quality.check_batch", args=[{"type": "nonsense"}], queue=settings.queue("quality")
        )
        deadline = time.monotonic() + 30
        while "sdp_worker_task_failures_total{" not in (text := httpx.get(worker, timeout=30).text):
            assert time.monotonic() < deadline, text
            time.sleep(0.3)
        expositions.append(text)
    exposed = set().union(*(exposed_names(text) for text in expositions)) | SYNTHETIC
    assert {"sdp_pipeline_batches", "sdp_worker_task_failures_total", "sdp_ingest_uploads_total"} <= exposed
    for rule in rules():
        missing = metric_names(rule["expr"]) - exposed
        assert not missing, f"{rule['alert']} names {missing}, which no service exposes"


def test_scrape_targets_are_the_compose_services() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    compose = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    assert config["rule_files"] == [RULES.name]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert {"ingest", "api", *WORKERS} <= set(jobs)
    for name in ("ingest", "api"):
        [target] = jobs[name]["static_configs"][0]["targets"]
        host, port = target.split(":")
        assert host == name and f"--port {port}" in command_line(compose[name]), name
    for name, setting in WORKERS.items():
        [sd] = jobs[name]["dns_sd_configs"]
        env = environment(compose[name])
        # Every replica is found by the service's DNS name, on the port its worker serves.
        assert sd["names"] == [name] and sd["type"] == "A", name
        assert env[f"SDP_{setting}_METRICS_PORT"] == str(sd["port"]), name
        assert env["SDP_WORKER_METRICS_ADDRESS"] == "0.0.0.0", name
    prometheus = compose["prometheus"]
    assert re.fullmatch(r"prom/prometheus:v\d+\.\d+\.\d+", prometheus["image"])
    assert "./prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
