"""Crash safety: nothing is lost between "202 Accepted" and the pipeline, and nothing runs twice."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis

from devtools.sampledata import GeneratorConfig, write_sales
from shared.bus import create_celery
from shared.failpoints import EXIT_CODE
from tests.conftest import Platform, free_port
from tests.e2e.test_sales_pipeline import wait_terminal

pytestmark = pytest.mark.e2e


async def _fetch(database_url: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


def fetch(platform: Platform, query: str, *args: Any) -> list[asyncpg.Record]:
    return asyncio.run(_fetch(platform.settings.database_url, query, *args))


def assert_ran_once(platform: Platform, batch_id: str) -> None:
    events = fetch(platform, "SELECT type FROM ops.batch_events WHERE batch_id = $1 ORDER BY created_at", batch_id)
    assert [e["type"] for e in events] == ["batch.received", "batch.staged", "batch.validated", "batch.loaded"]
    stages = fetch(platform, "SELECT stage, attempts FROM ops.batch_stages WHERE batch_id = $1", batch_id)
    assert {s["stage"]: s["attempts"] for s in stages} == {"ingest": 1, "transform": 1, "quality": 1, "warehouse": 1}


def start_ingest(platform: Platform, extra_env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, **platform.env, **extra_env}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "services.ingest.app:create_app", "--factory", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError("the ingest process did not start")
        time.sleep(0.2)


def test_ingest_killed_between_commit_and_publish(platform: Platform, tmp_path: Path) -> None:
    path = write_sales(GeneratorConfig(seed=21, sales=300, dirty_rate=0.0), tmp_path / "sales.csv")
    body = path.read_bytes()
    proc, url = start_ingest(platform, {"SDP_FAILPOINTS": '["ingest.after_commit"]'})
    try:
        key = platform.key("ingest:write")
        with pytest.raises(httpx.HTTPError):
            httpx.post(
                f"{url}/v1/datasets/sales/files",
                content=body,
                headers={"Authorization": f"Bearer {key}", "Content-Type": "text/csv"},
                timeout=30,
            )
        assert proc.wait(timeout=30) == EXIT_CODE
    finally:
        if proc.poll() is None:
            proc.kill()
    rows = fetch(platform, "SELECT batch_id::text FROM ops.batches WHERE sha256 = $1", hashlib.sha256(body).hexdigest())
    assert len(rows) == 1, "the batch was committed before the process died"
    batch_id = rows[0]["batch_id"]
    with platform.client("batches:read") as client:
        assert wait_terminal(client, platform, batch_id, timeout=120)["status"] == "loaded"
    assert_ran_once(platform, batch_id)


def test_redis_losing_the_queued_event_after_a_202(platform: Platform, tmp_path: Path) -> None:
    path = write_sales(GeneratorConfig(seed=22, sales=300, dirty_rate=0.0), tmp_path / "sales.csv")
    worker = platform.pid("transform-worker")
    broker = redis.Redis.from_url(platform.settings.redis_url)
    queue = platform.settings.queue("transform")
    os.killpg(worker, signal.SIGSTOP)
    try:
        # The stopped worker still has a blocking pop pending at Redis, which would take the next message
        # into its socket; a decoy message (an invalid payload the task refuses) satisfies that pop first,
        # so the batch's event stays in the queue, where losing it is what a Redis restart does.
        create_celery(platform.settings, "decoy").send_task("transform.stage_batch", args=[{}], queue=queue)
        deadline = time.monotonic() + 10
        while broker.llen(queue) and time.monotonic() < deadline:
            time.sleep(0.1)
        with platform.client("ingest:write", "batches:read") as client:
            accepted = client.post(
                f"{platform.ingest}/v1/datasets/sales/files",
                content=path.read_bytes(),
                headers={"Content-Type": "text/csv"},
            )
            assert accepted.status_code == 202, accepted.text
            batch_id = accepted.json()["batch_id"]
            assert broker.llen(queue) == 1, "the event waits in the transform queue"
            broker.delete(queue)
    finally:
        os.killpg(worker, signal.SIGCONT)
        broker.close()
    with platform.client("batches:read") as client:
        assert wait_terminal(client, platform, batch_id, timeout=120)["status"] == "loaded"
    assert_ran_once(platform, batch_id)
