"""What the fault suite runs on: a platform of its own on a PostgreSQL and a Redis it starts itself, restarted
when a process dies (as a container's restart policy would), and batches sent by clients that retry."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import httpx
import redis

from ops.admin import create_key
from tests.conftest import SERVICE_ROLES, as_role, create_database, ensure_service_roles, free_port, settings_from
from tests.postgres_cluster import OwnPostgres, own_postgres

if TYPE_CHECKING:
    from devtools.devstack import Stack

# The marker of a poison file: the transform worker that handles it dies before committing, every time.
POISON = "poison"
# Periods shortened so twenty trials fit in minutes; FAULT_PERIODS=defaults runs the suite on the platform's
# defaults (lease 20 s, reconcile every 5 s, lost messages after 15 s, back-off 60 s), as an operator would.
SHORT_PERIODS = {
    "SDP_STAGE_HEARTBEAT_SECONDS": "1",
    "SDP_STAGE_LEASE_SECONDS": "4",
    "SDP_STAGE_RETRY_BACKOFF_SECONDS": "10",
    "SDP_RECONCILE_INTERVAL_SECONDS": "1",
    "SDP_RECONCILE_UNPUBLISHED_AFTER_SECONDS": "2",
    "SDP_RECONCILE_STUCK_AFTER_SECONDS": "5",
    "SDP_FRESHNESS_INTERVAL_SECONDS": "60",
}


class OwnRedis:
    """A Redis server of the suite's own on a free port, keeping nothing on disk: a restart loses every queue."""

    def __init__(self, work_dir: Path) -> None:
        self.port = free_port()
        self.work_dir = work_dir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=self.work_dir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()

    def crash(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.crash()


class Database:
    """Queries as the superuser of the suite's PostgreSQL; None while the server is down."""

    def __init__(self, url: str) -> None:
        self.url = url

    def fetch(self, query: str, *args: Any) -> list[asyncpg.Record] | None:
        async def run() -> list[asyncpg.Record]:
            conn = await asyncpg.connect(self.url, timeout=5)
            try:
                return list(await conn.fetch(query, *args))
            finally:
                await conn.close()

        try:
            return asyncio.run(run())
        except (TimeoutError, OSError, asyncpg.PostgresError):
            return None

    def must(self, query: str, *args: Any) -> list[asyncpg.Record]:
        deadline = time.monotonic() + 60
        while (rows := self.fetch(query, *args)) is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"the suite's PostgreSQL did not answer for 60 s: {query}")
            time.sleep(0.2)
        return rows


@dataclass
class FaultPlatform:
    stack: Stack
    postgres: OwnPostgres
    redis: OwnRedis
    db: Database
    ingest: str
    key: str
    env: dict[str, str]
    restarts: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def pid(self, process: str) -> int:
        return int(json.loads(self.stack.pid_file.read_text())[process])

    def kill(self, process: str) -> None:
        """SIGKILL a process's whole group (a worker with its Spark JVM), as the OOM killer or a lost host."""
        with self.lock:
            os.killpg(self.pid(process), signal.SIGKILL)

    def supervise(self, stop: threading.Event) -> None:
        while not stop.wait(0.3):
            with self.lock:
                self.restarts.extend(self.stack.restart_dead())


