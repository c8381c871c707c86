"""Warehouse benchmark: the loads of a first batch and of an incremental one, against a plain-SQL baseline.

Data (shared/sampledata.py): a first batch of 100,000 customers, 10,000 products and 1,000,000 sales over a
year, then an incremental batch of 200,000 sales (1% of them re-sent transactions of the first batch with
another status) with 5% of the customers and 2% of the products changed from the start of its period.
Staged rows are COPYed into staging.* as the transform would leave them (no Spark); each dataset's load is
timed as the warehouse worker runs it, one transaction each.

Baseline in the same run, on a database of its own with the same schema: what a PostgreSQL engineer would
write for the same merge with nothing else: COPY of the same files into temporary tables, MERGE closing a
changed current version + INSERT of new versions, INSERT … SELECT … ON CONFLICT of the facts bound by an
interval join, and analytics.daily_sales rebuilt for the batch's dates. It does less than the warehouse (no
out-of-order history, no merging of equal versions, no re-binding of facts, no inferred members, one
analytics table), so it is a lower bound, not an equal. Targets (issue 6): first batch ≤ 6 s, incremental
≤ 3 s, never slower than the baseline.

Run: ``make bench`` (or ``python -m bench.warehouse_load``; ``--sales``, ``--customers``, ``--products``,
``--incremental`` scale it down).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from random import Random

import asyncpg

from bench.common import throwaway_database
from services.warehouse import repository
from services.warehouse.settings import WarehouseSettings
from shared.db import create_engine
from shared.sampledata import GeneratorConfig, write_customers, write_products, write_sales

FIRST_TARGET = 6.0
INCREMENTAL_TARGET = 3.0
DATASETS = ("customers", "products", "sales")  # the load order of a batch: dimensions first

TEXT_COLUMNS = {
    "customers": ["customer_id", "customer_name", "email", "city", "state", "country", "is_active", "updated_at"],
    "products": ["product_id", "product_name", "category", "created_at", "updated_at"],
    "sales": [
        "transaction_id",
        "transaction_ts",
        "customer_id",
        "product_id",
        "quantity",
        "unit_price",
        "total_amount",
        "payment_method",
        "status",
    ],
}
TYPES = {
    "is_active": "boolean",
    "updated_at": "timestamptz",
    "created_at": "timestamptz",
    "transaction_ts": "timestamptz",
    "quantity": "integer",
    "unit_price": "numeric(12, 2)",
    "total_amount": "numeric(12, 2)",
}


def typed_columns(columns: list[str]) -> str:
    return ", ".join(f"{c} {TYPES.get(c, 'text')}" for c in columns)


def typed(column: str) -> str:
    return f"{column}::{TYPES[column]}" if column in TYPES else column


@dataclass
class Files:
    customers: Path
    products: Path
    sales: Path


# --- data ----------------------------------------------------------------------------------------------------


def first_batch(out: Path, customers: int, products: int, sales: int) -> tuple[Files, date]:
    config = GeneratorConfig(
        seed=61, customers=customers, products=products, sales=sales, dirty_rate=0.0, start=date(2023, 1, 1), days=365
    )
    files = Files(
        write_customers(config, out / "customers-1.csv"),
        write_products(config, out / "products-1.csv"),
        write_sales(config, out / "sales-1.csv"),
    )
    return files, config.start + timedelta(days=config.days)


def _changed(source: Path, target: Path, share: float, start: date, revise: str, rng: Random) -> Path:
    """Every 1/share-th row of ``source`` with ``revise`` changed, effective a few hours into ``start``."""
    with source.open(newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    column = header.index(revise)
    values = sorted({r[column] for r in body})
    step = max(1, round(1 / share))
    moment = datetime(start.year, start.month, start.day)
    with target.open("w", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        for row in body[::step]:
            row = row.copy()
            row[column] = rng.choice([v for v in values if v != row[column]] or values)
            if revise == "city":
                row[header.index("state")] = "ZZ"
            row[header.index("updated_at")] = (moment + timedelta(seconds=rng.randrange(3600))).isoformat() + "Z"
            writer.writerow(row)
    return target


def incremental_batch(out: Path, first: Files, start: date, customers: int, products: int, sales: int) -> Files:
    rng = Random(62)
    resent = sales // 100
    config = GeneratorConfig(
        seed=63, customers=customers, products=products, sales=sales - resent, dirty_rate=0.0, start=start, days=30
    )
    new_sales = write_sales(config, out / "sales-new.csv")
    with first.sales.open(newline="") as fh:
        old = list(csv.reader(fh))[1:]
    status = TEXT_COLUMNS["sales"].index("status")
    moves = {"pending": "completed", "completed": "refunded", "cancelled": "completed", "refunded": "completed"}
    target = out / "sales-2.csv"
    with new_sales.open(newline="") as fh, target.open("w", newline="") as outfh:
        reader, writer = csv.reader(fh), csv.writer(outfh, lineterminator="\n")
        writer.writerow(next(reader))
        for row in reader:
            row[0] = "I" + row[0]  # ids of their own, not the first batch's
            writer.writerow(row)
        for row in rng.sample(old, resent):
            row[status] = moves[row[status]]
            writer.writerow(row)
    return Files(
        _changed(first.customers, out / "customers-2.csv", 0.05, start, "city", rng),
        _changed(first.products, out / "products-2.csv", 0.02, start, "category", rng),
        target,
    )


# --- the warehouse ------------------------------------------------------------------------------------------


async def _connect(url: str) -> asyncpg.Connection:
    return await asyncpg.connect(url, server_settings={"TimeZone": "UTC"})


async def stage(url: str, dataset: str, path: Path) -> uuid.UUID:
    """The batch's rows in staging.<dataset>, as the transform leaves them, and its ops.batches row."""
    batch_id = uuid.uuid4()
    columns = TEXT_COLUMNS[dataset]
    conn = await _connect(url)
    try:
        async with conn.transaction():
            await conn.execute(
                """INSERT INTO ops.batches (batch_id, dataset, status, file_name, file_format, object_bucket,
                       object_key, sha256, size_bytes)
                   VALUES ($1, $2, 'validated', $3, 'csv', 'raw-data', 'k', $4, $5)""",
                batch_id,
                dataset,
                path.name,
                uuid.uuid4().hex * 2,
                path.stat().st_size,
            )
            await conn.execute(
                f"CREATE TEMP TABLE incoming ({', '.join(f'{c} text' for c in columns)}, line bigserial) ON COMMIT DROP"
            )
            await conn.copy_to_table("incoming", source=path, columns=columns, format="csv", header=True)
            await conn.execute(
                f"""INSERT INTO staging.{dataset} (batch_id, source_line, {", ".join(columns)})
                    SELECT $1, line + 1, {", ".join(typed(c) for c in columns)} FROM incoming""",
                batch_id,
            )
        await conn.execute(f"ANALYZE staging.{dataset}")
    finally:
        await conn.close()
    return batch_id


