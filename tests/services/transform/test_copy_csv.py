"""The staged CSV written from the silver Parquet, as PostgreSQL's COPY reads it back."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import asyncpg
import pyarrow as pa
import pyarrow.parquet as pq

from services.transform.service import parquet_to_copy_csv
from shared.settings import PlatformSettings

INSTANTS = [
    datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC),
    datetime(2024, 5, 1, 10, 0, tzinfo=timezone(timedelta(hours=-3))),
    datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    None,
]


async def copy_back(database_url: str, csv_dir: Path) -> list[tuple[object, ...]]:
    conn = await asyncpg.connect(database_url)
    try:
        # A session zone far from UTC: the text must carry its own.
        await conn.execute("SET TimeZone = 'Asia/Kolkata'")
        await conn.execute(
            "CREATE TEMP TABLE t (batch_id uuid, line bigint, at timestamptz, name text, price numeric(12, 2))"
        )
        for part in sorted(csv_dir.glob("part-*")):
            await conn.copy_to_table("t", source=part, format="csv")
        return [tuple(r) for r in await conn.fetch("SELECT batch_id, line, at, name, price FROM t ORDER BY line")]
    finally:
        await conn.close()


def test_copy_csv_keeps_instants_nulls_and_empty_strings(tmp_path: Path, settings: PlatformSettings) -> None:
    table = pa.table(
        {
            "line": pa.array([1, 2, 3, 4], pa.int64()),
            "at": pa.array(INSTANTS, pa.timestamp("us", tz="UTC")),
            "name": pa.array(["a", "", None, 'quote " and, comma']),
            "price": pa.array([Decimal("1.50"), None, Decimal("0.00"), Decimal("-2.25")], pa.decimal128(12, 2)),
        }
    )
    (tmp_path / "parquet").mkdir()
    pq.write_table(table, tmp_path / "parquet" / "part-00000.parquet")
    batch_id = uuid.uuid4()

    parquet_to_copy_csv(tmp_path / "parquet", tmp_path / "csv", batch_id)

    rows = asyncio.run(copy_back(settings.database_url, tmp_path / "csv"))
    assert rows == [
        (batch_id, 1, INSTANTS[0], "a", Decimal("1.50")),
        (batch_id, 2, INSTANTS[1], "", None),
        (batch_id, 3, INSTANTS[2], None, Decimal("0.00")),
        (batch_id, 4, None, 'quote " and, comma', Decimal("-2.25")),
    ]
