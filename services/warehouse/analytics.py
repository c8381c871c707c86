"""Refresh of the analytics tables for the dates a load affected (KPI definitions of DESIGN §5).

The additive measures (counts and sums) are maintained by difference: a load writes the facts it changes
into the ``fact_delta`` temp table, each old version with sign -1 and each new one with sign +1 (a sales
load: the facts it replaced and their new records; a dimension load: the facts whose version, or its
category or region, moved), and adds the signed sums to ``daily_sales``, ``daily_category_sales``,
``daily_payment_method_sales`` and ``daily_product_sales``; a group left without transactions loses its
row.

What is not additive (distinct customers, the region table that carries them, new vs returning customers)
is handled per date. A date the delta changed a good share of (``BulkPolicy.min_share`` of its
transactions, in a load of at least ``min_rows``: a batch of new days) is rebuilt from one scan of its
facts bound to their point-in-time customer versions. On every other date the figures move by the
customers that start or stop counting there: a customer counts on a day while it has a completed
transaction that day, so only the (date, customer) pairs the delta touches, and the old and new first-order
dates of customers whose first order moved (new vs returning changes there and nowhere else), are read
from the facts. A load that re-sends a few transactions of every past day thus reads a few thousand facts,
not the year.

``customer_summary`` is moved by difference too for a sales load's customers that only gained completed
orders, and recounted from the facts for those that lost one.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.warehouse.bulk import BulkPolicy

CREATE_AFFECTED_DATES = """
CREATE TEMP TABLE IF NOT EXISTS affected_dates (full_date date PRIMARY KEY) ON COMMIT DROP
"""
# One row per fact version a load removes (sign -1) or writes (sign +1), with what the additive tables group by.
CREATE_FACT_DELTA = """
CREATE TEMP TABLE IF NOT EXISTS fact_delta (
    sale_key bigint NOT NULL, sign integer NOT NULL, date date NOT NULL, status text, quantity integer,
    total_amount numeric(12, 2), payment_method text, product_id text, category text,
    customer_id text, country text, state text,  -- the customer version the fact is bound to
    transaction_id text  -- a sales load's old facts: which of the batch's transactions are loaded already
) ON COMMIT DROP
"""
# The customers whose first-order date a sales load moves, with the date before and after (NULL: none).
CREATE_FIRST_ORDER_MOVES = """
CREATE TEMP TABLE IF NOT EXISTS first_order_moves (customer_id text PRIMARY KEY, before date, after date)
ON COMMIT DROP
"""

# --- customer_summary, by difference (sales loads only) ----------------------------------------------------
# Per customer, what the batch's fact changes do to its completed orders. Adding completed facts moves the
# sums and can only move the first order earlier and the last later; a customer that lost a completed fact
# (refunded, cancelled, replaced) is recounted from its facts.
SUMMARY_DELTA = """
CREATE TEMP TABLE summary_delta ON COMMIT DROP AS
SELECT customer_id,
       coalesce(sum(sign) FILTER (WHERE status = 'completed'), 0) AS orders,
       coalesce(sum(sign * coalesce(total_amount, 0)) FILTER (WHERE status = 'completed'), 0) AS revenue,
       coalesce(sum(sign * coalesce(quantity, 0)) FILTER (WHERE status = 'completed'), 0) AS units,
       min(date) FILTER (WHERE status = 'completed' AND sign = 1) AS first_added,
       max(date) FILTER (WHERE status = 'completed' AND sign = 1) AS last_added,
       bool_or(status = 'completed' AND sign = -1) AS recount
