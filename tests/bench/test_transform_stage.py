"""The transform benchmark's SQL baseline (bench/sql/clean_sales.sql) keeps the rows the Spark stage keeps."""

from __future__ import annotations

import asyncio
import csv
import uuid
from pathlib import Path

import asyncpg
from pyspark.sql import SparkSession

from bench.transform_stage import clean_with_sql
from services.transform.service import run_job
from shared.datasets import CONTRACTS, Dataset
from shared.settings import PlatformSettings
from tests.services.transform.test_transforms import CLEAN, NOW

# File line -> transaction_ts, at the edges of the accepted years (1 to 9999, as written and in UTC).
EDGES = {
    3: "0001-01-01T00:00:00+14:00",  # year 0 in UTC
    4: "9999-12-31T23:59:59-14:00",  # year 10000 in UTC
    5: "0000-12-31T23:00:00-14:00",  # year 0 as written, year 1 in UTC
    6: "0001-01-01T14:00:00+14:00",  # the first instant of year 1 in UTC: valid
}


async def sql_rejects(database_url: str, source: Path) -> tuple[int, dict[int, list[str]]]:
    """(rows staged, {rejected line: reasons}) of the script on ``source``; rolled back."""
    batch_id = uuid.uuid4()
    conn = await asyncpg.connect(database_url)
    try:
        transaction = conn.transaction()
        await transaction.start()
        await clean_with_sql(conn, source, batch_id, NOW, {})
        staged = await conn.fetchval("SELECT count(*) FROM staging.sales WHERE batch_id = $1", batch_id)
        rows = await conn.fetch("SELECT source_line, reasons FROM staging.sales_rejects WHERE batch_id = $1", batch_id)
        await transaction.rollback()
        return staged, {r["source_line"]: list(r["reasons"]) for r in rows}
    finally:
        await conn.close()


def test_the_sql_baseline_rejects_timestamps_outside_the_years_the_stage_accepts(
    spark: SparkSession, settings: PlatformSettings, tmp_path: Path
) -> None:
    source = tmp_path / "sales.csv"
    with source.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CONTRACTS[Dataset.sales].column_names, lineterminator="\n")
        writer.writeheader()
        for n in range(2, 7):
            writer.writerow(
                {**CLEAN, "transaction_id": f"T{n}", "transaction_ts": EDGES.get(n, CLEAN["transaction_ts"])}
            )

    staged, rejects = asyncio.run(sql_rejects(settings.database_url, source))
    output = run_job(spark, dataset=Dataset.sales, batch_id=uuid.uuid4(), source=source, out=tmp_path / "out", now=NOW)

    assert rejects == {line: ["invalid_transaction_ts"] for line in (3, 4, 5)}
    assert (staged, len(rejects)) == (output.counts.rows_valid, output.counts.rows_rejected) == (2, 3)
