"""Batch state in ops.*: transitions, per-stage timings and the event outbox.

A stage changes a batch and records the event that says so in one transaction (the outbox row is
``ops.batch_events`` with ``published_at`` still null). Only after that commits is the event published,
then marked published; an event left unpublished by a crash is found by :func:`unpublished_events`.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.bus import EventBus
from shared.events import STATUS_AFTER, TERMINAL_STATUSES, Event, parse_event
from shared.logs import get_logger

log = get_logger(__name__)

# PostgreSQL's SQLSTATE for a lock not granted within lock_timeout.
LOCK_NOT_AVAILABLE = "55P03"


class BatchNotFound(Exception):
    pass


@dataclass(frozen=True)
class BatchRow:
    batch_id: uuid.UUID
    dataset: str
    status: str
    object_bucket: str
    object_key: str
    file_format: str
    header: list[str]
    compression: str
    csv_delimiter: str | None
    file_name: str


LOCK_BATCH = """SELECT batch_id, dataset, status, object_bucket, object_key, file_format, header, compression,
                     csv_delimiter, file_name
              FROM ops.batches WHERE batch_id = :batch_id FOR UPDATE"""


async def lock_batch(conn: AsyncConnection, batch_id: uuid.UUID) -> BatchRow:
    """Lock a batch row for the rest of the transaction: two deliveries of one event never interleave."""
    row = (await conn.execute(text(LOCK_BATCH), {"batch_id": batch_id})).one_or_none()
    if row is None:
        raise BatchNotFound(str(batch_id))
    return BatchRow(*row)


async def try_lock_batch(conn: AsyncConnection, batch_id: uuid.UUID, *, wait_seconds: float) -> BatchRow | None:
    """Lock a batch row, or None when another transaction keeps it locked past ``wait_seconds``: a stage's
    work holds the lock for as long as it runs, an API action or the reconciler for milliseconds."""
    await conn.execute(text(f"SET LOCAL lock_timeout = '{int(wait_seconds * 1000)}ms'"))
    try:
        async with conn.begin_nested():
            return await lock_batch(conn, batch_id)
    except DBAPIError as exc:
        if isinstance(exc.orig, Exception) and getattr(exc.orig, "sqlstate", None) == LOCK_NOT_AVAILABLE:
            return None
        raise
    finally:
        await conn.execute(text("SET LOCAL lock_timeout = 0"))


async def record_event(
    conn: AsyncConnection,
    event: Event,
    *,
    stage: str,
    fields: dict[str, Any] | None = None,
    stage_started_at: datetime | None = None,
) -> None:
    """Move the batch to the status the event names, close the stage and queue the event in the outbox.

    ``stage_started_at`` is for a stage that did not record its start (ingest's starts with the request).
    """
    status = STATUS_AFTER[event.type]
    failed = event.type == "batch.failed"
    assignments = ", ".join(f"{column} = :{column}" for column in (fields or {}))
    await conn.execute(
        text(
            f"""UPDATE ops.batches SET status = :status, updated_at = clock_timestamp(),
                finished_at = CASE WHEN :terminal THEN clock_timestamp() END
                {", " + assignments if assignments else ""}
                WHERE batch_id = :batch_id"""
        ),
        {
            "status": status,
            "terminal": status in TERMINAL_STATUSES,
            "batch_id": event.batch_id,
            **(fields or {}),
        },
    )
    await conn.execute(
        text(
            """INSERT INTO ops.batch_stages (batch_id, stage, status, started_at, finished_at, error)
               VALUES (:batch_id, :stage, :status, coalesce(:started_at, clock_timestamp()), clock_timestamp(), :error)
               ON CONFLICT (batch_id, stage) DO UPDATE
               SET status = EXCLUDED.status, finished_at = EXCLUDED.finished_at, error = EXCLUDED.error"""
        ),
        {
            "batch_id": event.batch_id,
            "stage": stage,
            "status": "failed" if failed else "succeeded",
            "error": getattr(event, "reason", None) if failed else None,
            "started_at": stage_started_at,
        },
    )
    await conn.execute(
        text(
            """INSERT INTO ops.batch_events (event_id, batch_id, type, payload)
               VALUES (:event_id, :batch_id, :type, CAST(:payload AS jsonb))"""
        ),
        {
            "event_id": event.event_id,
            "batch_id": event.batch_id,
            "type": event.type,
            "payload": event.model_dump_json(),
        },
    )


async def publish_committed(engine: AsyncEngine, bus: EventBus, events: list[Event]) -> None:
    """Publish events whose transaction has committed, then mark them published.

    A broker that cannot be reached is not the caller's failure: the events stay in the outbox, unmarked,
    and the reconciler publishes them once the broker is back.
    """
    for event in events:
        try:
            await asyncio.to_thread(bus.publish, event)
        except Exception as exc:
            log.warning("event.publish_deferred", event_type=event.type, batch_id=str(event.batch_id), error=str(exc))
            return
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE ops.batch_events SET published_at = clock_timestamp() WHERE event_id = :id"),
                {"id": event.event_id},
            )


async def unpublished_events(engine: AsyncEngine, *, older_than_seconds: float) -> list[Event]:
    """Events committed but never published (the publisher died between commit and publish)."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                """SELECT payload FROM ops.batch_events
                   WHERE published_at IS NULL
                     AND created_at < clock_timestamp() - make_interval(secs => :age)
                   ORDER BY created_at"""
            ),
            {"age": older_than_seconds},
        )
        return [parse_event(row[0] if isinstance(row[0], dict) else json.loads(row[0])) for row in rows]