@contextmanager
def fault_platform(test_env: dict[str, str], tmp_path: Path) -> Iterator[FaultPlatform]:
    from devtools.devstack import Stack
    from devtools.settings import DevstackSettings

    own_redis = OwnRedis(tmp_path)
    own_redis.start()
    try:
        with own_postgres() as server:
            url = f"{server.url}/sdp"
            asyncio.run(ensure_service_roles(url))
            asyncio.run(create_database(url))
            run_dir = tmp_path / "run"
            ports = {"SDP_INGEST_PORT": free_port(), "SDP_API_PORT": free_port(), "SDP_FLOWER_PORT": free_port()}
            env = {
                **test_env,
                **{k: str(v) for k, v in ports.items()},
                **({} if os.environ.get("FAULT_PERIODS") == "defaults" else SHORT_PERIODS),
                "SDP_DATABASE_URL": url,
                "SDP_REDIS_URL": own_redis.url,
                "SDP_QUEUE_PREFIX": "faults-",
                "SDP_EVENTS_CHANNEL": "sdp:faults:events",
                "SDP_WORK_DIR": str(tmp_path / "work"),
                "SDP_RUN_DIR": str(run_dir),
                "SDP_API_PUBLIC_URL": f"http://127.0.0.1:{ports['SDP_API_PORT']}",
            }
            dev_settings = settings_from(
                env,
                DevstackSettings,
                flower_basic_auth="test:test",
                service_database_urls={name: as_role(url, role) for name, role in SERVICE_ROLES.items()},
            )
            stack = Stack(dev_settings, env={**env, "SDP_FAILPOINTS": f'["transform.before_commit:exit:{POISON}"]'})
            stack.up()
            platform = FaultPlatform(
                stack=stack,
                postgres=server,
                redis=own_redis,
                db=Database(url),
                ingest=f"http://127.0.0.1:{ports['SDP_INGEST_PORT']}",
                key=asyncio.run(create_key(settings_from(env), "fault-suite", ["ingest:write", "batches:read"])),
                env=env,
            )
            stop = threading.Event()
            supervisor = threading.Thread(target=platform.supervise, args=(stop,), daemon=True)
            supervisor.start()
            try:
                yield platform
            finally:
                stop.set()
                supervisor.join()
                stack.down()
    finally:
        own_redis.stop()


@dataclass
class PlannedFile:
    dataset: str
    path: Path
    rows: int
    # Sent slowly on its first attempt, so the ingest process can be killed while the body arrives.
    slow: bool = False
    idempotency_key: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def poison(self) -> bool:
        return POISON in self.path.name


@dataclass
class Sent:
    planned: PlannedFile
    batch_id: str | None = None
    accepted_at: float | None = None
    # Answers that are neither an acceptance nor a 503 (a 5xx is a bug; a 4xx would be a wrong plan).
    errors: list[str] = field(default_factory=list)
    attempts: int = 0


def slow_body(body: bytes, started: threading.Event) -> Iterator[bytes]:
    piece = 64 * 1024
    for i, offset in enumerate(range(0, len(body), piece)):
        if i == 2:
            started.set()
        yield body[offset : offset + piece]
        time.sleep(0.05)


def send(platform: FaultPlatform, sent: Sent, started: threading.Event, timeout: float = 120.0) -> None:
    """POST the file until it is accepted, retrying with the same Idempotency-Key through connection errors
    and 503s, as a client of the platform should."""
    planned = sent.planned
    body = planned.path.read_bytes()
    headers = {
        "Authorization": f"Bearer {platform.key}",
        "Content-Type": "text/csv",
        "X-File-Name": planned.path.name,
        "Idempotency-Key": planned.idempotency_key,
    }
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sent.attempts += 1
        content: bytes | Iterator[bytes] = slow_body(body, started) if planned.slow and sent.attempts == 1 else body
        if not planned.slow:
            started.set()
        try:
            answer = httpx.post(
                f"{platform.ingest}/v1/datasets/{planned.dataset}/files", content=content, headers=headers, timeout=30
            )
        except httpx.TransportError:
            time.sleep(0.3)
            continue
        if answer.status_code in (200, 202):
            sent.batch_id = answer.json()["batch_id"]
            sent.accepted_at = time.time()
            return
        if answer.status_code != 503:
            sent.errors.append(f"{answer.status_code} {answer.text[:200]}")
            if answer.status_code < 500:
                return
        time.sleep(0.3)
    sent.errors.append(f"not accepted within {timeout:.0f}s")


def wait_until(condition: Callable[[], bool], timeout: float, poll: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(poll)
    return False