FROM fact_delta WHERE customer_id IS NOT NULL
GROUP BY customer_id
HAVING bool_or(status = 'completed')
"""
# New vs returning customers change on a moved first order's old and new date, and nowhere else. A customer's
# first completed order ever moves nothing: it had no completed order on any day before, and the days it has
# one now are in the delta.
FIRST_ORDERS_BEFORE = """
INSERT INTO first_order_moves (customer_id, before)
SELECT d.customer_id, cs.first_order_date
FROM summary_delta d LEFT JOIN analytics.customer_summary cs USING (customer_id)
WHERE d.recount OR d.first_added < cs.first_order_date
"""
FIRST_ORDERS_AFTER = [
    """UPDATE first_order_moves m SET after = cs.first_order_date
       FROM analytics.customer_summary cs WHERE cs.customer_id = m.customer_id""",
    "DELETE FROM first_order_moves WHERE before IS NOT DISTINCT FROM after",
    """INSERT INTO affected_dates (full_date)
       SELECT before FROM first_order_moves WHERE before IS NOT NULL
       UNION SELECT after FROM first_order_moves WHERE after IS NOT NULL
       ON CONFLICT DO NOTHING""",
]
# Customers with a summary already take the delta by a joined update (no speculative insertion per row, which
# ON CONFLICT makes); the others are inserted.
SUMMARY_ADD = [
    """
    UPDATE analytics.customer_summary t
    SET first_order_date = least(t.first_order_date, d.first_added),
        last_order_date = greatest(t.last_order_date, d.last_added),
        orders = t.orders + d.orders, revenue = t.revenue + d.revenue, units = t.units + d.units,
        batch_id = :batch_id, refreshed_at = now()
    FROM summary_delta d WHERE NOT d.recount AND t.customer_id = d.customer_id
    """,
    """
    INSERT INTO analytics.customer_summary (customer_id, first_order_date, last_order_date, orders, revenue, units,
        batch_id)
    SELECT customer_id, first_added, last_added, orders, revenue, units, :batch_id FROM summary_delta d
    WHERE NOT recount AND NOT EXISTS (SELECT 1 FROM analytics.customer_summary t WHERE t.customer_id = d.customer_id)
    """,
]
SUMMARY_RECOUNT = [
    "DELETE FROM analytics.customer_summary WHERE customer_id IN (SELECT customer_id FROM summary_delta WHERE recount)",
    """
    INSERT INTO analytics.customer_summary (customer_id, first_order_date, last_order_date, orders, revenue, units,
        batch_id)
    SELECT c.customer_id, min(f.transaction_ts AT TIME ZONE 'UTC')::date,
           max(f.transaction_ts AT TIME ZONE 'UTC')::date, count(*), sum(coalesce(f.total_amount, 0)),
           sum(coalesce(f.quantity, 0)), :batch_id
    FROM processed.fact_sales f JOIN processed.dim_customers c ON c.customer_key = f.customer_key
    WHERE f.status = 'completed' AND c.customer_id IN (SELECT customer_id FROM summary_delta WHERE recount)
    GROUP BY c.customer_id
    """,
]

# --- additive measures, by difference -------------------------------------------------------------------
SIGNED_COMPLETED = "FILTER (WHERE status = 'completed')"
SIGNED_MEASURES = f"""coalesce(sum(sign) {SIGNED_COMPLETED}, 0),
       coalesce(sum(sign * total_amount) {SIGNED_COMPLETED}, 0),
       coalesce(sum(sign * quantity) {SIGNED_COMPLETED}, 0), sum(sign)"""
SIGNED_OUTCOMES = """coalesce(sum(sign) FILTER (WHERE status = 'cancelled'), 0),
       coalesce(sum(sign) FILTER (WHERE status = 'refunded'), 0)"""
ADDED = "orders = t.orders + EXCLUDED.orders, revenue = t.revenue + EXCLUDED.revenue, units = t.units + EXCLUDED.units,"
ADDED += " transactions = t.transactions + EXCLUDED.transactions"
OUTCOMES_ADDED = "cancelled = t.cancelled + EXCLUDED.cancelled, refunded = t.refunded + EXCLUDED.refunded"
STAMP = "batch_id = EXCLUDED.batch_id, refreshed_at = now()"

DELTA_DATES = """
INSERT INTO affected_dates (full_date) SELECT DISTINCT date FROM fact_delta ON CONFLICT DO NOTHING
"""
APPLY_DELTA = [
    f"""
    INSERT INTO analytics.daily_sales AS t (date, date_key, orders, revenue, units, transactions, cancelled,
        refunded, avg_order_value, distinct_customers, batch_id)
    SELECT date, to_char(date, 'YYYYMMDD')::integer, {SIGNED_MEASURES}, {SIGNED_OUTCOMES}, 0, 0, :batch_id
    FROM fact_delta GROUP BY date
    ON CONFLICT (date) DO UPDATE SET {ADDED}, {OUTCOMES_ADDED}, {STAMP}
    """,
    f"""
    INSERT INTO analytics.daily_category_sales AS t (date, category, orders, revenue, units, transactions, batch_id)
    SELECT date, category, {SIGNED_MEASURES}, :batch_id FROM fact_delta GROUP BY date, category
    ON CONFLICT ON CONSTRAINT daily_category_sales_key DO UPDATE SET {ADDED}, {STAMP}
    """,
    f"""
    INSERT INTO analytics.daily_payment_method_sales AS t (date, payment_method, orders, revenue, units,
        transactions, cancelled, refunded, batch_id)
    SELECT date, payment_method, {SIGNED_MEASURES}, {SIGNED_OUTCOMES}, :batch_id
    FROM fact_delta GROUP BY date, payment_method
    ON CONFLICT ON CONSTRAINT daily_payment_method_sales_key DO UPDATE SET {ADDED}, {OUTCOMES_ADDED}, {STAMP}
    """,
]
# daily_product_sales holds about a row per fact (few sales of one product a day): the dates rebuilt
# (REBUILT_DATES) get their rows recomputed from their facts (PRODUCT_REBUILT_INSERT), plain inserts; the others take
# the delta.
PRODUCT_DELTA = f"""
    INSERT INTO analytics.daily_product_sales AS t (date, product_id, orders, revenue, units, transactions,
        cancelled, refunded, batch_id)
    SELECT date, product_id, {SIGNED_MEASURES}, {SIGNED_OUTCOMES}, :batch_id
    FROM fact_delta WHERE date NOT IN (SELECT full_date FROM rebuilt_dates) GROUP BY date, product_id
    ORDER BY date, product_id  -- the key's order
    ON CONFLICT ON CONSTRAINT daily_product_sales_key DO UPDATE SET {ADDED}, {OUTCOMES_ADDED}, {STAMP}
