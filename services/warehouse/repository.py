"""SQL of the warehouse loads. Every statement takes the batch id as its only input; each load runs inside the
caller's transaction and never commits."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.warehouse import analytics, dimensions
from services.warehouse.bulk import BulkPolicy, estimated_rows

# One advisory lock per dataset. A load takes the locks of every dataset whose tables it reads or writes,
# always in this order (no deadlock): a sales load binds to both dimensions; a dimension load re-binds
# facts. So two loads never interleave where they share data.
LOCK_KEYS = {"customers": 0x5D_0011, "products": 0x5D_0012, "sales": 0x5D_0013}
# The start of an inferred member's interval: facts of any date can bind to it until real history arrives.
EARLIEST = "'1900-01-01 00:00:00+00'"
# A dimension load writing at least this many versions, and this share of the rows the planner knows of,
# refreshes the dimension's statistics.
ANALYZE_AFTER_VERSIONS = 1_000
ANALYZE_AFTER_SHARE = 0.2
STAGED_ROWS = "SELECT count(*) FROM staging.sales WHERE batch_id = :batch_id"
# For this transaction only: the hash joins and aggregates of a large batch stay in memory.
WORK_MEM = "SET LOCAL work_mem = '256MB'"

# The batch's dates and those of the facts its transactions held before (OLD_FACTS).
AFFECTED_DATES = """
INSERT INTO affected_dates (full_date)
SELECT (transaction_ts AT TIME ZONE 'UTC')::date FROM staging.sales WHERE batch_id = :batch_id
UNION
SELECT date FROM fact_delta
ON CONFLICT DO NOTHING
"""

DIM_DATE = """
INSERT INTO processed.dim_date (date_key, full_date, year, quarter, month, week, day_of_week, is_weekend)
SELECT to_char(d, 'YYYYMMDD')::integer, d, extract(year FROM d), extract(quarter FROM d),
       extract(month FROM d), extract(week FROM d), extract(isodow FROM d), extract(isodow FROM d) IN (6, 7)
FROM (SELECT DISTINCT (transaction_ts AT TIME ZONE 'UTC')::date AS d
      FROM staging.sales WHERE batch_id = :batch_id) dates
ON CONFLICT (date_key) DO NOTHING
"""

INFERRED_CUSTOMERS = f"""
INSERT INTO processed.dim_customers (customer_id, valid_from, is_inferred, batch_id)
SELECT DISTINCT s.customer_id, {EARLIEST}::timestamptz, true, s.batch_id
FROM staging.sales s
WHERE s.batch_id = :batch_id AND s.customer_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM processed.dim_customers c WHERE c.customer_id = s.customer_id)
"""

INFERRED_PRODUCTS = f"""
INSERT INTO processed.dim_products (product_id, valid_from, is_inferred, batch_id)
SELECT DISTINCT s.product_id, {EARLIEST}::timestamptz, true, s.batch_id
FROM staging.sales s
WHERE s.batch_id = :batch_id AND s.product_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM processed.dim_products p WHERE p.product_id = s.product_id)
"""

# A fact's batch_id is the sales batch whose record it holds (re-binding it to another dimension version
# keeps it): replaying a batch received before that one changes nothing.
RECEIVED = "(SELECT b.received_at FROM ops.batches b WHERE b.batch_id = {})"
# Point in time: the version whose [valid_from, valid_to) holds the sale; before the first version, the first
# version, whose interval is stretched back to -infinity for the join. One hash join per dimension, which also
# brings what the analytics group a fact by (the bound version's attributes).
BINDABLE = f"""(
    SELECT {{sk}}, {{key}}, {{attributes}}, valid_to, {dimensions.BIND_FROM} AS bind_from
    FROM processed.{{table}})"""
FACT_COLUMNS = (
    "transaction_ts",
    "date_key",
    "customer_key",
    "product_key",
    "quantity",
    "unit_price",
    "total_amount",
    "payment_method",
    "status",
)
# The facts the batch's transactions hold now, as the analytics saw them; those the update leaves alone are
# dropped again after it.
OLD_FACTS = """
INSERT INTO fact_delta (sale_key, sign, date, status, quantity, total_amount, payment_method, product_id, category,
    customer_id, country, state, transaction_id)
