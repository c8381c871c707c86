"""The staged CSV written from the silver Parquet, as PostgreSQL's COPY reads it back; a job's rows COPYed into
the tables (rolled back)."""

from __future__ import annotations

import asyncio
import csv
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import asyncpg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import SparkSession
from sqlalchemy import text

from services.transform.service import StageOutput, load_rows, parquet_to_copy_csv, run_job
from shared.datasets import CONTRACTS, Dataset
from shared.db import create_engine
from shared.settings import PlatformSettings
from tests.services.transform import test_dimension_transforms as dimension_tests
from tests.services.transform import test_transforms as sales_tests

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


# File line -> a timestamp at an edge of the accepted range (years 1 to 9999 in UTC).
EDGES = {
    3: "0001-01-01T00:00:00+14:00",  # year 0 in UTC: PostgreSQL refuses it as text
    4: "9999-12-31T23:59:59-14:00",  # year 10000 in UTC
    5: "0001-01-01T14:00:00+14:00",  # the first instant of year 1 in UTC: accepted
}
CLEAN_ROWS = {Dataset.sales: sales_tests.CLEAN, **dimension_tests.CLEAN}
KEYS = {Dataset.sales: "transaction_id", Dataset.customers: "customer_id", Dataset.products: "product_id"}


async def load_and_read(
    settings: PlatformSettings, dataset: Dataset, batch_id: uuid.UUID, output: StageOutput, column: str
) -> tuple[dict[int, datetime], dict[int, list[str]]]:
    """COPY the job's rows in a transaction, then ({staged line: column}, {rejected line: reasons}); rolled back."""
    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            transaction = await conn.begin()
            await load_rows(conn, dataset, batch_id, output)
            staged = await conn.execute(
                text(f"SELECT source_line, {column} FROM staging.{dataset.value} WHERE batch_id = :b"), {"b": batch_id}
            )
            rejects = await conn.execute(
                text(f"SELECT source_line, reasons FROM staging.{dataset.value}_rejects WHERE batch_id = :b"),
                {"b": batch_id},
            )
            result = {line: value for line, value in staged}, {line: reasons for line, reasons in rejects}
            await transaction.rollback()
            return result
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("dataset", "column"),
    [
        (Dataset.sales, "transaction_ts"),
        (Dataset.customers, "updated_at"),
        (Dataset.products, "updated_at"),
        (Dataset.products, "created_at"),
    ],
)
def test_a_batch_with_instants_at_the_edges_of_the_range_loads(
    spark: SparkSession, settings: PlatformSettings, tmp_path: Path, dataset: Dataset, column: str
) -> None:
    """Year 0 or 10000 in UTC rejects its row with the column's reason, and the batch's other rows COPY in (a
    staged year 0 failed the whole batch); the first instant of year 1 is staged."""
    clean = CLEAN_ROWS[dataset]
    rows = [{**clean, KEYS[dataset]: f"K{n}", **({column: EDGES[n]} if n in EDGES else {})} for n in range(2, 6)]
    source = tmp_path / f"{dataset.value}.csv"
    with source.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CONTRACTS[dataset].column_names, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    batch_id = uuid.uuid4()

    output = run_job(
        spark, dataset=dataset, batch_id=batch_id, source=source, out=tmp_path / "out", now=sales_tests.NOW
    )
    staged, rejects = asyncio.run(load_and_read(settings, dataset, batch_id, output, column))

    assert staged == {
        2: datetime.fromisoformat(str(clean[column])),
        5: datetime(1, 1, 1, tzinfo=UTC),
    }
    assert rejects == {3: [f"invalid_{column}"], 4: [f"invalid_{column}"]}