"""
ADDITIVE_TABLES = [
    "analytics.daily_sales",
    "analytics.daily_category_sales",
    "analytics.daily_payment_method_sales",
    "analytics.daily_product_sales",
]

# --- what is not additive: distinct customers, the region table that carries them, new vs returning --------
# A date the load changed much of is rebuilt from its facts. On the others the figures move by the customers
# that start or stop counting on a day (a customer counts while it has a completed transaction there), read
# off the touched customers' facts of those days.
REBUILT_DATES = """
CREATE TEMP TABLE rebuilt_dates ON COMMIT DROP AS
SELECT a.full_date FROM affected_dates a
LEFT JOIN (SELECT date, count(*) AS n FROM fact_delta GROUP BY date) d ON d.date = a.full_date
LEFT JOIN analytics.daily_sales s ON s.date = a.full_date
WHERE :large AND coalesce(d.n, 0) >= CAST(:share AS float8) * coalesce(s.transactions, 0)
"""
# The moved path skips the rebuilt dates: their figures are recomputed after it, whatever it wrote there.
NOT_REBUILT = "date NOT IN (SELECT full_date FROM rebuilt_dates)"
# What the batch changes per (date, customer, region as of the sale) on the dates not rebuilt.
CUSTOMER_DAY_DELTA = f"""
CREATE TEMP TABLE customer_day_delta ON COMMIT DROP AS
SELECT * FROM (SELECT date, customer_id, country, state, {SIGNED_MEASURES}
               FROM fact_delta WHERE {NOT_REBUILT} GROUP BY date, customer_id, country, state)
              AS d (date, customer_id, country, state, orders, revenue, units, transactions)
WHERE (orders, revenue, units, transactions) <> (0, 0, 0, 0)
"""
# The (date, customer) pairs whose standing may move: the batch changed their completed sales, or the day is
# the customer's old or new first-order date (new vs returning changes there and nowhere else).
ACTIVITY_PAIRS = f"""
CREATE TEMP TABLE activity_pairs ON COMMIT DROP AS
SELECT date, customer_id, sum(orders) AS orders, sum(revenue) AS revenue
FROM (SELECT date, customer_id, orders, revenue FROM customer_day_delta
      WHERE customer_id IS NOT NULL AND (orders <> 0 OR revenue <> 0)
      UNION ALL SELECT before, customer_id, 0, 0 FROM first_order_moves WHERE before IS NOT NULL
      UNION ALL SELECT after, customer_id, 0, 0 FROM first_order_moves WHERE after IS NOT NULL) x
