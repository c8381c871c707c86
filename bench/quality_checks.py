"""Quality benchmark: every configured sales check on one staged batch of 1,000,000 rows.

Generated sales (devtools/sampledata.py, no dirty rows) are COPY'd into staging.sales of a throwaway
database as one staged batch, with the generated customers and products staged as a loaded batch each
(the referential checks' known keys). Then the quality stage's checks run as the worker runs them: one
after another on one connection, in one transaction. Printed: each check's time and status, the total,
and as a baseline measured in the same run, one ``count(*)`` scan of the batch's rows. Target (issue 5):
all checks ≤ 2 s. Nothing asserts on time.

Run: ``make bench`` (or ``python -m bench.quality_checks --rows 1000000 --runs 3``; the fastest run is
reported, after a first run that warms the cache).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
from sqlalchemy import text

from bench.common import throwaway_database
from devtools.sampledata import GeneratorConfig, write_customers, write_products, write_sales
from services.quality.checks import BatchFacts, CheckResult, run_checks
from shared.datasets import CONTRACTS, Dataset
from shared.db import create_engine
from shared.quality_config import load_quality_config
from shared.settings import PlatformSettings

TARGET_SECONDS = 2.0

STAGE_SALES = """
INSERT INTO staging.sales (batch_id, source_line, transaction_id, transaction_ts, customer_id, product_id, quantity,
    unit_price, total_amount, payment_method, status)
SELECT $1, row_number() OVER () + 1, transaction_id, transaction_ts::timestamptz, nullif(customer_id, ''),
       nullif(product_id, ''), quantity::integer, unit_price::numeric(12, 2),
       coalesce(nullif(total_amount, '')::numeric(12, 2), quantity::integer * unit_price::numeric(12, 2)),
       lower(payment_method), lower(status)
FROM bench_sales_text
ON CONFLICT (batch_id, transaction_id) DO NOTHING
"""
BATCH = """INSERT INTO ops.batches (batch_id, dataset, status, file_name, file_format, object_bucket, object_key,
    sha256, size_bytes, header, rows_in, rows_valid, rows_rejected, rows_duplicate)
    VALUES ($1, $2, $3, 'bench.csv', 'csv', 'raw-data', 'k', $4, 1, $5, $6, $6, 0, 0)"""


async def stage(database_url: str, work: Path, rows: int) -> uuid.UUID:
    config = GeneratorConfig(seed=11, sales=rows, dirty_rate=0.0, customers=50_000, products=2_000)
    sales, customers, products = work / "sales.csv", work / "customers.csv", work / "products.csv"
    write_sales(config, sales)
    write_customers(config, customers)
    write_products(config, products)
    batch_id = uuid.uuid4()
    conn = await asyncpg.connect(database_url)
    try:
        header = list(CONTRACTS[Dataset.sales].column_names)
        await conn.execute(f"CREATE UNLOGGED TABLE bench_sales_text ({', '.join(f'{c} text' for c in header)})")
        await conn.copy_to_table("bench_sales_text", source=sales, format="csv", header=True)
        await conn.execute(BATCH, batch_id, "sales", "staged", uuid.uuid4().hex * 2, header, rows)
        await conn.execute(STAGE_SALES, batch_id)
        for dataset, path in (("customers", customers), ("products", products)):
            columns = list(CONTRACTS[Dataset(dataset)].column_names)
            dim_batch = uuid.uuid4()
            table = f"bench_{dataset}_text"
            await conn.execute(f"CREATE UNLOGGED TABLE {table} ({', '.join(f'{c} text' for c in columns)})")
            await conn.copy_to_table(table, source=path, format="csv", header=True)
            await conn.execute(BATCH, dim_batch, dataset, "loaded", uuid.uuid4().hex * 2, columns, 0)
            key = CONTRACTS[Dataset(dataset)].key
            await conn.execute(
                f"""INSERT INTO staging.{dataset} (batch_id, source_line, {key}, updated_at)
                    SELECT DISTINCT ON ({key}, updated_at::timestamptz) $1::uuid, 2, {key}, updated_at::timestamptz
                    FROM {table}""",
                dim_batch,
            )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return batch_id


async def measure(settings: PlatformSettings, batch_id: uuid.UUID, runs: int) -> tuple[list[CheckResult], float, float]:
    loaded = load_quality_config(settings.quality_config)
    checks = loaded.config.checks_for(Dataset.sales)
    header = list(CONTRACTS[Dataset.sales].column_names)
    facts = BatchFacts(batch_id, Dataset.sales, header)
    engine = create_engine(settings)
    best: list[CheckResult] = []
    best_total = float("inf")
    baseline = float("inf")
    try:
        for _ in range(runs + 1):  # the first run warms the cache
            async with engine.begin() as conn:
                started = time.perf_counter()
                await conn.execute(text("SELECT count(*) FROM staging.sales WHERE batch_id = :b"), {"b": batch_id})
                baseline = min(baseline, time.perf_counter() - started)
                started = time.perf_counter()
                results = await run_checks(conn, facts, checks)
                total = time.perf_counter() - started
            if total < best_total:
                best, best_total = results, total
    finally:
        await engine.dispose()
    print(f"config {loaded.version}: {len(checks)} sales checks")
    return best, best_total, baseline


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    base = PlatformSettings()
    with throwaway_database(base) as url, tempfile.TemporaryDirectory() as work:
        settings = base.model_copy(update={"database_url": url})
        started = time.perf_counter()
        batch_id = asyncio.run(stage(url, Path(work), args.rows))
        print(f"staged {args.rows:,} generated sales rows in {time.perf_counter() - started:.1f} s")
        results, total, baseline = asyncio.run(measure(settings, batch_id, args.runs))
    width = max(len(r.check_name) for r in results)
    for r in results:
        print(f"  {r.check_name:<{width}}  {r.check_type:<17} {r.status:<4} {r.duration_ms:8.1f} ms  {r.observed[:60]}")
    verdict = "met" if total <= TARGET_SECONDS else "not met"
    print(
        f"all checks: {total:.3f} s (target ≤ {TARGET_SECONDS:.1f} s: {verdict});"
        f" baseline, one count(*) of the batch: {baseline * 1000:.0f} ms (ratio {total / baseline:.1f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