async def timed_load(settings: WarehouseSettings, dataset: str, batch_id: uuid.UUID) -> tuple[float, str]:
    engine = create_engine(settings)
    try:
        started = time.perf_counter()
        async with engine.begin() as conn:
            result = await repository.load(conn, dataset, batch_id, settings.bulk_policy)
        seconds = time.perf_counter() - started
    finally:
        await engine.dispose()
    detail = f"facts {result.facts:,}, dates {result.dates}, versions {result.versions:,}"
    return seconds, detail


async def analyze(url: str) -> None:
    conn = await _connect(url)
    try:
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


def warehouse_batch(settings: WarehouseSettings, files: Files) -> dict[str, tuple[float, str]]:
    times = {}
    for dataset in DATASETS:
        batch_id = asyncio.run(stage(settings.database_url, dataset, getattr(files, dataset)))
        times[dataset] = asyncio.run(timed_load(settings, dataset, batch_id))
    return times


# --- the baseline ---------------------------------------------------------------------------------------------

BASELINE_DIMENSION = """
MERGE INTO processed.{table} d USING incoming s ON d.{key} = s.{key} AND d.is_current
WHEN MATCHED AND ({d_cols}) IS DISTINCT FROM ({s_cols}) THEN
    UPDATE SET valid_to = s.updated_at, is_current = false;
INSERT INTO processed.{table} ({key}, {cols}, valid_from, batch_id)
SELECT s.{key}, {s_cols}, s.updated_at, '{batch_id}' FROM incoming s
WHERE NOT EXISTS (SELECT 1 FROM processed.{table} d WHERE d.{key} = s.{key} AND d.is_current);
"""
BASELINE_SALES = """
INSERT INTO processed.dim_date (date_key, full_date, year, quarter, month, week, day_of_week, is_weekend)
SELECT to_char(d, 'YYYYMMDD')::integer, d, extract(year FROM d), extract(quarter FROM d), extract(month FROM d),
       extract(week FROM d), extract(isodow FROM d), extract(isodow FROM d) IN (6, 7)
FROM (SELECT DISTINCT (transaction_ts AT TIME ZONE 'UTC')::date AS d FROM incoming) x
ON CONFLICT DO NOTHING;
CREATE TEMP TABLE dates ON COMMIT DROP AS
SELECT DISTINCT to_char((transaction_ts AT TIME ZONE 'UTC')::date, 'YYYYMMDD')::integer AS date_key FROM incoming
UNION SELECT f.date_key FROM processed.fact_sales f JOIN incoming s USING (transaction_id);
INSERT INTO processed.fact_sales AS f (transaction_id, transaction_ts, date_key, customer_key, product_key, quantity,
    unit_price, total_amount, payment_method, status, batch_id)
SELECT s.transaction_id, s.transaction_ts, to_char((s.transaction_ts AT TIME ZONE 'UTC')::date, 'YYYYMMDD')::integer,
       c.customer_key, p.product_key, s.quantity, s.unit_price, s.total_amount, s.payment_method, s.status, '{batch_id}'
FROM incoming s
LEFT JOIN processed.dim_customers c
    ON c.customer_id = s.customer_id AND s.transaction_ts >= c.valid_from AND s.transaction_ts < c.valid_to
LEFT JOIN processed.dim_products p
    ON p.product_id = s.product_id AND s.transaction_ts >= p.valid_from AND s.transaction_ts < p.valid_to
ON CONFLICT (transaction_id) DO UPDATE SET transaction_ts = EXCLUDED.transaction_ts, date_key = EXCLUDED.date_key,
    customer_key = EXCLUDED.customer_key, product_key = EXCLUDED.product_key, quantity = EXCLUDED.quantity,
    unit_price = EXCLUDED.unit_price, total_amount = EXCLUDED.total_amount,
    payment_method = EXCLUDED.payment_method, status = EXCLUDED.status, batch_id = EXCLUDED.batch_id;
DELETE FROM analytics.daily_sales WHERE date_key IN (SELECT date_key FROM dates);
INSERT INTO analytics.daily_sales (date, date_key, orders, revenue, units, avg_order_value, distinct_customers,
    cancelled, refunded, transactions, batch_id)
SELECT d.full_date, f.date_key, count(*) FILTER (WHERE f.status = 'completed'),
       coalesce(sum(f.total_amount) FILTER (WHERE f.status = 'completed'), 0),
       coalesce(sum(f.quantity) FILTER (WHERE f.status = 'completed'), 0),
       coalesce(round(sum(f.total_amount) FILTER (WHERE f.status = 'completed')
                      / nullif(count(*) FILTER (WHERE f.status = 'completed'), 0), 2), 0),
       count(DISTINCT c.customer_id) FILTER (WHERE f.status = 'completed'),
       count(*) FILTER (WHERE f.status = 'cancelled'), count(*) FILTER (WHERE f.status = 'refunded'), count(*),
       '{batch_id}'
FROM processed.fact_sales f JOIN processed.dim_date d USING (date_key)
LEFT JOIN processed.dim_customers c ON c.customer_key = f.customer_key
WHERE f.date_key IN (SELECT date_key FROM dates)
GROUP BY d.full_date, f.date_key;
"""
TRACKED = {
    "customers": ("dim_customers", "customer_id", ["customer_name", "email", "city", "state", "country", "is_active"]),
    "products": ("dim_products", "product_id", ["product_name", "category", "created_at"]),
}