WHERE {NOT_REBUILT}
GROUP BY date, customer_id
"""
# The completed sales those customers hold now on those days, by region as of the sale.
CUSTOMER_DAYS = """
CREATE TEMP TABLE customer_days ON COMMIT DROP AS
SELECT to_char(date, 'YYYYMMDD')::integer AS date_key, customer_id FROM activity_pairs
UNION
SELECT to_char(date, 'YYYYMMDD')::integer, customer_id FROM customer_day_delta WHERE customer_id IS NOT NULL
"""
CUSTOMER_DAY_NOW = """
CREATE TEMP TABLE customer_day_now ON COMMIT DROP AS
SELECT (f.transaction_ts AT TIME ZONE 'UTC')::date AS date, c.customer_id, c.country, c.state,
       count(*) FILTER (WHERE f.status = 'completed') AS orders,
       coalesce(sum(f.total_amount) FILTER (WHERE f.status = 'completed'), 0) AS revenue
FROM customer_days k
JOIN processed.dim_customers c ON c.customer_id = k.customer_id
JOIN processed.fact_sales f ON f.customer_key = c.customer_key AND f.date_key = k.date_key
GROUP BY 1, 2, 3, 4
"""


def _same(column: str) -> str:
    """Equality of two nullable columns that a hash join can still use."""
    return f"coalesce(n.{column}, '') = coalesce(d.{column}, '') AND (n.{column} IS NULL) = (d.{column} IS NULL)"


AFTER = "coalesce(n.orders, 0)"
STARTS = f"count(*) FILTER (WHERE d.customer_id IS NOT NULL AND {AFTER} > 0 AND {AFTER} - d.orders <= 0)"
STOPS = f"count(*) FILTER (WHERE d.customer_id IS NOT NULL AND {AFTER} <= 0 AND {AFTER} - d.orders > 0)"
REGION_DELTA = f"""
INSERT INTO analytics.daily_region_sales AS t (date, country, state, orders, revenue, units, transactions,
    distinct_customers, batch_id)
SELECT d.date, d.country, d.state, sum(d.orders), sum(d.revenue), sum(d.units), sum(d.transactions),
       {STARTS} - {STOPS}, :batch_id
FROM customer_day_delta d
LEFT JOIN customer_day_now n
    ON n.date = d.date AND {_same("customer_id")} AND {_same("country")} AND {_same("state")}
GROUP BY d.date, d.country, d.state
ON CONFLICT ON CONSTRAINT daily_region_sales_key DO UPDATE
SET {ADDED}, distinct_customers = t.distinct_customers + EXCLUDED.distinct_customers, {STAMP}
"""


def _standing(side: str) -> str:
    """A pair's contribution to daily_customer_activity, before (``b``) or after (``a``) the load."""
    orders, revenue, first = f"{side}_orders", f"{side}_revenue", f"{side}_first"
    return f"""count(*) FILTER (WHERE {orders} > 0), count(*) FILTER (WHERE {orders} > 0 AND {first} = date),
           count(*) FILTER (WHERE {orders} > 0 AND {first} < date),
           coalesce(sum({orders}) FILTER (WHERE {first} = date), 0),
           coalesce(sum({orders}) FILTER (WHERE {first} < date), 0),
           coalesce(sum({revenue}) FILTER (WHERE {first} = date), 0),
           coalesce(sum({revenue}) FILTER (WHERE {first} < date), 0)"""


