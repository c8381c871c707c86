"""Test harness: a migrated database of its own, isolated Redis queues, moto's S3 server, one Spark session
and, for end-to-end tests, the whole platform started as processes on free ports."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
import redis

from ops.admin import create_key, migrate
from shared.settings import PlatformSettings

if TYPE_CHECKING:
    from devtools.devstack import Stack

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

# The platform's processes run under the roles the deployment gives them (migration 0005's grants).
SERVICE_ROLES = {
    "ingest": "sdp_ingest",
    "api": "sdp_api",
    "transform-worker": "sdp_transform",
    "quality-worker": "sdp_quality",
    "warehouse-worker": "sdp_warehouse",
    "reconciler": "sdp_reconciler",
}

MOTO_ACCESS_KEY = "testing"
MOTO_SECRET_KEY = "testing-secret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _admin_dsn(database_url: str) -> str:
    return database_url.rsplit("/", 1)[0] + "/postgres"


async def create_database(database_url: str) -> None:
    conn = await asyncpg.connect(_admin_dsn(database_url))
    try:
        await conn.execute(f'CREATE DATABASE "{database_url.rsplit("/", 1)[1]}"')
    finally:
        await conn.close()


# Metabase's read-only role (compose/postgres/initdb), which the migrations grant the analytics schema to.
BI_ROLE = "analytics_reader"


async def ensure_service_roles(database_url: str) -> None:
    """Login roles without password (this machine's PostgreSQL trusts loopback), created once per machine:
    the services' and the BI role."""
    conn = await asyncpg.connect(_admin_dsn(database_url))
    try:
        for role in (*SERVICE_ROLES.values(), BI_ROLE):
            await conn.execute(
                f"""DO $$ BEGIN
                        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN CREATE ROLE {role} LOGIN;
                        END IF;
                    EXCEPTION WHEN duplicate_object THEN NULL;
                    END $$"""
            )
    finally:
        await conn.close()


def as_role(database_url: str, role: str) -> str:
    parts = urlsplit(database_url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, f"{role}@{host}", parts.path, parts.query, parts.fragment))