async def baseline_load(url: str, dataset: str, path: Path) -> float:
    columns = TEXT_COLUMNS[dataset]
    conn = await _connect(url)
    try:
        started = time.perf_counter()
        async with conn.transaction():
            await conn.execute(f"CREATE TEMP TABLE incoming ({typed_columns(columns)}) ON COMMIT DROP")
            await conn.copy_to_table("incoming", source=path, columns=columns, format="csv", header=True)
            await conn.execute("ANALYZE incoming")
            batch_id = uuid.uuid4()
            if dataset == "sales":
                await conn.execute(BASELINE_SALES.format(batch_id=batch_id))
            else:
                table, key, cols = TRACKED[dataset]
                await conn.execute(
                    BASELINE_DIMENSION.format(
                        table=table,
                        key=key,
                        cols=", ".join(cols),
                        d_cols=", ".join(f"d.{c}" for c in cols),
                        s_cols=", ".join(f"s.{c}" for c in cols),
                        batch_id=batch_id,
                    )
                )
        return time.perf_counter() - started
    finally:
        await conn.close()


def baseline_batch(url: str, files: Files) -> dict[str, float]:
    return {dataset: asyncio.run(baseline_load(url, dataset, getattr(files, dataset))) for dataset in DATASETS}


async def copy_only(url: str, dataset: str, path: Path) -> float:
    """COPY of the file into a temporary table alone: the share of the baseline that is reading the file."""
    columns = TEXT_COLUMNS[dataset]
    conn = await _connect(url)
    try:
        started = time.perf_counter()
        async with conn.transaction():
            await conn.execute(f"CREATE TEMP TABLE incoming ({typed_columns(columns)}) ON COMMIT DROP")
            await conn.copy_to_table("incoming", source=path, columns=columns, format="csv", header=True)
        return time.perf_counter() - started
    finally:
        await conn.close()