ACTIVITY_COLUMNS = (
    "customers, new_customers, returning_customers, new_customer_orders, returning_customer_orders, "
    "new_customer_revenue, returning_customer_revenue"
)
ACTIVITY_DELTA = f"""
CREATE TEMP TABLE activity_delta ON COMMIT DROP AS
WITH now AS (
    SELECT p.date, p.customer_id, coalesce(sum(s.orders), 0) AS a_orders, coalesce(sum(s.revenue), 0) AS a_revenue,
           coalesce(sum(s.orders), 0) - p.orders AS b_orders, coalesce(sum(s.revenue), 0) - p.revenue AS b_revenue
    FROM activity_pairs p
    LEFT JOIN customer_day_now s ON s.date = p.date AND s.customer_id = p.customer_id
    GROUP BY p.date, p.customer_id, p.orders, p.revenue),
pairs AS (
    SELECT n.*, cs.first_order_date AS a_first,
           CASE WHEN m.customer_id IS NULL THEN cs.first_order_date ELSE m.before END AS b_first
    FROM now n
    LEFT JOIN analytics.customer_summary cs ON cs.customer_id = n.customer_id
    LEFT JOIN first_order_moves m ON m.customer_id = n.customer_id)
SELECT a.date, {", ".join(f"a.{c} - b.{c} AS {c}" for c in ACTIVITY_COLUMNS.split(", "))}
FROM (SELECT date, {_standing("a")} FROM pairs GROUP BY date) AS a (date, {ACTIVITY_COLUMNS})
JOIN (SELECT date, {_standing("b")} FROM pairs GROUP BY date) AS b (date, {ACTIVITY_COLUMNS}) USING (date)
"""
MOVED = [
    "DELETE FROM analytics.daily_region_sales WHERE transactions = 0 AND date IN (SELECT date FROM customer_day_delta)",
    f"""
    INSERT INTO analytics.daily_customer_activity AS t (date, {ACTIVITY_COLUMNS}, batch_id)
    SELECT date, {ACTIVITY_COLUMNS}, :batch_id FROM activity_delta
    ON CONFLICT (date) DO UPDATE
    SET {", ".join(f"{c} = t.{c} + EXCLUDED.{c}" for c in ACTIVITY_COLUMNS.split(", "))}, {STAMP}
    """,
    "DELETE FROM analytics.daily_customer_activity WHERE customers = 0 AND date IN (SELECT date FROM activity_delta)",
    """
    UPDATE analytics.daily_sales d SET distinct_customers = d.distinct_customers + a.customers
    FROM activity_delta a WHERE d.date = a.date AND a.customers <> 0
    """,
    f"""
    UPDATE analytics.daily_sales SET avg_order_value = CASE WHEN orders > 0 THEN round(revenue / orders, 2) ELSE 0 END
    WHERE date IN (SELECT DISTINCT date FROM fact_delta WHERE {NOT_REBUILT})
    """,
]
MOVED_TABLES = ["customer_day_delta", "activity_pairs", "customer_days", "customer_day_now", "activity_delta"]

# The rebuilt dates' facts, once. The delta's new fact versions are facts as they are now, bound to their
# versions: a rebuilt date all of whose facts the delta holds (after APPLY_DELTA, daily_sales counts them) is
# read from the delta alone, as a batch of new days is. The facts of the other rebuilt dates that the delta
# does not hold are read from fact_sales (REFRESH_OTHER_FACTS).
REFRESH_FACTS = """
CREATE TEMP TABLE refresh_facts ON COMMIT DROP AS
SELECT date, status, quantity, total_amount, customer_id, state, country, product_id
FROM fact_delta WHERE sign = 1 AND date IN (SELECT full_date FROM rebuilt_dates)
"""
PARTIAL_DATES = """
CREATE TEMP TABLE partial_dates ON COMMIT DROP AS
SELECT s.date_key FROM rebuilt_dates r
JOIN analytics.daily_sales s ON s.date = r.full_date
LEFT JOIN (SELECT date, count(*) AS n FROM fact_delta WHERE sign = 1 GROUP BY date) d ON d.date = r.full_date
WHERE s.transactions > coalesce(d.n, 0)
"""
REFRESH_OTHER_FACTS = """
INSERT INTO refresh_facts (date, status, quantity, total_amount, customer_id, state, country, product_id)
SELECT (f.transaction_ts AT TIME ZONE 'UTC')::date, f.status, f.quantity, f.total_amount,
       c.customer_id, c.state, c.country, p.product_id
FROM processed.fact_sales f
LEFT JOIN processed.dim_customers c ON c.customer_key = f.customer_key
LEFT JOIN processed.dim_products p ON p.product_key = f.product_key
WHERE f.date_key IN (SELECT date_key FROM partial_dates)
  AND NOT EXISTS (SELECT 1 FROM fact_delta d WHERE d.sign = 1 AND d.sale_key = f.sale_key)
"""

