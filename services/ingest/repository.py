"""SQL of the ingest service."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


@dataclass(frozen=True)
class ExistingBatch:
    batch_id: uuid.UUID
    status: str
    sha256: str
    size_bytes: int


async def find_by_content(conn: AsyncConnection, *, dataset: str, sha256: str) -> ExistingBatch | None:
    row = (
        await conn.execute(
            text(
                """SELECT batch_id, status, sha256, size_bytes FROM ops.batches
                   WHERE dataset = :dataset AND sha256 = :sha256"""
            ),
            {"dataset": dataset, "sha256": sha256},
        )
    ).one_or_none()
    return ExistingBatch(*row) if row else None


async def find_by_idempotency_key(conn: AsyncConnection, *, dataset: str, key: str) -> ExistingBatch | None:
    row = (
        await conn.execute(
            text(
                """SELECT b.batch_id, b.status, b.sha256, b.size_bytes
                   FROM ops.batch_idempotency_keys k JOIN ops.batches b USING (batch_id)
                   WHERE k.dataset = :dataset AND k.idempotency_key = :key"""
            ),
            {"dataset": dataset, "key": key},
        )
    ).one_or_none()
    return ExistingBatch(*row) if row else None


async def insert_batch(
    conn: AsyncConnection,
    *,
    batch_id: uuid.UUID,
    dataset: str,
    file_name: str,
    file_format: str,
    compression: str,
    csv_delimiter: str | None,
    content_type: str,
    bucket: str,
    key: str,
    sha256: str,
    size_bytes: int,
    header: list[str],
    schema_drift: list[str],
) -> bool:
    """Insert a received batch; False when the same content won a race to it."""
    result = await conn.execute(
        text(
            """INSERT INTO ops.batches (batch_id, dataset, status, file_name, file_format, compression,
                   csv_delimiter, content_type, object_bucket, object_key, sha256, size_bytes, header,
                   schema_drift)
               VALUES (:batch_id, :dataset, 'received', :file_name, :file_format, :compression,
                   :csv_delimiter, :content_type, :bucket, :key, :sha256, :size_bytes, :header, :schema_drift)
               ON CONFLICT DO NOTHING"""
        ),
        {
            "batch_id": batch_id,
            "dataset": dataset,
            "file_name": file_name,
            "file_format": file_format,
            "compression": compression,
            "csv_delimiter": csv_delimiter,
            "content_type": content_type,
            "bucket": bucket,
            "key": key,
            "sha256": sha256,
            "size_bytes": size_bytes,
            "header": header,
            "schema_drift": schema_drift,
        },
    )
    return result.rowcount == 1


async def bind_idempotency_key(conn: AsyncConnection, *, dataset: str, key: str, batch_id: uuid.UUID) -> bool:
    """Bind ``key`` to a batch; False when the key is already bound (to this batch or another)."""
    result = await conn.execute(
        text(
            """INSERT INTO ops.batch_idempotency_keys (dataset, idempotency_key, batch_id)
               VALUES (:dataset, :key, :batch_id)
               ON CONFLICT DO NOTHING"""
        ),
        {"dataset": dataset, "key": key, "batch_id": batch_id},
    )
    return result.rowcount == 1
