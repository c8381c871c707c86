"""SQL of the warehouse load. Every statement takes the batch id as its only input."""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

# One warehouse load at a time: SCD2 dimensions and facts are read and written by every dataset's load.
WAREHOUSE_LOCK_KEY = 0x5D_0001
# The start of an inferred member's interval: facts of any date can bind to it until real history arrives.
EARLIEST = "'1900-01-01 00:00:00+00'"

AFFECTED_DATES = """
CREATE TEMP TABLE affected_dates ON COMMIT DROP AS
SELECT (s.transaction_ts AT TIME ZONE 'UTC')::date AS full_date
FROM staging.sales s WHERE s.batch_id = :batch_id
UNION
SELECT d.full_date
FROM staging.sales s
JOIN processed.fact_sales f ON f.transaction_id = s.transaction_id
JOIN processed.dim_date d ON d.date_key = f.date_key
WHERE s.batch_id = :batch_id
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

# Point in time: the version whose [valid_from, valid_to) holds the sale; before the first version,
# the first version. A later record of a transaction replaces the earlier one.
UPSERT_FACTS = """
INSERT INTO processed.fact_sales AS f (transaction_id, transaction_ts, date_key, customer_key, product_key,
    quantity, unit_price, total_amount, payment_method, status, batch_id)
SELECT s.transaction_id, s.transaction_ts, to_char((s.transaction_ts AT TIME ZONE 'UTC')::date, 'YYYYMMDD')::integer,
       c.customer_key, p.product_key, s.quantity, s.unit_price, s.total_amount, s.payment_method, s.status,
       s.batch_id
FROM staging.sales s
LEFT JOIN LATERAL (
    SELECT dc.customer_key FROM processed.dim_customers dc
    WHERE dc.customer_id = s.customer_id
    ORDER BY (s.transaction_ts >= dc.valid_from AND s.transaction_ts < dc.valid_to) DESC, dc.valid_from
    LIMIT 1) c ON true
LEFT JOIN LATERAL (
    SELECT dp.product_key FROM processed.dim_products dp
    WHERE dp.product_id = s.product_id
    ORDER BY (s.transaction_ts >= dp.valid_from AND s.transaction_ts < dp.valid_to) DESC, dp.valid_from
    LIMIT 1) p ON true
WHERE s.batch_id = :batch_id
ON CONFLICT (transaction_id) DO UPDATE SET
    transaction_ts = EXCLUDED.transaction_ts, date_key = EXCLUDED.date_key,
    customer_key = EXCLUDED.customer_key, product_key = EXCLUDED.product_key,
    quantity = EXCLUDED.quantity, unit_price = EXCLUDED.unit_price, total_amount = EXCLUDED.total_amount,
    payment_method = EXCLUDED.payment_method, status = EXCLUDED.status, batch_id = EXCLUDED.batch_id,
    loaded_at = now()
"""

CLEAR_DAILY_SALES = "DELETE FROM analytics.daily_sales WHERE date IN (SELECT full_date FROM affected_dates)"

# KPI definitions of DESIGN §5; a date with no fact left has no row.
REFRESH_DAILY_SALES = """
INSERT INTO analytics.daily_sales (date, date_key, orders, revenue, units, avg_order_value, distinct_customers,
    cancelled, refunded, transactions, batch_id)
SELECT d.full_date, d.date_key, k.orders, k.revenue, k.units,
       CASE WHEN k.orders > 0 THEN round(k.revenue / k.orders, 2) ELSE 0 END,
       k.distinct_customers, k.cancelled, k.refunded, k.transactions, :batch_id
FROM (
    SELECT f.date_key,
           count(*) FILTER (WHERE f.status = 'completed') AS orders,
           coalesce(sum(f.total_amount) FILTER (WHERE f.status = 'completed'), 0) AS revenue,
           coalesce(sum(f.quantity) FILTER (WHERE f.status = 'completed'), 0) AS units,
           count(DISTINCT c.customer_id) FILTER (WHERE f.status = 'completed') AS distinct_customers,
           count(*) FILTER (WHERE f.status = 'cancelled') AS cancelled,
           count(*) FILTER (WHERE f.status = 'refunded') AS refunded,
           count(*) AS transactions
    FROM processed.fact_sales f
    LEFT JOIN processed.dim_customers c ON c.customer_key = f.customer_key
    WHERE f.date_key IN (SELECT to_char(full_date, 'YYYYMMDD')::integer FROM affected_dates)
    GROUP BY f.date_key) k
JOIN processed.dim_date d ON d.date_key = k.date_key
"""


async def load_sales(conn: AsyncConnection, batch_id: uuid.UUID) -> tuple[int, int]:
    """Dimensions, facts and daily analytics for one sales batch; returns (facts upserted, dates refreshed)."""
    params = {"batch_id": batch_id}
    await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": WAREHOUSE_LOCK_KEY})
    await conn.execute(text(AFFECTED_DATES), params)
    await conn.execute(text(DIM_DATE), params)
    await conn.execute(text(INFERRED_CUSTOMERS), params)
    await conn.execute(text(INFERRED_PRODUCTS), params)
    facts = (await conn.execute(text(UPSERT_FACTS), params)).rowcount
    await conn.execute(text(CLEAR_DAILY_SALES))
    await conn.execute(text(REFRESH_DAILY_SALES), params)
    dates = (await conn.execute(text("SELECT count(*) FROM affected_dates"))).scalar_one()
    return int(facts), int(dates)