COMPLETED = "FILTER (WHERE status = 'completed')"
MEASURES = f"""count(*) {COMPLETED}, coalesce(sum(total_amount) {COMPLETED}, 0),
       coalesce(sum(quantity) {COMPLETED}, 0), count(*)"""
PRODUCT_REBUILT_DELETE = "DELETE FROM analytics.daily_product_sales WHERE date IN (SELECT full_date FROM rebuilt_dates)"
PRODUCT_REBUILT_INSERT = f"""
    INSERT INTO analytics.daily_product_sales (date, product_id, orders, revenue, units, transactions, cancelled,
        refunded, batch_id)
    SELECT date, product_id, {MEASURES}, count(*) FILTER (WHERE status = 'cancelled'),
           count(*) FILTER (WHERE status = 'refunded'), :batch_id
    FROM refresh_facts GROUP BY date, product_id
"""
# Maintained indexes are filled faster in the key's order than in the hash aggregate's (30 new days, ~150,000
# rows: 0.84 to 1.09 s against 1.13 to 1.66 s); suspended ones are rebuilt by sorting anyway.
PRODUCT_KEY_ORDER = "ORDER BY date, product_id"

RECOMPUTED_TABLES = ["analytics.daily_region_sales", "analytics.daily_customer_activity"]

REFRESH = [
    f"""
    UPDATE analytics.daily_sales d
    SET distinct_customers = coalesce(k.customers, 0),
        avg_order_value = CASE WHEN d.orders > 0 THEN round(d.revenue / d.orders, 2) ELSE 0 END
    FROM rebuilt_dates a
    LEFT JOIN (SELECT date, count(DISTINCT customer_id) {COMPLETED} FROM refresh_facts GROUP BY date)
         AS k (date, customers) ON k.date = a.full_date
    WHERE d.date = a.full_date
    """,
    f"""
    INSERT INTO analytics.daily_region_sales (date, country, state, orders, revenue, units, transactions,
        distinct_customers, batch_id)
    SELECT date, country, state, {MEASURES}, count(DISTINCT customer_id) {COMPLETED}, :batch_id
    FROM refresh_facts GROUP BY date, country, state
    """,
    f"""
    INSERT INTO analytics.daily_customer_activity (date, {ACTIVITY_COLUMNS}, batch_id)
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
    await conn.execute(text(CREATE_FACT_DELTA))
    await conn.execute(text(CREATE_FIRST_ORDER_MOVES))


async def refresh_customer_summary(conn: AsyncConnection, batch_id: uuid.UUID) -> None:
    """Move the summaries of the customers whose completed facts changed (``fact_delta``); a moved first-order
    date goes to ``first_order_moves`` and its old and new dates become affected."""
    params = {"batch_id": batch_id}
    await conn.execute(text(SUMMARY_DELTA))
    await conn.execute(text(FIRST_ORDERS_BEFORE))
    for statement in SUMMARY_ADD:
        await conn.execute(text(statement), params)
    for statement in SUMMARY_RECOUNT:
        await conn.execute(text(statement), params)
    for statement in FIRST_ORDERS_AFTER:
        await conn.execute(text(statement))
    await conn.execute(text("DROP TABLE summary_delta"))


async def read_rebuilt_facts(conn: AsyncConnection) -> None:
    """``refresh_facts``: every fact of the rebuilt dates, from the delta where it holds all of a date's facts."""
    await conn.execute(text(REFRESH_FACTS))
    await conn.execute(text(PARTIAL_DATES))
    if (await conn.execute(text("SELECT count(*) FROM partial_dates"))).scalar_one():
        await conn.execute(text(REFRESH_OTHER_FACTS))
    await conn.execute(text("ANALYZE refresh_facts"))


@asynccontextmanager
async def grouped_by_sorting(conn: AsyncConnection) -> AsyncIterator[None]:
    """Around statements that group facts into about as many groups as there are facts (a product or a
    customer per day): sorting and then grouping is cheaper there than a hash table of a million groups (1M
    facts by date and product: 1.55 s against 2.03 s; by date and customer: 1.37 s against 1.86 s)."""
    before = (await conn.execute(text("SELECT current_setting('enable_hashagg')"))).scalar_one()
    await conn.execute(text("SELECT set_config('enable_hashagg', 'off', true)"))
    # No finally: the setting is local to the transaction, and a statement that fails aborts it, which undoes
    # the setting (a statement sent to an aborted transaction would only hide the error).
    yield
    await conn.execute(text("SELECT set_config('enable_hashagg', :before, true)"), {"before": before})


async def refresh_products(conn: AsyncConnection, batch_id: uuid.UUID, bulk: BulkPolicy) -> None:
    """daily_product_sales: the rebuilt dates recomputed from their facts (``refresh_facts``), with the table's
    indexes rebuilt when that is most of it (bulk.py); the delta added on the other dates."""
    params = {"batch_id": batch_id}
    rows = (await conn.execute(text("SELECT count(*) FROM refresh_facts"))).scalar_one()
    async with bulk.indexes(conn, "analytics.daily_product_sales", rows) as suspended:
        await conn.execute(text(PRODUCT_REBUILT_DELETE))
        order = "" if suspended else PRODUCT_KEY_ORDER
        async with grouped_by_sorting(conn):
            await conn.execute(text(f"{PRODUCT_REBUILT_INSERT} {order}"), params)
    await conn.execute(text(PRODUCT_DELTA), params)


async def move_customer_days(conn: AsyncConnection, batch_id: uuid.UUID) -> None:
    """The distinct-customer figures of the dates not rebuilt, moved by the customers that start or stop
    counting; the region table's additive measures with them."""
    params = {"batch_id": batch_id}
    for statement in (CUSTOMER_DAY_DELTA, ACTIVITY_PAIRS, CUSTOMER_DAYS):
        await conn.execute(text(statement))
    for table in ("customer_day_delta", "activity_pairs", "customer_days"):
        await conn.execute(text(f"ANALYZE {table}"))
    await conn.execute(text(CUSTOMER_DAY_NOW))
    await conn.execute(text("ANALYZE customer_day_now"))
    await conn.execute(text(REGION_DELTA), params)
    await conn.execute(text(ACTIVITY_DELTA))
    for statement in MOVED:
        await conn.execute(text(statement), params)
    await conn.execute(text(f"DROP TABLE {', '.join(MOVED_TABLES)}"))


async def rebuild_dates(conn: AsyncConnection, batch_id: uuid.UUID) -> None:
    """The figures that are not additive, recomputed for the rebuilt dates from their facts (``refresh_facts``)."""
    for table in RECOMPUTED_TABLES:
        await conn.execute(text(f"DELETE FROM {table} WHERE date IN (SELECT full_date FROM rebuilt_dates)"))
    async with grouped_by_sorting(conn):
        for statement in REFRESH:
            await conn.execute(text(statement), {"batch_id": batch_id})


async def refresh(conn: AsyncConnection, batch_id: uuid.UUID, bulk: BulkPolicy) -> int:
    """Add the fact delta to the analytics; dates the delta changed a good share of are rebuilt instead where
    the measure is per product or not additive. Returns how many dates were affected."""
    params = {"batch_id": batch_id}
    # Temporary tables are never analyzed by autovacuum; without statistics the planner takes a batch's
    # million rows for a few thousand and sorts where it should hash.
    await conn.execute(text("ANALYZE fact_delta"))
    await conn.execute(text(DELTA_DATES))
    rows = (await conn.execute(text("SELECT count(*) FROM fact_delta"))).scalar_one()
    # A large delta rebuilds the dates it changed a good share of (a batch of new days); a small one moves
    # every date's figures.
    await conn.execute(text(REBUILT_DATES), {"large": rows >= bulk.min_rows, "share": bulk.min_share})
    for statement in APPLY_DELTA:
        await conn.execute(text(statement), params)
    await read_rebuilt_facts(conn)
    await refresh_products(conn, batch_id, bulk)
    for table in ADDITIVE_TABLES:
        await conn.execute(
            text(f"DELETE FROM {table} WHERE transactions = 0 AND date IN (SELECT DISTINCT date FROM fact_delta)")
        )
    await move_customer_days(conn, batch_id)
    await rebuild_dates(conn, batch_id)
    dates = (await conn.execute(text("SELECT count(*) FROM affected_dates"))).scalar_one()
    await conn.execute(
        text("DROP TABLE affected_dates, fact_delta, first_order_moves, rebuilt_dates, partial_dates, refresh_facts")
    )
    return int(dates)
