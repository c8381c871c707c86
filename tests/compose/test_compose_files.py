"""Consistency of compose/ and .env.example, checked without a Docker engine.

The compose file is loaded with PyYAML (anchors and merge keys resolved as Compose resolves them) and
its ${VAR} references are resolved against .env.example, so these tests see what Compose would see
with an .env copied from the example. The two setup scripts run against stub `mc` and `psql` commands.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from dotenv import dotenv_values

from devtools.settings import DevstackSettings
from ops.metabase.provision import MetabaseSettings
from services.api.settings import ApiSettings
from services.ingest.settings import IngestSettings
from services.transform.settings import TransformSettings
from shared.settings import PlatformSettings
from tests.conftest import SERVICE_ROLES

REPO = Path(__file__).resolve().parents[2]
COMPOSE_DIR = REPO / "compose"
COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yml"
DOCKERFILE = COMPOSE_DIR / "Dockerfile"
ENV_EXAMPLE = REPO / ".env.example"
MINIO_INIT = COMPOSE_DIR / "minio" / "minio-init.sh"
ROLES_SCRIPT = COMPOSE_DIR / "postgres" / "initdb" / "01-roles.sh"

REQUIRED_BUCKETS = {"raw-data", "processed-data", "analytics", "backups"}
ONE_SHOTS = {"minio-init", "migrate", "metabase-provision"}
PYTHON_LONG_RUNNING = {"ingest", "api", "transform-worker", "quality-worker", "warehouse-worker", "flower", "backup"}

# The process commands the platform's services are started with (fixed by the project).
EXPECTED_COMMANDS = {
    "migrate": "python -m ops.admin migrate",
    "reconciler": "python -m ops.reconciler",
    "ingest": "uvicorn services.ingest.app:create_app --factory --host 0.0.0.0 --port 8001",
    "api": "uvicorn services.api.app:create_app --factory --host 0.0.0.0 --port 8000",
    "transform-worker": (
        "celery -A services.transform.worker:app worker -Q transform -n transform@%h --pool solo --loglevel INFO"
    ),
    "quality-worker": (
        "celery -A services.quality.worker:app worker -Q quality -n quality@%h --concurrency 2 --loglevel INFO"
    ),
    "warehouse-worker": (
        "celery -A services.warehouse.worker:app worker -Q warehouse -n warehouse@%h --concurrency 1 --loglevel INFO"
    ),
    "flower": "celery -A shared.celery_app:app flower --port=5555",
    "backup": "python -m ops.admin backup",
    "metabase-provision": "python -m ops.metabase provision",
}

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}; `$${` is an escape.
INTERPOLATION = re.compile(r"(?<!\$)\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")
SECRET_KEY = re.compile(r"PASS|SECRET|TOKEN|CREDENTIAL|AUTH|ACCESS_KEY|PRIVATE", re.IGNORECASE)
URL_PASSWORD = re.compile(r"://[^/\s:@]+:(?P<password>\$\{[^}]*\}|[^@\s]+)@")
ENV_LINE = re.compile(r"^#?\s*(?P<name>[A-Z_][A-Z0-9_]*)=", re.MULTILINE)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


@pytest.fixture(scope="module")
def example_env() -> dict[str, str]:
    return {name: value or "" for name, value in dotenv_values(ENV_EXAMPLE).items()}


def interpolate(value: str, env: dict[str, str]) -> str:
    """Resolve ${...} as Compose does, with `env` as the .env file."""

    def replace(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        current = env.get(name)
        if op in (":-", "-"):
            return current if current or (op == "-" and current is not None) else arg
        if op in (":?", "?"):
            if not current and not (op == "?" and current is not None):
                raise AssertionError(f"{name} is required: {arg}")
            return current or ""
        return current or ""

    return INTERPOLATION.sub(replace, value).replace("$$", "$")


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    assert isinstance(env, dict), "environments are written as mappings"
    return {key: "" if value is None else str(value) for key, value in env.items()}


def command_line(service: dict[str, Any]) -> str:
    command = service.get("command", "")
    return command if isinstance(command, str) else " ".join(str(part) for part in command)


def scalars(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every scalar of the document with a dotted path to it."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from scalars(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from scalars(value, f"{path}[{index}]")
    elif node is not None:
        yield path, str(node)


def built_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: service for name, service in services.items() if "build" in service}


def long_running(services: dict[str, dict[str, Any]]) -> set[str]:
    return {name for name, service in services.items() if service.get("restart") != "no"}


def make_stub(directory: Path, name: str, script: str) -> None:
    path = directory / name
    path.write_text(script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


# --- structure --------------------------------------------------------------------------------------


def test_depends_on_refers_to_defined_services(services: dict[str, dict[str, Any]]) -> None:
    checked = 0
    for name, service in services.items():
        for target, spec in (service.get("depends_on") or {}).items():
            checked += 1
            assert target in services, f"{name} depends on undefined service {target}"
            condition = spec["condition"]
            if condition == "service_completed_successfully":
                assert target in ONE_SHOTS, f"{name} waits for {target} to exit, but it keeps running"
            else:
                assert condition == "service_healthy", f"{name} -> {target}: {condition}"
                assert "healthcheck" in services[target], f"{name} waits for {target}, which has no healthcheck"
    assert checked > 0


def test_one_shots_run_once_and_gate_the_platform(services: dict[str, dict[str, Any]]) -> None:
    for name in ONE_SHOTS:
        assert services[name].get("restart") == "no", f"{name} would be restarted after it exits"
    assert services["migrate"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "minio-init": {"condition": "service_completed_successfully"},
    }
    for name, service in services.items():
        if "SDP_DATABASE_URL" in environment(service) and name != "migrate":
            assert service["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, name


def test_long_running_services_have_healthchecks(services: dict[str, dict[str, Any]]) -> None:
    running = long_running(services)
    assert running >= PYTHON_LONG_RUNNING
    for name in running:
        service = services[name]
        assert service["restart"] == "unless-stopped", name
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no healthcheck"


def test_python_services_run_the_project_commands(services: dict[str, dict[str, Any]]) -> None:
    for name, expected in EXPECTED_COMMANDS.items():
        assert expected in command_line(services[name]), name
    assert set(built_services(services)) == set(EXPECTED_COMMANDS)


def test_worker_healthchecks_ping_their_own_node(services: dict[str, dict[str, Any]]) -> None:
    workers = [name for name in EXPECTED_COMMANDS if name.endswith("-worker")]
    for name in workers:
        node = re.search(r"-A (?P<app>\S+) worker -Q \S+ -n (?P<node>\w+)@%h", command_line(services[name]))
        assert node, name
        kind, test = services[name]["healthcheck"]["test"]
        # $HOSTNAME is expanded by a shell inside the container; `$$` keeps Compose off it.
        assert kind == "CMD-SHELL", name
        assert f"celery -A {node['app']} inspect ping -d {node['node']}@$$HOSTNAME" in test, name


def test_python_services_share_the_common_environment(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    broker_env, platform_env = compose["x-sdp-broker-env"], compose["x-sdp-env"]
    assert set(broker_env) < set(platform_env)
    for name, service in built_services(services).items():
        if name == "metabase-provision":
            continue  # talks to Metabase only: test_metabase_provisioning_runs_once_metabase_is_healthy
        env = environment(service)
        common = broker_env if name == "flower" else platform_env
        # Every long-running service logs in as its own role; only the migrations use the owner's.
        own_role = name in SERVICE_ROLES
        expected = {key: str(value) for key, value in common.items() if not (own_role and key == "SDP_DATABASE_URL")}
        assert {key: env.get(key) for key in expected} == expected, name
        if own_role:
            assert env["SDP_DATABASE_URL"].startswith(f"postgresql://{SERVICE_ROLES[name]}:$"), name
    assert environment(services["transform-worker"])["SDP_SPARK_MASTER"] == "spark://spark-master:7077"


def test_metabase_provisioning_runs_once_metabase_is_healthy(
    services: dict[str, dict[str, Any]], example_env: dict[str, str]
) -> None:
    service = services["metabase-provision"]
    assert service["depends_on"] == {
        "metabase": {"condition": "service_healthy"},
        "migrate": {"condition": "service_completed_successfully"},
    }
    assert services["metabase"]["image"] == "metabase/metabase:v0.56.4"
    env = {key: interpolate(value, example_env) for key, value in environment(service).items()}
    # Metabase's address and the credentials it uses, nothing of the platform's database, broker or store.
    assert not {key for key in env if key.startswith(("SDP_DATABASE", "SDP_REDIS", "SDP_OBJECT_STORE"))}
    settings = MetabaseSettings.model_validate({key.removeprefix("SDP_").lower(): v for key, v in env.items()})
    assert settings.metabase_url == "http://metabase:3000"
    assert (settings.metabase_warehouse_host, settings.metabase_warehouse_port) == ("postgres", 5432)
    assert settings.metabase_warehouse_database == "salesdp"
    assert settings.analytics_reader_password.get_secret_value() == example_env["ANALYTICS_READER_PASSWORD"]
    assert settings.metabase_admin_email == example_env["METABASE_ADMIN_EMAIL"]
    assert settings.metabase_api_key.get_secret_value() == ""


def test_workers_serve_metrics_on_their_own_ports(
    services: dict[str, dict[str, Any]], example_env: dict[str, str]
) -> None:
    ports = {}
    for name in ("transform-worker", "quality-worker", "warehouse-worker"):
        service = name.removesuffix("-worker")
        env = {key: interpolate(value, example_env) for key, value in environment(services[name]).items()}
        settings = PlatformSettings.model_validate({key.removeprefix("SDP_").lower(): v for key, v in env.items()})
        # Reachable from Prometheus's container, on the port the code defaults to (and .env.example shows).
        assert settings.worker_metrics_address == "0.0.0.0", name
        assert settings.metrics_port(service) == PlatformSettings.model_fields[f"{service}_metrics_port"].default
        ports[name] = settings.metrics_port(service)
        # Not published on the host: only Prometheus scrapes them.
        assert not [p for p in services[name].get("ports", []) if str(p).endswith(f":{ports[name]}")], name
    assert len(set(ports.values())) == len(ports)


def test_postgres_command_carries_the_tuning_flags(services: dict[str, dict[str, Any]]) -> None:
    command = command_line(services["postgres"])
    assert services["postgres"]["image"].startswith("postgres:15")
    for flag in ("shared_buffers=64MB", "max_connections=50", "work_mem=4MB"):
        assert f"-c {flag}" in command


def test_published_ports_do_not_collide(services: dict[str, dict[str, Any]]) -> None:
    host_ports = [str(port).rsplit(":", 2)[-2] for service in services.values() for port in service.get("ports", [])]
    assert len(host_ports) == len(set(host_ports)), host_ports
    assert {"8000", "8001", "5555", "8080", "7077", "3000", "9000", "9001", "8088", "9090"} <= set(host_ports)


def test_dockerfile_has_the_targets_compose_builds(services: dict[str, dict[str, Any]]) -> None:
    dockerfile = DOCKERFILE.read_text()
    stages = set(re.findall(r"^FROM \S+ AS (\S+)$", dockerfile, re.MULTILINE))
    targets = {service["build"]["target"] for service in built_services(services).values()}
    assert targets == {"base", "transform", "backup"}
    assert targets <= stages
    assert re.search(r"python:3\.11-slim", dockerfile)
    assert "openjdk-17-jre-headless" in dockerfile and "JAVA_HOME" in dockerfile
    # pg_dump must be of the server's major version (postgres:15).
    assert "postgresql-client-15" in dockerfile
    assert re.search(r"^USER salesdp$", dockerfile, re.MULTILINE)
    assert not re.search(r"^(ENV|ARG) .*(PASSWORD|SECRET)", dockerfile, re.MULTILINE | re.IGNORECASE)


def test_the_image_holds_every_package_compose_runs(services: dict[str, dict[str, Any]]) -> None:
    copied = set(re.findall(r"^COPY (\w+) \./\1$", DOCKERFILE.read_text(), re.MULTILINE))
    modules = re.compile(r"(?:python -m|-A|uvicorn) (?P<package>\w+)\.")
    for name, service in built_services(services).items():
        packages = {match["package"] for match in modules.finditer(command_line(service))}
        assert packages and packages <= copied, (name, packages, copied)


# --- settings and secrets ---------------------------------------------------------------------------


def test_no_literal_secret_in_the_compose_file(compose: dict[str, Any]) -> None:
    checked = 0
    for path, value in scalars(compose):
        key = path.rsplit(".", 1)[-1]
        if SECRET_KEY.search(key) and not key.endswith("_POOL_SIZE"):
            checked += 1
            assert INTERPOLATION.fullmatch(value), f"{path} is a literal, not a ${{...}} reference"
        for match in URL_PASSWORD.finditer(value):
            checked += 1
            assert INTERPOLATION.fullmatch(match["password"]), f"{path} has a password in its URL"
    assert checked >= 10


def references(compose: dict[str, Any]) -> Iterator[re.Match[str]]:
    """The ${...} references of the document (comments are not interpolated, so they do not count)."""
    for _, value in scalars(compose):
        yield from INTERPOLATION.finditer(value)


def test_required_secrets_fail_when_missing(compose: dict[str, Any]) -> None:
    required = {m["name"] for m in references(compose) if m["op"] == ":?"}
    assert required == {
        "POSTGRES_PASSWORD",
        "POSTGRES_APP_PASSWORD",
        "ANALYTICS_READER_PASSWORD",
        "METABASE_DB_PASSWORD",
        "AIRFLOW_DB_PASSWORD",
        "MINIO_ROOT_USER",
        "MINIO_ROOT_PASSWORD",
        "MINIO_APP_ACCESS_KEY",
        "MINIO_APP_SECRET_KEY",
        "FLOWER_BASIC_AUTH",
        "METABASE_ADMIN_EMAIL",
        "METABASE_ADMIN_PASSWORD",
        *(f"{service}_DB_PASSWORD" for service in ("INGEST", "API", "TRANSFORM", "QUALITY", "WAREHOUSE", "RECONCILER")),
    }
    with pytest.raises(AssertionError, match="POSTGRES_APP_PASSWORD is required"):
        interpolate(compose["x-sdp-env"]["SDP_DATABASE_URL"], {})


def test_every_variable_compose_uses_is_in_env_example(compose: dict[str, Any]) -> None:
    documented = set(ENV_LINE.findall(ENV_EXAMPLE.read_text()))
    referenced = {m["name"] for m in references(compose)}
    sdp_keys = {key for path, _ in scalars(compose) if (key := path.rsplit(".", 1)[-1]).startswith("SDP_")}
    assert "SDP_DATABASE_URL" in sdp_keys and "SDP_SPARK_MASTER" in sdp_keys
    assert not (referenced - documented), f"missing from .env.example: {sorted(referenced - documented)}"
    assert not (sdp_keys - documented), f"missing from .env.example: {sorted(sdp_keys - documented)}"


def test_env_example_resolves_the_compose_file(compose: dict[str, Any], example_env: dict[str, str]) -> None:
    url = interpolate(compose["x-sdp-env"]["SDP_DATABASE_URL"], example_env)
    assert url == f"postgresql://salesdp:{example_env['POSTGRES_APP_PASSWORD']}@postgres:5432/salesdp"
    spark_image = interpolate(compose["services"]["spark-master"]["image"], example_env)
    assert spark_image == f"apache/spark:{example_env['SPARK_VERSION']}-python3"


def test_env_example_shows_the_code_defaults(example_env: dict[str, str]) -> None:
    classes = (PlatformSettings, ApiSettings, IngestSettings, TransformSettings, DevstackSettings, MetabaseSettings)
    sdp_values = {name: value for name, value in example_env.items() if name.startswith("SDP_")}
    assert len(sdp_values) >= 20
    for name, raw in sdp_values.items():
        field = name.removeprefix("SDP_").lower()
        owner = next((cls for cls in classes if field in cls.model_fields), None)
        assert owner is not None, f"{name} is not a setting of the platform"
        parsed = owner.model_validate({field: raw})
        assert getattr(parsed, field) == owner.model_fields[field].default, name


# --- setup scripts ----------------------------------------------------------------------------------


def run_minio_init(tmp_path: Path, env: dict[str, str], user_info: str) -> list[str]:
    log = tmp_path / "mc.log"
    log.unlink(missing_ok=True)
    make_stub(
        tmp_path,
        "mc",
        f'#!/bin/sh\necho "$*" >> "{log}"\n'
        f'case "$*" in "admin user info"*) echo "{user_info}" ;; "ilm rule rm"*) exit 1 ;; esac\n',
    )
    sh = shutil.which("sh")
    assert sh is not None
    subprocess.run(
        [sh, str(MINIO_INIT)],
        env={"PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}", **env},
        check=True,
        capture_output=True,
    )
    return log.read_text().splitlines()


def test_minio_init_creates_the_buckets_with_versioning_and_retention(
    tmp_path: Path, services: dict[str, dict[str, Any]], example_env: dict[str, str]
) -> None:
    service = services["minio-init"]
    # The bucket names as .env.example sets them, and as the compose defaults set them without it.
    compose_only = {name: value for name, value in example_env.items() if not name.startswith("SDP_")}
    for source in (example_env, compose_only):
        env = {key: interpolate(value, source) for key, value in environment(service).items()}
        assert {env[f"BUCKET_{kind}"] for kind in ("RAW", "PROCESSED", "ANALYTICS", "BACKUPS")} == REQUIRED_BUCKETS
    assert service["depends_on"] == {"minio": {"condition": "service_healthy"}}

    calls = run_minio_init(tmp_path, env, user_info="PolicyName: ")
    for bucket in REQUIRED_BUCKETS:
        assert f"mb --ignore-existing local/{bucket}" in calls
        assert f"version enable local/{bucket}" in calls
    assert "ilm rule add --expire-days 90 --noncurrent-expire-days 7 local/raw-data" in calls
    assert "ilm rule add --expire-days 30 --noncurrent-expire-days 7 local/backups" in calls
    assert len([call for call in calls if call.startswith("ilm rule add")]) == 2
    app_user = env["MINIO_APP_ACCESS_KEY"]
    assert f"admin policy attach local readwrite --user {app_user}" in calls

    # A second run finds the policy attached and does not attach it again (that is an error in MinIO).
    again = run_minio_init(tmp_path, env, user_info="PolicyName: readwrite")
    assert not [call for call in again if call.startswith("admin policy attach")]


def test_roles_script_creates_databases_and_roles_without_literal_passwords(tmp_path: Path) -> None:
    bash = shutil.which("bash")
    assert bash is not None
    captured = tmp_path / "psql.in"
    make_stub(tmp_path, "psql", f'#!/bin/sh\necho "ARGS $*" > "{captured}"\ncat >> "{captured}"\n')
    passwords = {
        "POSTGRES_APP_PASSWORD": "app-secret-1",
        "METABASE_DB_PASSWORD": "mb-secret-2",
        "AIRFLOW_DB_PASSWORD": "af-secret-4",
        "ANALYTICS_READER_PASSWORD": "reader-secret-3",
        **{f"{role.upper()}_DB_PASSWORD": f"{role}-secret" for role in ("ingest", "api", "transform", "quality")},
        "WAREHOUSE_DB_PASSWORD": "warehouse-secret",
        "RECONCILER_DB_PASSWORD": "reconciler-secret",
    }
    env = {"PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}", "POSTGRES_USER": "postgres", **passwords}
    subprocess.run([bash, str(ROLES_SCRIPT)], env=env, check=True, capture_output=True)

    sent = captured.read_text()
    assert "ON_ERROR_STOP=1" in sent.splitlines()[0]
    for statement in (
        "CREATE ROLE salesdp LOGIN PASSWORD :'app_password';",
        "CREATE DATABASE salesdp OWNER salesdp;",
        "CREATE ROLE metabase LOGIN PASSWORD :'metabase_password';",
        "CREATE DATABASE metabase OWNER metabase;",
        "CREATE ROLE airflow LOGIN PASSWORD :'airflow_password';",
        "CREATE DATABASE airflow OWNER airflow;",
        "CREATE ROLE analytics_reader LOGIN PASSWORD :'reader_password';",
        "GRANT CONNECT ON DATABASE salesdp TO analytics_reader;",
        *(f"CREATE ROLE {role} LOGIN PASSWORD" for role in SERVICE_ROLES.values()),
    ):
        assert statement in sent
    for variable in passwords:
        assert re.search(rf"^\\getenv \w+ {variable}$", sent, re.MULTILINE), variable
    assert not [secret for secret in passwords.values() if secret in sent + ROLES_SCRIPT.read_text()]

    del env["ANALYTICS_READER_PASSWORD"]
    missing = subprocess.run([bash, str(ROLES_SCRIPT)], env=env, capture_output=True, text=True)
    assert missing.returncode != 0 and "ANALYTICS_READER_PASSWORD must be set" in missing.stderr


def test_transform_worker_shell_command_is_valid_sh(services: dict[str, dict[str, Any]]) -> None:
    shell, flags, script = services["transform-worker"]["command"]
    assert (shell, flags) == ("sh", "-ec")
    unescaped = script.replace("$$", "$")
    assert "export SDP_SPARK_LOCAL_IP" in unescaped
    subprocess.run(["sh", "-n", "-c", unescaped], check=True)
