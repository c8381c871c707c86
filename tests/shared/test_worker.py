"""The stage protocol: a stage a killed worker left ``running`` runs again; once done, never again."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.batches import BatchRow, record_event
from shared.db import create_engine
from shared.events import BatchStaged, Event, RowCounts
from shared.settings import PlatformSettings
from shared.worker import Resources, run_stage


class RecordingBus:
    def __init__(self) -> None:
        self.published: list[Event] = []

    def publish(self, event: Event) -> None:
        self.published.append(event)


async def insert_batch(conn: asyncpg.Connection, batch_id: uuid.UUID) -> None:
    await conn.execute(
        """INSERT INTO ops.batches (batch_id, dataset, status, file_name, file_format, object_bucket, object_key,
                                    sha256, size_bytes)
           VALUES ($1, 'sales', 'received', 'sales.csv', 'csv', 'raw-data', $2, $3, 1)""",
        batch_id,
        f"sales/{batch_id}/sales.csv",
        hashlib.sha256(batch_id.bytes).hexdigest(),
    )


async def stage_of(conn: asyncpg.Connection, batch_id: uuid.UUID, stage: str) -> tuple[str, str, int]:
    row = await conn.fetchrow(
        """SELECT b.status, s.status AS stage_status, s.attempts
           FROM ops.batches b JOIN ops.batch_stages s USING (batch_id)
           WHERE batch_id = $1 AND s.stage = $2""",
        batch_id,
        stage,
    )
    assert row is not None
    return row["status"], row["stage_status"], row["attempts"]


async def scenario(settings: PlatformSettings) -> None:
    batch_id = uuid.uuid4()
    conn = await asyncpg.connect(settings.database_url)
    engine = create_engine(settings)
    bus = RecordingBus()
    resources: Resources[Any] = Resources(settings=settings, engine=engine, bus=bus, store=None)  # type: ignore[arg-type]
    runs: list[uuid.UUID] = []

    async def work(work_conn: AsyncConnection, batch: BatchRow) -> list[Event]:
        runs.append(batch.batch_id)
        counts = RowCounts(rows_in=1, rows_valid=1, rows_rejected=0, rows_duplicate=0)
        staged = BatchStaged(batch_id=batch.batch_id, dataset=batch.dataset, counts=counts, parquet_prefix="p")
        await record_event(work_conn, staged, stage="transform", fields=counts.model_dump())
        return [staged]

    async def deliver() -> None:
        await run_stage(
            resources, batch_id=batch_id, dataset="sales", stage="transform", expected_status="received", work=work
        )

    try:
        await insert_batch(conn, batch_id)
        # What a worker killed inside the stage's transaction leaves: the start it committed, nothing else.
        await conn.execute(
            """INSERT INTO ops.batch_stages (batch_id, stage, status, attempts, started_at)
               VALUES ($1, 'transform', 'running', 1, now() - interval '1 hour')""",
            batch_id,
        )
        assert await stage_of(conn, batch_id, "transform") == ("received", "running", 1)

        await deliver()
        assert runs == [batch_id], "the delivery after the kill runs the stage"
        assert await stage_of(conn, batch_id, "transform") == ("staged", "succeeded", 2)
        assert [e.type for e in bus.published] == ["batch.staged"]

        await deliver()
        assert runs == [batch_id], "a later delivery finds the batch moved on"
        assert await stage_of(conn, batch_id, "transform") == ("staged", "succeeded", 2)
        assert len(bus.published) == 1
        events = await conn.fetch("SELECT type FROM ops.batch_events WHERE batch_id = $1", batch_id)
        assert [e["type"] for e in events] == ["batch.staged"]
    finally:
        await conn.execute("DELETE FROM ops.batches WHERE batch_id = $1", batch_id)
        await conn.close()
        await engine.dispose()


def test_a_stage_left_running_by_a_killed_worker_runs_again_once(settings: PlatformSettings) -> None:
    asyncio.run(scenario(settings))
