"""A transform worker SIGKILLed mid-batch: its transaction leaves nothing behind, its stage lease lapses, the
reconciler queues the stage again for a fresh worker (no wait for the broker's visibility timeout), and the
batch completes once."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pyarrow.parquet as pq
import pytest

from devtools.sampledata import GeneratorConfig, write_sales
from shared.failpoints import HANG
from shared.objectstore import create_object_store
from tests.conftest import Platform
from tests.e2e.test_faults import fetch
from tests.e2e.test_sales_pipeline import post_file, wait_terminal

pytestmark = pytest.mark.e2e

WORKER = "transform-worker"
HELD_AT = "transform.before_commit"


def group_members(pgid: int) -> list[int]:
    """PIDs of the processes in a process group (zombies included: they are not gone until reaped)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            # "pid (comm) state ppid pgrp …": comm may hold spaces and parentheses, so split after the last ")".
            if int(stat.rsplit(")", 1)[1].split()[2]) == pgid:
                members.append(int(entry.name))
    return members


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f}s: {what}")
        time.sleep(0.2)


def log_lines(path: Path, *needles: str) -> list[str]:
    return [line for line in path.read_text(errors="replace").splitlines() if all(n in line for n in needles)]


def kill_group(pgid: int) -> None:
    """SIGKILL every process of the group (the worker and its Spark JVM), reap the leader, wait for the rest."""
    os.killpg(pgid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pgid, 0)
    wait_until(lambda: not group_members(pgid), 30, f"every process of group {pgid} gone")


async def _batch_lock_taken(database_url: str, batch_id: str) -> bool:
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            await conn.execute("SELECT 1 FROM ops.batches WHERE batch_id = $1 FOR UPDATE NOWAIT", batch_id)
        return False
    except asyncpg.LockNotAvailableError:
        return True
    finally:
        await conn.close()


def committed_rows(platform: Platform, batch_id: str) -> dict[str, int]:
    return {
        table: fetch(platform, f"SELECT count(*) AS n FROM {table} WHERE batch_id = $1", batch_id)[0]["n"]
        for table in ("raw.sales", "staging.sales", "staging.sales_rejects")
    }


def silver_rows(platform: Platform, batch_id: str) -> int:
    """Rows in the batch's silver Parquet in the object store, across every object under its prefix."""
    store = create_object_store(platform.settings)
    bucket = platform.settings.bucket_processed
    keys = store.list_keys(bucket, f"sales/batch_id={batch_id}/")
    assert keys, "the batch's silver Parquet is stored"
    return sum(pq.read_table(io.BytesIO(store.open(bucket, key).read())).num_rows for key in keys)


def test_transform_worker_killed_mid_batch_completes_once(platform: Platform, tmp_path: Path) -> None:
    path = write_sales(GeneratorConfig(seed=23, sales=2_000, dirty_rate=0.05), tmp_path / "sales.csv")
    log = platform.log(WORKER)
    restored = False
    platform.stop(WORKER)
    try:
        # Ready before the upload, so the batch does not wait in the queue long enough for the reconciler
        # to count it stuck and publish it a second time.
        held = platform.start(WORKER, {"SDP_FAILPOINTS": json.dumps([f"{HELD_AT}:{HANG}"])})
        with platform.client("ingest:write", "batches:read") as client:
            accepted = post_file(client, platform, path)
            assert accepted.status_code == 202, accepted.text
            batch_id = accepted.json()["batch_id"]

        wait_until(lambda: bool(log_lines(log, "failpoint.hang", batch_id)), 120, "the worker held before commit")
        # Held inside the stage's transaction: the batch row locked, the rows written but not committed.
        assert asyncio.run(_batch_lock_taken(platform.settings.database_url, batch_id)), "held inside the transaction"
        assert committed_rows(platform, batch_id) == {"raw.sales": 0, "staging.sales": 0, "staging.sales_rejects": 0}
        stages = fetch(platform, "SELECT stage, status, attempts FROM ops.batch_stages WHERE batch_id = $1", batch_id)
        assert {s["stage"]: (s["status"], s["attempts"]) for s in stages}["transform"] == ("running", 1)
        assert len(group_members(held)) > 1, "the Spark JVM runs in the worker's process group"

        kill_group(held)
        killed_at = time.monotonic()
        assert not asyncio.run(_batch_lock_taken(platform.settings.database_url, batch_id)), (
            "PostgreSQL rolled the killed worker's transaction back"
        )
        # The session's worker, as the platform starts it: the broker's visibility timeout is the default 900 s.
        platform.start(WORKER, wait=False)
        restored = True
        with platform.client("batches:read") as client:
            batch = wait_terminal(client, platform, batch_id, timeout=120)
        assert batch["status"] == "loaded", batch
        recovered_in = time.monotonic() - killed_at
        assert recovered_in < 60, f"loaded {recovered_in:.0f}s after the kill"
    finally:
        if not restored:
            platform.stop(WORKER)
            platform.start(WORKER)

    counts = batch["counts"]
    assert committed_rows(platform, batch_id) == {
        "raw.sales": counts["rows_in"],
        "staging.sales": counts["rows_valid"],
        "staging.sales_rejects": counts["rows_rejected"],
    }
    distinct = fetch(
        platform, "SELECT count(DISTINCT transaction_id) AS n FROM staging.sales WHERE batch_id = $1", batch_id
    )
    assert distinct[0]["n"] == counts["rows_valid"]
    assert silver_rows(platform, batch_id) == counts["rows_valid"], "one attempt's Parquet, not both"

    events = fetch(platform, "SELECT type FROM ops.batch_events WHERE batch_id = $1 ORDER BY created_at", batch_id)
    assert [e["type"] for e in events] == ["batch.received", "batch.staged", "batch.validated", "batch.loaded"]
    stages = fetch(
        platform, "SELECT stage, status, attempts, interruptions FROM ops.batch_stages WHERE batch_id = $1", batch_id
    )
    # Transform: the killed attempt, declared dead once, and the one that completed; every other stage once.
    assert {s["stage"]: (s["status"], s["attempts"], s["interruptions"]) for s in stages} == {
        "ingest": ("succeeded", 1, 0),
        "transform": ("succeeded", 2, 1),
        "quality": ("succeeded", 1, 0),
        "warehouse": ("succeeded", 1, 0),
    }
    # The killed worker's delivery and the reconciler's; the broker's own redelivery would come 900 s later.
    assert len(log_lines(log, "transform.stage_batch[", batch_id, "] received")) == 2
    assert log_lines(platform.log("reconciler"), "reconcile.stage_died", batch_id)