SELECT f.sale_key, -1, (f.transaction_ts AT TIME ZONE 'UTC')::date, f.status, f.quantity, f.total_amount,
       f.payment_method, p.product_id, p.category, c.customer_id, c.country, c.state, f.transaction_id
FROM staging.sales s
JOIN processed.fact_sales f ON f.transaction_id = s.transaction_id
LEFT JOIN processed.dim_products p ON p.product_key = f.product_key
LEFT JOIN processed.dim_customers c ON c.customer_key = f.customer_key
WHERE s.batch_id = :batch_id
"""
UNCHANGED_FACTS = """
DELETE FROM fact_delta o
WHERE o.sign = -1 AND NOT EXISTS (SELECT 1 FROM fact_delta n WHERE n.sign = 1 AND n.sale_key = o.sale_key)
"""
# The batch's facts bound point in time, with the bound versions' attributes the analytics group by.
BOUND_SALES = f"""
SELECT s.transaction_id, s.transaction_ts, to_char((s.transaction_ts AT TIME ZONE 'UTC')::date, 'YYYYMMDD')::integer
       AS date_key, c.customer_key, p.product_key, s.quantity, s.unit_price, s.total_amount, s.payment_method,
       s.status, s.batch_id, p.product_id, p.category, c.customer_id, c.country, c.state
FROM staging.sales s
LEFT JOIN {BINDABLE.format(sk="customer_key", table="dim_customers", key="customer_id", attributes="country, state")} c
    ON c.customer_id = s.customer_id AND s.transaction_ts >= c.bind_from AND s.transaction_ts < c.valid_to
LEFT JOIN {BINDABLE.format(sk="product_key", table="dim_products", key="product_id", attributes="category")} p
    ON p.product_id = s.product_id AND s.transaction_ts >= p.bind_from AND s.transaction_ts < p.valid_to
WHERE s.batch_id = :batch_id
"""
# Bound once, for the update and the insert: a transaction loaded already has the sale_key of its fact (OLD_FACTS
# found them); a new one takes its sale_key from the identity's sequence here, so that its fact and its delta row
# are both written from this table. The sequence is resolved once (an init plan), not per row: resolved per row,
# binding 1M rows took 7 s instead of 2.
BATCH_FACTS = f"""
CREATE TEMP TABLE batch_facts ON COMMIT DROP AS
SELECT n.*, o.sale_key IS NULL AS is_new,
       coalesce(o.sale_key, nextval((SELECT pg_get_serial_sequence('processed.fact_sales', 'sale_key')::regclass)))
           AS sale_key
FROM ({BOUND_SALES}) n
LEFT JOIN fact_delta o ON o.sign = -1 AND o.transaction_id = n.transaction_id
"""
# The facts the batch writes, as the additive analytics group them (their bound versions' attributes).
BATCH_DELTA = """
INSERT INTO fact_delta (sale_key, sign, date, status, quantity, total_amount, payment_method, product_id, category,
    customer_id, country, state)
SELECT n.sale_key, 1, (n.transaction_ts AT TIME ZONE 'UTC')::date, n.status, n.quantity, n.total_amount,
       n.payment_method, n.product_id, n.category, n.customer_id, n.country, n.state