# --- report ---------------------------------------------------------------------------------------------------


def report(
    name: str, ours: dict[str, tuple[float, str]], base: dict[str, float], copies: dict[str, float], target: float
) -> bool:
    print(f"\n{name}")
    for dataset in DATASETS:
        seconds, detail = ours[dataset]
        print(
            f"  {dataset:10} warehouse {seconds:7.2f} s   baseline {base[dataset]:7.2f} s "
            f"(of which COPY {copies[dataset]:5.2f} s)   ratio {seconds / base[dataset]:5.2f}   {detail}"
        )
    total, base_total = sum(s for s, _ in ours.values()), sum(base.values())
    copy_total = sum(copies.values())
    met = total <= target and total <= base_total
    print(
        f"  {'total':10} warehouse {total:7.2f} s   baseline {base_total:7.2f} s "
        f"(of which COPY {copy_total:5.2f} s)   ratio {total / base_total:5.2f}   "
        f"target <= {target:.0f} s and <= baseline: {'met' if met else 'NOT met'}"
    )
    print(f"  {'':10} baseline without its COPY {base_total - copy_total:7.2f} s")
    return met


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--sales", type=int, default=1_000_000)
    parser.add_argument("--incremental", type=int, default=200_000, help="sales rows of the incremental batch")
    parser.add_argument("--dir", type=Path, default=None, help="scratch folder (default: a temp folder)")
    args = parser.parse_args()
    base = WarehouseSettings()
    scratch = Path(tempfile.mkdtemp(prefix="sdp-bench-wh-", dir=args.dir))
    try:
        print(
            f"generating {args.customers:,} customers, {args.products:,} products, {args.sales:,} sales …", flush=True
        )
        first, next_start = first_batch(scratch, args.customers, args.products, args.sales)
        second = incremental_batch(scratch, first, next_start, args.customers, args.products, args.incremental)
        results = []
        with throwaway_database(base) as ours_url, throwaway_database(base) as baseline_url:
            ours = base.model_copy(update={"database_url": ours_url})
            for name, files, target in (
                ("first batch", first, FIRST_TARGET),
                ("incremental", second, INCREMENTAL_TARGET),
            ):
                # Alternated per batch, so a busy moment of the machine weighs on both sides alike.
                base_times = baseline_batch(baseline_url, files)
                our_times = warehouse_batch(ours, files)
                copies = {d: asyncio.run(copy_only(baseline_url, d, getattr(files, d))) for d in DATASETS}
                results.append(report(name, our_times, base_times, copies, target))
                asyncio.run(analyze(ours_url))
                asyncio.run(analyze(baseline_url))
        print("\ntargets met" if all(results) else "\ntargets NOT met")
        return 0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
