"""Backfill: the analytics of a date range rebuilt from ``processed.fact_sales`` (``POST /v1/backfill``).

Each analytics table's rows of the range are recomputed from the range's facts bound to their point-in-time
dimension versions, with the KPI definitions the warehouse maintains them by (services/warehouse/sql/
analytics), and compared with what the table holds: a row that differs is rewritten, a missing one inserted,
one the facts do not support deleted, and each is counted. ``customer_summary`` is per customer, so the
customers it recomputes (from all their facts) are those with a completed sale in the range and those whose
recorded first or last order date falls in it. Nothing equal is written, so a backfill of analytics that
agree with the facts writes nothing and reports no change.

One transaction under the warehouse's three load locks: no load interleaves with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.datasets import WAREHOUSE_LOCK_KEYS

COMPLETED = "FILTER (WHERE status = 'completed')"
ORDERS = f"count(*) {COMPLETED}"
REVENUE = f"coalesce(sum(total_amount) {COMPLETED}, 0)"
UNITS = f"coalesce(sum(quantity) {COMPLETED}, 0)"
CANCELLED = "count(*) FILTER (WHERE status = 'cancelled')"
REFUNDED = "count(*) FILTER (WHERE status = 'refunded')"
# The batch whose record of a row's most recently loaded fact the row now rests on.
LATEST_BATCH = "(array_agg(batch_id ORDER BY loaded_at DESC, sale_key DESC))[1]"

# The range's facts as the analytics see them: UTC date, the sale's own fields and its bound versions' keys.
FACTS = """
    SELECT (f.transaction_ts AT TIME ZONE 'UTC')::date AS date, f.sale_key, f.status, f.quantity, f.total_amount,
           f.payment_method, f.batch_id, f.loaded_at, c.customer_id, c.country, c.state, p.product_id, p.category
    FROM processed.fact_sales f
    LEFT JOIN processed.dim_customers c ON c.customer_key = f.customer_key
    LEFT JOIN processed.dim_products p ON p.product_key = f.product_key
    WHERE f.date_key BETWEEN :from_key AND :to_key"""


@dataclass(frozen=True)
class Table:
    name: str
    keys: tuple[str, ...]
    # column -> its recomputation
    measures: dict[str, str]
    # Extra CTEs before ``want`` (with a leading comma), and the FROM of ``want``.
    source: str = "facts"
    ctes: str = ""
    # The rows of the table the backfill answers for.
    scope: str = "t.date BETWEEN :start AND :end"

    def statement(self) -> str:
        columns = [*self.keys, *self.measures]
        key_list = ", ".join(self.keys)
        want = ", ".join([*self.keys, *(f"{expr} AS {col}" for col, expr in self.measures.items())])
        match = " AND ".join(f"t.{k} IS NOT DISTINCT FROM w.{k}" for k in self.keys)
        measures = ", ".join(self.measures)
        return f"""
WITH facts AS MATERIALIZED ({FACTS}){self.ctes},
want AS (SELECT {want}, {LATEST_BATCH} AS batch_id FROM {self.source} GROUP BY {key_list}),
deleted AS (
    DELETE FROM {self.name} t WHERE {self.scope} AND NOT EXISTS (SELECT 1 FROM want w WHERE {match})
    RETURNING 1),
changed AS (
    UPDATE {self.name} t SET ({measures}, batch_id, refreshed_at) = ({", ".join(f"w.{c}" for c in self.measures)},
                                                                   w.batch_id, now())
    FROM want w
    WHERE {match} AND ({", ".join(f"t.{c}" for c in self.measures)})
                      IS DISTINCT FROM ({", ".join(f"w.{c}" for c in self.measures)})
    RETURNING 1),
inserted AS (
    INSERT INTO {self.name} ({", ".join(columns)}, batch_id)
    SELECT {", ".join(f"w.{c}" for c in columns)}, w.batch_id FROM want w
    WHERE NOT EXISTS (SELECT 1 FROM {self.name} t WHERE {match})
    RETURNING 1)
SELECT (SELECT count(*) FROM changed), (SELECT count(*) FROM inserted), (SELECT count(*) FROM deleted)"""


# Per customer and day of the range: completed orders and revenue, and the customer's first order ever.
CUSTOMER_DAYS = """,
days AS (
    SELECT date, customer_id, count(*) AS orders, sum(coalesce(total_amount, 0)) AS revenue,
           (array_agg(batch_id ORDER BY loaded_at DESC, sale_key DESC))[1] AS batch_id,
           max(loaded_at) AS loaded_at, max(sale_key) AS sale_key
    FROM facts WHERE status = 'completed' AND customer_id IS NOT NULL GROUP BY date, customer_id),
firsts AS (
    SELECT c.customer_id, min(f.transaction_ts AT TIME ZONE 'UTC')::date AS first_order_date
    FROM processed.fact_sales f JOIN processed.dim_customers c ON c.customer_key = f.customer_key
    WHERE f.status = 'completed' AND c.customer_id IN (SELECT customer_id FROM days)
    GROUP BY c.customer_id),