FROM batch_facts n"""
# A transaction already loaded takes the batch's record when it differs and the batch is not older than the
# one whose record the fact holds.
NEW_RECORD = ", ".join(f"{{new}}.{c}" for c in FACT_COLUMNS)
CHANGED = f"""({", ".join(f"f.{c}" for c in FACT_COLUMNS)}) IS DISTINCT FROM ({NEW_RECORD})
  AND coalesce({RECEIVED.format("{new}.batch_id")} >= {RECEIVED.format("f.batch_id")}, true)"""
# The transactions already loaded are updated, the others inserted. No ON CONFLICT: the sales lock keeps every
# other writer of fact_sales out, and a plain insert skips the speculative insertion ON CONFLICT makes per row
# (200,000 new facts into the benchmark's million: 4.6 s with it, 2.9 s without). With the indexes suspended
# (bulk.py) there is no arbiter index anyway.
UPDATE_FACTS = f"""
WITH written AS (
UPDATE processed.fact_sales f
SET ({", ".join(FACT_COLUMNS)}, batch_id, loaded_at) = ({", ".join(f"n.{c}" for c in FACT_COLUMNS)}, n.batch_id, now())
FROM batch_facts n
WHERE NOT n.is_new AND f.sale_key = n.sale_key AND {CHANGED.format(new="n")}
RETURNING f.sale_key)
{BATCH_DELTA} JOIN written w ON w.sale_key = n.sale_key WHERE NOT n.is_new
"""
INSERT_FACTS = f"""
INSERT INTO processed.fact_sales (sale_key, transaction_id, {", ".join(FACT_COLUMNS)}, batch_id)
OVERRIDING SYSTEM VALUE
SELECT n.sale_key, n.transaction_id, {", ".join(f"n.{c}" for c in FACT_COLUMNS)}, n.batch_id
FROM batch_facts n WHERE n.is_new
"""
INSERTED_FACTS_DELTA = f"{BATCH_DELTA} WHERE n.is_new"


@dataclass(frozen=True)
class LoadResult:
    facts: int  # facts inserted or updated (a dimension load: facts re-bound to another version)
    dates: int  # dates whose analytics were refreshed
    versions: int = 0  # dimension versions inserted or whose attributes changed
    removed: int = 0  # dimension versions merged away


async def analyze(conn: AsyncConnection, table: str) -> None:
    """Fresh planner statistics of a table a load changed much of (as its owner: ops.analyze_table)."""
    await conn.execute(text("SELECT ops.analyze_table(CAST(:table AS regclass))"), {"table": table})


async def lock(conn: AsyncConnection, *datasets: str) -> None:
    for dataset in sorted(datasets, key=list(LOCK_KEYS).index):
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEYS[dataset]})


async def load_sales(conn: AsyncConnection, batch_id: uuid.UUID, bulk: BulkPolicy) -> LoadResult:
    """dim_date, inferred members, facts and the analytics of the dates they are on, for one sales batch."""
    params = {"batch_id": batch_id}
    await lock(conn, "customers", "products", "sales")
    await conn.execute(text(WORK_MEM))
    await analytics.prepare(conn)
    await conn.execute(text(DIM_DATE), params)
    await conn.execute(text(INFERRED_CUSTOMERS), params)
    await conn.execute(text(INFERRED_PRODUCTS), params)
    await conn.execute(text(OLD_FACTS), params)
    await conn.execute(text(AFFECTED_DATES), params)
    rows = (await conn.execute(text(STAGED_ROWS), params)).scalar_one()
    async with bulk.indexes(conn, "processed.fact_sales", rows) as rebuilt:
        await conn.execute(text(BATCH_FACTS), params)
        await conn.execute(text("ANALYZE batch_facts"))
        facts = (await conn.execute(text(UPDATE_FACTS))).rowcount
        facts += (await conn.execute(text(INSERT_FACTS))).rowcount
        await conn.execute(text(INSERTED_FACTS_DELTA))
        await conn.execute(text("DROP TABLE batch_facts"))
    if rebuilt:
        await analyze(conn, "processed.fact_sales")
    await conn.execute(text(UNCHANGED_FACTS))
    await analytics.refresh_customer_summary(conn, batch_id)
    dates = await analytics.refresh(conn, batch_id, bulk)
    return LoadResult(facts=int(facts), dates=dates)


async def load_dimension(conn: AsyncConnection, dataset: str, batch_id: uuid.UUID, bulk: BulkPolicy) -> LoadResult:
    """SCD2 merge of one customers or products batch, facts re-bound, analytics of the dates that moved."""
    await lock(conn, dataset, "sales")
    await conn.execute(text(WORK_MEM))
    await analytics.prepare(conn)
    merged = await dimensions.merge(conn, dataset, batch_id)
    table = dimensions.DIMENSIONS[dataset].table
    if merged.versions_written >= max(ANALYZE_AFTER_VERSIONS, ANALYZE_AFTER_SHARE * await estimated_rows(conn, table)):
        # The sales load that follows binds its facts to these versions: the planner should know them.
        await analyze(conn, table)
    dates = await analytics.refresh(conn, batch_id, bulk)
    return LoadResult(
        facts=merged.facts_rebound, dates=dates, versions=merged.versions_written, removed=merged.versions_removed
    )


async def load(conn: AsyncConnection, dataset: str, batch_id: uuid.UUID, bulk: BulkPolicy) -> LoadResult:
    if dataset == "sales":
        return await load_sales(conn, batch_id, bulk)
    return await load_dimension(conn, dataset, batch_id, bulk)
