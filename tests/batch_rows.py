"""A batch row written straight into ``ops.batches``, for tests of what reads batches."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import asyncpg


async def insert_batch(
    conn: asyncpg.Connection,
    *,
    dataset: str = "sales",
    status: str = "staged",
    header: Sequence[str] = (),
    drift: Sequence[str] = (),
    rows_in: int = 0,
    rejected: int = 0,
    received_at: datetime | None = None,
    finished_at: datetime | None = None,
    max_event_ts: datetime | None = None,
) -> uuid.UUID:
    batch_id = uuid.uuid4()
    await conn.execute(
        """INSERT INTO ops.batches (batch_id, dataset, status, file_name, file_format, object_bucket, object_key,
               sha256, size_bytes, header, schema_drift, rows_in, rows_valid, rows_rejected, rows_duplicate,
               received_at, finished_at, max_event_ts)
           VALUES ($1, $2, $3, 'q.csv', 'csv', 'raw-data', 'k', $4, 1, $5, $6, $7, $8, $9, 0,
                   coalesce($10, now()), $11, $12)""",
        batch_id,
        dataset,
        status,
        uuid.uuid4().hex * 2,
        list(header),
        list(drift),
        rows_in,
        rows_in - rejected,
        rejected,
        received_at,
        finished_at,
        max_event_ts,
    )
    return batch_id