activity AS (SELECT d.*, x.first_order_date FROM days d JOIN firsts x USING (customer_id))"""

# Customers whose summary the range answers for, each with every completed sale of theirs.
CUSTOMERS = """,
scope AS (
    SELECT customer_id FROM facts WHERE status = 'completed' AND customer_id IS NOT NULL
    UNION
    SELECT customer_id FROM analytics.customer_summary
    WHERE first_order_date BETWEEN :start AND :end OR last_order_date BETWEEN :start AND :end),
orders AS (
    SELECT c.customer_id, (f.transaction_ts AT TIME ZONE 'UTC')::date AS date, f.total_amount, f.quantity,
           f.batch_id, f.loaded_at, f.sale_key
    FROM processed.fact_sales f JOIN processed.dim_customers c ON c.customer_key = f.customer_key
    WHERE f.status = 'completed' AND c.customer_id IN (SELECT customer_id FROM scope))"""

TABLES = (
    Table(
        "analytics.daily_sales",
        ("date",),
        {
            "date_key": "to_char(date, 'YYYYMMDD')::integer",
            "orders": ORDERS,
            "revenue": REVENUE,
            "units": UNITS,
            "avg_order_value": f"CASE WHEN {ORDERS} > 0 THEN round({REVENUE} / {ORDERS}, 2) ELSE 0 END",
            "distinct_customers": f"count(DISTINCT customer_id) {COMPLETED}",
            "cancelled": CANCELLED,
            "refunded": REFUNDED,
            "transactions": "count(*)",
        },
    ),
    Table(
        "analytics.daily_category_sales",
        ("date", "category"),
        {"orders": ORDERS, "revenue": REVENUE, "units": UNITS, "transactions": "count(*)"},
    ),
    Table(
        "analytics.daily_payment_method_sales",
        ("date", "payment_method"),
        {
            "orders": ORDERS,
            "revenue": REVENUE,
            "units": UNITS,
            "transactions": "count(*)",
            "cancelled": CANCELLED,
            "refunded": REFUNDED,
        },
    ),
    Table(
        "analytics.daily_region_sales",
        ("date", "country", "state"),
        {
            "orders": ORDERS,
            "revenue": REVENUE,
            "units": UNITS,
            "transactions": "count(*)",
            "distinct_customers": f"count(DISTINCT customer_id) {COMPLETED}",
        },
    ),
    Table(
        "analytics.daily_product_sales",
        ("date", "product_id"),
        {
            "orders": ORDERS,
            "revenue": REVENUE,
            "units": UNITS,
            "transactions": "count(*)",
            "cancelled": CANCELLED,
            "refunded": REFUNDED,
        },
    ),
    Table(
        "analytics.daily_customer_activity",
        ("date",),
        {
            "customers": "count(*)",
            "new_customers": "count(*) FILTER (WHERE first_order_date = date)",
            "returning_customers": "count(*) FILTER (WHERE first_order_date < date)",
            "new_customer_orders": "coalesce(sum(orders) FILTER (WHERE first_order_date = date), 0)",
            "returning_customer_orders": "coalesce(sum(orders) FILTER (WHERE first_order_date < date), 0)",
            "new_customer_revenue": "coalesce(sum(revenue) FILTER (WHERE first_order_date = date), 0)",
            "returning_customer_revenue": "coalesce(sum(revenue) FILTER (WHERE first_order_date < date), 0)",
        },
        source="activity",
        ctes=CUSTOMER_DAYS,
    ),
    Table(
        "analytics.customer_summary",
        ("customer_id",),
        {
            "first_order_date": "min(date)",
            "last_order_date": "max(date)",
            "orders": "count(*)",
            "revenue": "sum(coalesce(total_amount, 0))",
            "units": "sum(coalesce(quantity, 0))",
        },
        source="orders",
        ctes=CUSTOMERS,
        scope="t.customer_id IN (SELECT customer_id FROM scope)",
    ),
)
STATEMENTS = {table.name: text(table.statement()) for table in TABLES}


@dataclass(frozen=True)
class TableChanges:
    table: str
    changed: int
    inserted: int
    deleted: int


def _key(day: date) -> int:
    return int(day.strftime("%Y%m%d"))


async def rebuild(conn: AsyncConnection, start: date, end: date) -> tuple[int, list[TableChanges]]:
    """Rebuild the range's analytics inside the caller's transaction: the facts read and each table's changes."""
    for key in WAREHOUSE_LOCK_KEYS.values():
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
    binds = {"start": start, "end": end, "from_key": _key(start), "to_key": _key(end)}
    facts = (
        await conn.execute(
            text("SELECT count(*) FROM processed.fact_sales WHERE date_key BETWEEN :from_key AND :to_key"), binds
        )
    ).scalar_one()
    changes = []
    for name, statement in STATEMENTS.items():
        changed, inserted, deleted = (await conn.execute(statement, binds)).one()
        changes.append(TableChanges(name, int(changed), int(inserted), int(deleted)))
    return int(facts), changes
