"""Stage leases: a living stage is never run twice, a dead one is resumed within a lease period, a stage that
keeps dying ends its batch, and the weather is waited out rather than made final."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
import redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ops.admin import migrate
from ops.reconciler import ReconcilerSettings, reconcile_once
from shared.batches import BatchRow, record_event
from shared.bus import EventBus, task_id
from shared.db import create_engine
from shared.events import BatchReceived, BatchStaged, Event, ObjectRef, RowCounts
from shared.settings import PlatformSettings
from shared.worker import Resources, run_stage
from tests.conftest import as_role, drop_database, ensure_service_roles, settings_from
from tests.postgres_cluster import own_postgres

LEASE_SECONDS = 2.0


class RecordingBus:
    def __init__(self) -> None:
        self.published: list[Event] = []

    def publish(self, event: Event) -> None:
        self.published.append(event)


@pytest.fixture(scope="module")
def database_url(test_env: dict[str, str]) -> Iterator[str]:
    """A database of this module's own: the session platform's reconciler must not act on its batches."""
    url = test_env["SDP_DATABASE_URL"] + "_leases"
    asyncio.run(ensure_service_roles(url))
    migrate(settings_from({**test_env, "SDP_DATABASE_URL": url}))
    yield url
    asyncio.run(drop_database(url))


def received_event(batch_id: uuid.UUID) -> BatchReceived:
    return BatchReceived(
        batch_id=batch_id,
        dataset="sales",
        object=ObjectRef(bucket="raw-data", key=f"sales/{batch_id}/sales.csv"),
        sha256=hashlib.sha256(batch_id.bytes).hexdigest(),
        size_bytes=1,
        file_format="csv",
    )


async def add_batch(
    conn: asyncpg.Connection,
    *,
    heartbeat_age: float | None = None,
    interruptions: int = 0,
    stage_status: str = "running",
) -> BatchReceived:
    """A received sales batch whose batch.received was published; with ``heartbeat_age``, a transform attempt
    that renewed its lease that many seconds ago."""
    event = received_event(uuid.uuid4())
    await conn.execute(
        """INSERT INTO ops.batches (batch_id, dataset, status, file_name, file_format, object_bucket, object_key,
                                    sha256, size_bytes, updated_at)
           VALUES ($1, 'sales', 'received', 'sales.csv', 'csv', 'raw-data', $2, $3, 1, now() - interval '1 hour')""",
        event.batch_id,
        event.object.key,
        event.sha256,
    )
    await conn.execute(
        """INSERT INTO ops.batch_events (event_id, batch_id, type, payload, created_at, published_at)
           VALUES ($1, $2, $3, $4, now() - interval '1 hour', now() - interval '1 hour')""",
        event.event_id,
        event.batch_id,
        event.type,
        event.model_dump_json(),
    )
    if heartbeat_age is not None:
        await conn.execute(
            """INSERT INTO ops.batch_stages (batch_id, stage, status, attempts, interruptions, started_at,
                                             heartbeat_at, worker, lease_id)
               VALUES ($1, 'transform', $2, $3, $4, now() - interval '1 hour',
                       clock_timestamp() - make_interval(secs => $5), 'elsewhere:1', $6)""",
            event.batch_id,
            stage_status,
            interruptions + 1,
            interruptions,
            heartbeat_age,
            uuid.uuid4(),
        )
    return event


async def stage_row(conn: asyncpg.Connection, batch_id: uuid.UUID) -> asyncpg.Record:
    row = await conn.fetchrow(
        """SELECT b.status AS batch_status, b.error AS batch_error, s.status, s.attempts, s.interruptions, s.error,
                  s.started_at, s.heartbeat_at
           FROM ops.batches b JOIN ops.batch_stages s USING (batch_id)
           WHERE batch_id = $1 AND s.stage = 'transform'""",
        batch_id,
    )
    assert row is not None
    return row


def stage_settings(database_url: str, **extra: Any) -> PlatformSettings:
    return PlatformSettings(
        database_url=as_role(database_url, "sdp_transform"), stage_lease_seconds=LEASE_SECONDS, **extra
    )


def staging_work(runs: list[uuid.UUID], *, seconds: float = 0.0) -> Any:
    async def work(conn: AsyncConnection, batch: BatchRow) -> list[Event]:
        runs.append(batch.batch_id)
        await asyncio.sleep(seconds)
        counts = RowCounts(rows_in=1, rows_valid=1, rows_rejected=0, rows_duplicate=0)
        staged = BatchStaged(batch_id=batch.batch_id, dataset=batch.dataset, counts=counts, parquet_prefix="p")
        await record_event(conn, staged, stage="transform", fields=counts.model_dump())
        return [staged]

    return work


async def deliver(settings: PlatformSettings, bus: RecordingBus, event: BatchReceived, work: Any) -> None:
    engine = create_engine(settings)
    resources: Resources[Any] = Resources(settings=settings, engine=engine, bus=bus, store=None)  # type: ignore[arg-type]
    try:
        await run_stage(
            resources,
            batch_id=event.batch_id,
            dataset="sales",
            stage="transform",
            expected_status="received",
            work=work,
        )
    finally:
        await engine.dispose()


def test_a_delivery_leaves_a_living_stage_alone_and_resumes_a_dead_one(database_url: str) -> None:
    async def scenario() -> None:
        conn = await asyncpg.connect(database_url)
        settings = stage_settings(database_url)
        try:
            alive = await add_batch(conn, heartbeat_age=0.0)
            dead = await add_batch(conn, heartbeat_age=LEASE_SECONDS + 5)
            runs: list[uuid.UUID] = []
            bus = RecordingBus()
            await deliver(settings, bus, alive, staging_work(runs))
            await deliver(settings, bus, dead, staging_work(runs))

            assert runs == [dead.batch_id], "only the stage whose lease lapsed runs again"
            living = await stage_row(conn, alive.batch_id)
            assert (living["batch_status"], living["status"], living["attempts"]) == ("received", "running", 1)
            resumed = await stage_row(conn, dead.batch_id)
            assert (resumed["batch_status"], resumed["status"]) == ("staged", "succeeded")
            assert (resumed["attempts"], resumed["interruptions"]) == (2, 1)
            assert [e.type for e in bus.published] == ["batch.staged"]
        finally:
            await conn.close()

    asyncio.run(scenario())


def test_a_stage_that_died_in_each_attempt_ends_its_batch_failed_without_running(database_url: str) -> None:
    async def scenario() -> None:
        conn = await asyncpg.connect(database_url)
        settings = stage_settings(database_url, stage_max_attempts=3)
        try:
            poisoned = await add_batch(conn, heartbeat_age=LEASE_SECONDS + 5, interruptions=2)
            runs: list[uuid.UUID] = []
            bus = RecordingBus()
            await deliver(settings, bus, poisoned, staging_work(runs))

            assert runs == [], "a poison batch is not tried a fourth time"
            row = await stage_row(conn, poisoned.batch_id)
            assert (row["batch_status"], row["status"], row["interruptions"]) == ("failed", "failed", 3)
            assert "transform stage died in each of its 3 attempts" in row["batch_error"]
            assert "elsewhere:1" in row["batch_error"]
            assert [e.type for e in bus.published] == ["batch.failed"]
        finally:
            await conn.close()

    asyncio.run(scenario())


def test_a_long_stage_renews_its_lease_while_it_works(database_url: str) -> None:
    async def scenario() -> None:
        conn = await asyncpg.connect(database_url)
        settings = stage_settings(database_url, stage_heartbeat_seconds=0.2)
        seen: list[tuple[Any, Any]] = []
        try:
            event = await add_batch(conn)

            async def work(work_conn: AsyncConnection, batch: BatchRow) -> list[Event]:
                await asyncio.sleep(1.5)
                seen.append(await stage_times(batch.batch_id))
                return await staging_work([])(work_conn, batch)

            async def stage_times(batch_id: uuid.UUID) -> tuple[Any, Any]:
                row = await conn.fetchrow(
                    "SELECT started_at, heartbeat_at FROM ops.batch_stages WHERE batch_id = $1", batch_id
                )
                assert row is not None
                return row["started_at"], row["heartbeat_at"]

            await deliver(settings, RecordingBus(), event, work)
            started_at, heartbeat_at = seen[0]
            assert (heartbeat_at - started_at).total_seconds() >= 1.0, "the lease was renewed during the work"
        finally:
            await conn.close()

    asyncio.run(scenario())


def test_the_reconciler_resumes_dead_stages_fails_poisoned_ones_and_finds_lost_messages(
    database_url: str, test_env: dict[str, str]
) -> None:
    prefix = f"lease-test-{uuid.uuid4().hex[:8]}-"
    settings = settings_from(
        {**test_env, "SDP_DATABASE_URL": as_role(database_url, "sdp_reconciler"), "SDP_QUEUE_PREFIX": prefix},
        ReconcilerSettings,
        stage_lease_seconds=LEASE_SECONDS,
        stage_max_attempts=3,
        reconcile_stuck_after_seconds=1.0,
        stage_retry_backoff_seconds=30.0,
    )
    client = redis.Redis.from_url(settings.redis_url)

    async def scenario() -> None:
        conn = await asyncpg.connect(database_url)
        holder = await asyncpg.connect(database_url)
        engine = create_engine(settings)
        bus = EventBus(settings)
        try:
            # The batches of the other tests would be found waiting too.
            await conn.execute("DELETE FROM ops.batches")
            dead = await add_batch(conn, heartbeat_age=LEASE_SECONDS + 5)
            alive = await add_batch(conn, heartbeat_age=0.0)
            locked = await add_batch(conn, heartbeat_age=LEASE_SECONDS + 5)
            poisoned = await add_batch(conn, heartbeat_age=LEASE_SECONDS + 5, interruptions=2)
            # Dies a second time: queued again only after the back-off, so the other batches go first.
            suspect = await add_batch(conn, heartbeat_age=LEASE_SECONDS + 5, interruptions=1)
            lost = await add_batch(conn)
            # An open transaction holds the batch row, as a living stage's work does.
            transaction = holder.transaction()
            await transaction.start()
            await holder.execute("SELECT 1 FROM ops.batches WHERE batch_id = $1 FOR UPDATE", locked.batch_id)

            report = await reconcile_once(engine, bus, settings)
            queued = bus.waiting_task_ids(delivered_within=60)

            assert (report.resumed, report.failed) == (1, 1)
            row = await stage_row(conn, dead.batch_id)
            assert (row["batch_status"], row["status"], row["interruptions"]) == ("received", "interrupted", 1)
            assert "elsewhere:1 stopped renewing its lease" in row["error"]
            assert task_id(dead) in queued, "the dead stage's batch is queued again"
            assert (await stage_row(conn, alive.batch_id))["status"] == "running"
            assert (await stage_row(conn, locked.batch_id))["status"] == "running"
            failed = await stage_row(conn, poisoned.batch_id)
            assert (failed["batch_status"], failed["status"]) == ("failed", "failed")
            assert "died in each of its 3 attempts" in failed["batch_error"]
            assert task_id(lost) in queued, "a batch whose message is in no queue is published again"
            assert report.republished == 1
            row = await stage_row(conn, suspect.batch_id)
            assert (row["batch_status"], row["status"], row["interruptions"]) == ("received", "interrupted", 2)
            assert task_id(suspect) not in queued, "a stage that died twice waits for its back-off"

            # Queued now: a second pass leaves them be however long they wait.
            await conn.execute(
                "UPDATE ops.batches SET updated_at = now() - interval '1 hour' WHERE batch_id <> $1", locked.batch_id
            )
            again = await reconcile_once(engine, bus, settings)
            assert (again.resumed, again.failed, again.republished) == (0, 0, 0)

            # Redis restarts and loses every queue: both are published again.
            for key in client.scan_iter(match=f"{prefix}*"):
                client.delete(key)
            await conn.execute(
                "UPDATE ops.batches SET updated_at = now() - interval '1 hour' WHERE batch_id <> $1", locked.batch_id
            )
            lost_again = await reconcile_once(engine, bus, settings)
            assert lost_again.republished == 2
            assert {task_id(dead), task_id(lost)} <= bus.waiting_task_ids(delivered_within=60)
            assert task_id(suspect) not in bus.waiting_task_ids(delivered_within=60)

            # Its back-off over, the stage that died twice is queued again, once.
            await conn.execute(
                "UPDATE ops.batch_stages SET finished_at = now() - interval '31 seconds' WHERE batch_id = $1",
                suspect.batch_id,
            )
            after_backoff = await reconcile_once(engine, bus, settings)
            assert after_backoff.republished == 1
            assert task_id(suspect) in bus.waiting_task_ids(delivered_within=60)
            await transaction.rollback()
        finally:
            bus.close()
            await engine.dispose()
            await holder.close()
            await conn.execute("DELETE FROM ops.batches")
            await conn.close()

    try:
        asyncio.run(scenario())
    finally:
        for key in client.scan_iter(match=f"{prefix}*"):
            client.delete(key)
        client.close()


def test_a_postgresql_crash_during_a_stage_is_waited_out_not_made_final(test_env: dict[str, str]) -> None:
    with own_postgres() as server:
        url = f"{server.url}/sdp"
        asyncio.run(ensure_service_roles(url))
        migrate(settings_from({**test_env, "SDP_DATABASE_URL": url}))
        settings = stage_settings(url, stage_heartbeat_seconds=0.5)
        runs: list[uuid.UUID] = []
        restart = threading.Timer(2.0, server.start)

        async def scenario() -> None:
            conn = await asyncpg.connect(url)
            event = await add_batch(conn)
            await conn.close()

            async def work(work_conn: AsyncConnection, batch: BatchRow) -> list[Event]:
                if not runs:
                    runs.append(batch.batch_id)
                    server.crash()
                    restart.start()
                    await work_conn.execute(text("SELECT 1"))
                return await staging_work(runs)(work_conn, batch)

            bus = RecordingBus()
            await deliver(settings, bus, event, work)
            # pg_ctlcluster is still checking the server it started; the cluster is dropped only after.
            restart.join()
            conn = await asyncpg.connect(url)
            try:
                row = await stage_row(conn, event.batch_id)
            finally:
                await conn.close()
            assert len(runs) == 2, "the work ran again once the server was back"
            assert (row["batch_status"], row["status"], row["attempts"]) == ("staged", "succeeded", 1)
            assert [e.type for e in bus.published] == ["batch.staged"]

        asyncio.run(scenario())