async def drop_database(database_url: str) -> None:
    conn = await asyncpg.connect(_admin_dsn(database_url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{database_url.rsplit("/", 1)[1]}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def run_id() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture(scope="session")
def base_settings() -> PlatformSettings:
    """What the machine offers (PostgreSQL server, Redis), overridable by SDP_* variables."""
    return PlatformSettings()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"s3://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(scope="session")
def test_env(
    run_id: str, base_settings: PlatformSettings, moto_server: str, tmp_path_factory: Any
) -> Iterator[dict[str, str]]:
    """SDP_* variables of the session's platform: its own database, queues, channel and bucket store (S3)."""
    server = base_settings.database_url.rsplit("/", 1)[0]
    database_url = f"{server}/sdp_test_{run_id}"
    asyncio.run(ensure_service_roles(database_url))
    asyncio.run(create_database(database_url))
    env = {
        "SDP_DATABASE_URL": database_url,
        "SDP_REDIS_URL": base_settings.redis_url,
        "SDP_QUEUE_PREFIX": f"test-{run_id}-",
        "SDP_EVENTS_CHANNEL": f"sdp:test:{run_id}:events",
        "SDP_OBJECT_STORE_URL": moto_server,
        "SDP_OBJECT_STORE_ACCESS_KEY": MOTO_ACCESS_KEY,
        "SDP_OBJECT_STORE_SECRET_KEY": MOTO_SECRET_KEY,
        "SDP_WORK_DIR": str(tmp_path_factory.mktemp("work")),
        "SDP_LOG_LEVEL": "INFO",
        "SPARK_LOCAL_IP": "127.0.0.1",
        # Most API tests write the analytics tables themselves, not through a load that moves the KPI cache's
        # generation: their KPIs are read uncached. The cache's own tests and the platform turn it on.
        "SDP_API_KPI_CACHE_TTL_SECONDS": "0",
        # A worker started outside the platform fixture serves no metrics unless its test asks for a port.
        "SDP_TRANSFORM_METRICS_PORT": "0",
        "SDP_QUALITY_METRICS_PORT": "0",
        "SDP_WAREHOUSE_METRICS_PORT": "0",
    }
    migrate(settings_from(env), create_database=False)
    yield env
    asyncio.run(drop_database(database_url))
    client = redis.Redis.from_url(base_settings.redis_url)
    for key in client.scan_iter(match=f"*test-{run_id}-*"):
        client.delete(key)
    client.close()


def settings_from(env: dict[str, str], cls: type[PlatformSettings] = PlatformSettings, **extra: Any) -> Any:
    """A settings object of ``cls`` built from SDP_* variables without touching os.environ."""
    fields = {k.removeprefix("SDP_").lower(): v for k, v in env.items() if k.startswith("SDP_")}
    return cls(**fields, **extra)


@pytest.fixture(scope="session")
def settings(test_env: dict[str, str]) -> PlatformSettings:
    return settings_from(test_env)


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """One SparkSession for the whole test session (a session per test would cost seconds each)."""
    from services.transform.settings import TransformSettings
    from services.transform.spark import get_spark

    session = get_spark(TransformSettings(spark_driver_memory="1g"))
    yield session
    # Stopped here, while pytest still owns the log streams py4j writes to when it shuts down.
    session.stop()
    # Connections of other threads are closed by the garbage collector at exit, after pytest closed the
    # streams; their INFO line would then print a logging error instead.
    logging.getLogger("py4j").setLevel(logging.WARNING)


@dataclass
class Platform:
    ingest: str
    api: str
    flower: str
    env: dict[str, str]
    settings: PlatformSettings
    run_dir: Path
    stack: Stack
    # The quality config the quality worker, API and reconciler read: a copy a test may edit (and restores).
    quality_config: Path

    def pid(self, process: str) -> int:
        """The PID (and process group) of one of the platform's processes, e.g. ``transform-worker``."""
        return int(json.loads((self.run_dir / "pids.json").read_text())[process])

    def log(self, process: str) -> Path:
        return self.run_dir / "logs" / f"{process}.log"

    def stop(self, process: str) -> None:
        self.stack.stop(process)

    def start(self, process: str, extra_env: dict[str, str] | None = None, *, wait: bool = True) -> int:
        """Start a stopped (or killed) process again, e.g. a worker with a failpoint set; returns its PID."""
        return self.stack.start(process, extra_env, wait=wait)

    def key(self, *scopes: str) -> str:
        return asyncio.run(create_key(self.settings, f"test-{'-'.join(scopes)}", list(scopes)))

    def client(self, *scopes: str) -> httpx.Client:
        return httpx.Client(headers={"Authorization": f"Bearer {self.key(*scopes)}"}, timeout=60.0)


@pytest.fixture(scope="session")
def platform(test_env: dict[str, str], tmp_path_factory: Any) -> Iterator[Platform]:
    """The whole platform as local processes (ingest, api, three workers, Flower) on free ports."""
    from devtools.devstack import Stack
    from devtools.settings import DevstackSettings

    run_dir = tmp_path_factory.mktemp("run")
    quality_config = run_dir / "checks.toml"
    quality_config.write_bytes(PlatformSettings().quality_config.read_bytes())
    ports = {
        name: free_port()
        for name in (
            "SDP_INGEST_PORT",
            "SDP_API_PORT",
            "SDP_FLOWER_PORT",
            "SDP_TRANSFORM_METRICS_PORT",
            "SDP_QUALITY_METRICS_PORT",
            "SDP_WAREHOUSE_METRICS_PORT",
        )
    }
    env = {
        **test_env,
        **{k: str(v) for k, v in ports.items()},
        "SDP_RUN_DIR": str(run_dir),
        "SDP_API_PUBLIC_URL": f"http://127.0.0.1:{ports['SDP_API_PORT']}",
        # Fault tests wait for the reconciler: keep its periods short.
        "SDP_RECONCILE_INTERVAL_SECONDS": "1",
        "SDP_RECONCILE_UNPUBLISHED_AFTER_SECONDS": "2",
        "SDP_RECONCILE_STUCK_AFTER_SECONDS": "10",
        "SDP_STAGE_HEARTBEAT_SECONDS": "1",
        "SDP_STAGE_LEASE_SECONDS": "6",
        "SDP_FRESHNESS_INTERVAL_SECONDS": "1",
        "SDP_QUALITY_CONFIG": str(quality_config),
        # The platform's KPIs change only by loads, which move the cache's generation.
        "SDP_API_KPI_CACHE_TTL_SECONDS": "300",
    }
    dev_settings = settings_from(
        env,
        DevstackSettings,
        flower_basic_auth="test:test",
        service_database_urls={
            name: as_role(test_env["SDP_DATABASE_URL"], role) for name, role in SERVICE_ROLES.items()
        },
    )
    stack = Stack(dev_settings, env=env)
    stack.up()
    try:
        yield Platform(
            ingest=f"http://127.0.0.1:{dev_settings.ingest_port}",
            api=f"http://127.0.0.1:{dev_settings.api_port}",
            flower=f"http://127.0.0.1:{dev_settings.flower_port}",
            env=env,
            settings=settings_from(test_env),
            run_dir=run_dir,
            stack=stack,
            quality_config=quality_config,
        )
    finally:
        stack.down()
