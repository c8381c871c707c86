"""Refresh of the analytics tables for the dates a load affected (KPI definitions of DESIGN §5).

Every per-date table is rebuilt for exactly the dates in the ``affected_dates`` temp table, from one scan
of those dates' facts bound to their point-in-time dimension versions; a date left without facts keeps no
row. ``customer_summary`` is rebuilt for the customers a sales load touched; a customer whose first order
moved makes both the old and the new first-order date affected (new vs returning customers change there).
"""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

CREATE_AFFECTED_DATES = """
CREATE TEMP TABLE IF NOT EXISTS affected_dates (full_date date PRIMARY KEY) ON COMMIT DROP
"""

# --- customer_summary, for the customers in touched_customers (sales loads only) ---------------------------
TOUCHED_FIRST_ORDER_DATES = """
INSERT INTO affected_dates (full_date)
SELECT DISTINCT cs.first_order_date FROM analytics.customer_summary cs
WHERE cs.customer_id IN (SELECT customer_id FROM touched_customers)
ON CONFLICT DO NOTHING
"""
CLEAR_CUSTOMER_SUMMARY = """
DELETE FROM analytics.customer_summary WHERE customer_id IN (SELECT customer_id FROM touched_customers)
"""
REFRESH_CUSTOMER_SUMMARY = """
INSERT INTO analytics.customer_summary (customer_id, first_order_date, last_order_date, orders, revenue, units,
    batch_id)
SELECT c.customer_id, min(f.transaction_ts AT TIME ZONE 'UTC')::date, max(f.transaction_ts AT TIME ZONE 'UTC')::date,
       count(*), sum(coalesce(f.total_amount, 0)), sum(coalesce(f.quantity, 0)), :batch_id
FROM processed.fact_sales f JOIN processed.dim_customers c ON c.customer_key = f.customer_key
WHERE f.status = 'completed' AND c.customer_id IN (SELECT customer_id FROM touched_customers)
GROUP BY c.customer_id
"""

# --- the affected dates' facts, once -------------------------------------------------------------------------
REFRESH_FACTS = """
CREATE TEMP TABLE refresh_facts ON COMMIT DROP AS
SELECT dd.full_date AS date, f.date_key, f.status, f.quantity, f.total_amount, f.payment_method,
       c.customer_id, c.state, c.country, p.product_id, p.category
FROM processed.fact_sales f
JOIN processed.dim_date dd ON dd.date_key = f.date_key
LEFT JOIN processed.dim_customers c ON c.customer_key = f.customer_key
LEFT JOIN processed.dim_products p ON p.product_key = f.product_key
WHERE f.date_key IN (SELECT to_char(full_date, 'YYYYMMDD')::integer FROM affected_dates)
"""

COMPLETED = "FILTER (WHERE status = 'completed')"
MEASURES = f"""count(*) {COMPLETED}, coalesce(sum(total_amount) {COMPLETED}, 0),
       coalesce(sum(quantity) {COMPLETED}, 0), count(*)"""
OUTCOMES = "count(*) FILTER (WHERE status = 'cancelled'), count(*) FILTER (WHERE status = 'refunded')"

PER_DATE_TABLES = [
    "analytics.daily_sales",
    "analytics.daily_category_sales",
    "analytics.daily_payment_method_sales",
    "analytics.daily_region_sales",
    "analytics.daily_product_sales",
    "analytics.daily_customer_activity",
]

