"""A real Celery worker, prefork and solo, serves its tasks' counts, durations and failures on its own port."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared.bus import create_celery
from shared.datasets import Dataset
from shared.events import BatchStaged, RowCounts
from shared.settings import PlatformSettings
from tests.conftest import free_port, settings_from
from tests.shared.test_worker import insert_batch

TASK = "quality.check_batch"


async def _insert_batch(database_url: str, batch_id: uuid.UUID) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await insert_batch(conn, batch_id)
    finally:
        await conn.close()


def samples(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = httpx.get(url, timeout=5).raise_for_status().text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


@contextmanager
def running_worker(test_env: dict[str, str], tmp_path: Path, pool: str) -> Iterator[tuple[str, str]]:
    """A quality worker of its own queue (prefork with one child, or solo): its queue prefix and metrics URL."""
    prefix = f"{test_env['SDP_QUEUE_PREFIX']}wm-{uuid.uuid4().hex[:8]}-"
    port = free_port()
    env = {
        **os.environ,
        **test_env,
        "SDP_QUEUE_PREFIX": prefix,
        "SDP_QUALITY_METRICS_PORT": str(port),
        "SDP_WORK_DIR": str(tmp_path),
    }
    pool_args = ["--pool", "solo"] if pool == "solo" else ["--concurrency", "1"]
    log = (tmp_path / "worker.log").open("wb")
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "celery"),
            "-A",
            "services.quality.worker:app",
            "worker",
            "-Q",
            f"{prefix}quality",
            "-n",
            f"{prefix}quality@127.0.0.1",
            *pool_args,
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(url, timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                assert proc.poll() is None, (tmp_path / "worker.log").read_text()
                assert time.monotonic() < deadline, "the worker never served its metrics"
                time.sleep(0.3)
        yield prefix, url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
    # A worker that stopped leaves no metrics files behind.
    assert not list((tmp_path / "metrics").glob("*/*.db"))


@pytest.fixture(params=["prefork", "solo"])
def worker(request: pytest.FixtureRequest, test_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, str]]:
    with running_worker(test_env, tmp_path, request.param) as running:
        yield running


def test_worker_counts_its_tasks_by_state(worker: tuple[str, str], test_env: dict[str, str]) -> None:
    prefix, url = worker
    settings = settings_from({**test_env, "SDP_QUEUE_PREFIX": prefix}, PlatformSettings)
    celery = create_celery(settings, "worker-metrics-test")
    before = samples(url)
    assert value(before, "sdp_worker_tasks_total", service="quality", task=TASK, state="started") == 0
    # Not an event at all: the task raises. A batch.staged of a batch still `received`: the stage skips it.
    celery.send_task(TASK, args=[{"type": "nonsense"}], queue=settings.queue("quality"))
    batch_id = uuid.uuid4()
    asyncio.run(_insert_batch(settings.database_url, batch_id))
    counts = RowCounts(rows_in=0, rows_valid=0, rows_rejected=0, rows_duplicate=0)
    skipped = BatchStaged(batch_id=batch_id, dataset=Dataset.sales, counts=counts, parquet_prefix="none/")
    celery.send_task(TASK, args=[skipped.model_dump(mode="json")], queue=settings.queue("quality"))

    deadline = time.monotonic() + 60
    while True:
        found = samples(url)
        ended = sum(
            value(found, "sdp_worker_tasks_total", service="quality", task=TASK, state=state)
            for state in ("succeeded", "failed")
        )
        if ended >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert value(found, "sdp_worker_tasks_total", service="quality", task=TASK, state="started") == 2
    assert value(found, "sdp_worker_tasks_total", service="quality", task=TASK, state="failed") == 1
    assert value(found, "sdp_worker_tasks_total", service="quality", task=TASK, state="succeeded") == 1
    assert (
        value(found, "sdp_worker_task_failures_total", service="quality", task=TASK, exception="ValidationError") == 1
    )
    assert value(found, "sdp_worker_task_seconds_count", service="quality", task=TASK) == 2
    assert value(found, "sdp_worker_task_seconds_sum", service="quality", task=TASK) > 0
    assert value(found, "sdp_worker_tasks_running", service="quality", task=TASK) == 0