REFRESH = [
    f"""
    INSERT INTO analytics.daily_sales (date, date_key, orders, revenue, units, transactions, avg_order_value,
        distinct_customers, cancelled, refunded, batch_id)
    SELECT k.*, CASE WHEN k.orders > 0 THEN round(k.revenue / k.orders, 2) ELSE 0 END, k2.customers,
           k2.cancelled, k2.refunded, :batch_id
    FROM (SELECT date, min(date_key), {MEASURES} FROM refresh_facts GROUP BY date)
         AS k (date, date_key, orders, revenue, units, transactions)
    JOIN (SELECT date, count(DISTINCT customer_id) {COMPLETED}, {OUTCOMES} FROM refresh_facts GROUP BY date)
         AS k2 (date, customers, cancelled, refunded) USING (date)
    """,
    f"""
    INSERT INTO analytics.daily_category_sales (date, category, orders, revenue, units, transactions, batch_id)
    SELECT date, category, {MEASURES}, :batch_id FROM refresh_facts GROUP BY date, category
    """,
    f"""
    INSERT INTO analytics.daily_payment_method_sales (date, payment_method, orders, revenue, units, transactions,
        cancelled, refunded, batch_id)
    SELECT date, payment_method, {MEASURES}, {OUTCOMES}, :batch_id FROM refresh_facts GROUP BY date, payment_method
    """,
    f"""
    INSERT INTO analytics.daily_region_sales (date, country, state, orders, revenue, units, transactions,
        distinct_customers, batch_id)
    SELECT date, country, state, {MEASURES}, count(DISTINCT customer_id) {COMPLETED}, :batch_id
    FROM refresh_facts GROUP BY date, country, state
    """,
    f"""
    INSERT INTO analytics.daily_product_sales (date, product_id, orders, revenue, units, transactions,
        cancelled, refunded, batch_id)
    SELECT date, product_id, {MEASURES}, {OUTCOMES}, :batch_id FROM refresh_facts GROUP BY date, product_id
    """,
    """
    INSERT INTO analytics.daily_customer_activity (date, customers, new_customers, returning_customers,
        new_customer_orders, returning_customer_orders, new_customer_revenue, returning_customer_revenue, batch_id)
    SELECT x.date, count(*), count(*) FILTER (WHERE cs.first_order_date = x.date),
           count(*) FILTER (WHERE cs.first_order_date < x.date),
           coalesce(sum(x.orders) FILTER (WHERE cs.first_order_date = x.date), 0),
           coalesce(sum(x.orders) FILTER (WHERE cs.first_order_date < x.date), 0),
           coalesce(sum(x.revenue) FILTER (WHERE cs.first_order_date = x.date), 0),
           coalesce(sum(x.revenue) FILTER (WHERE cs.first_order_date < x.date), 0),
           :batch_id
    FROM (SELECT date, customer_id, count(*) AS orders, sum(coalesce(total_amount, 0)) AS revenue
          FROM refresh_facts WHERE status = 'completed' AND customer_id IS NOT NULL
          GROUP BY date, customer_id) x
    JOIN analytics.customer_summary cs ON cs.customer_id = x.customer_id
    GROUP BY x.date
    """,
]


async def prepare(conn: AsyncConnection) -> None:
    await conn.execute(text(CREATE_AFFECTED_DATES))


async def refresh_customer_summary(conn: AsyncConnection, batch_id: uuid.UUID) -> None:
    """Rebuild the touched customers' summaries; their old and new first-order dates become affected."""
    params = {"batch_id": batch_id}
    await conn.execute(text(TOUCHED_FIRST_ORDER_DATES))
    await conn.execute(text(CLEAR_CUSTOMER_SUMMARY))
    await conn.execute(text(REFRESH_CUSTOMER_SUMMARY), params)
    await conn.execute(text(TOUCHED_FIRST_ORDER_DATES))


async def refresh(conn: AsyncConnection, batch_id: uuid.UUID) -> int:
    """Rebuild every per-date analytics table for the affected dates; returns how many dates."""
    params = {"batch_id": batch_id}
    await conn.execute(text(REFRESH_FACTS))
    for table in PER_DATE_TABLES:
        await conn.execute(text(f"DELETE FROM {table} WHERE date IN (SELECT full_date FROM affected_dates)"))
    for statement in REFRESH:
        await conn.execute(text(statement), params)
    dates = (await conn.execute(text("SELECT count(*) FROM affected_dates"))).scalar_one()
    await conn.execute(text("DROP TABLE refresh_facts, affected_dates"))
    return int(dates)
