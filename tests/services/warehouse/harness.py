"""The warehouse's tests drive its loads on staged rows they insert themselves, inside a transaction that is
rolled back, and check after every load the invariants of DESIGN §5 and the analytics against a
recomputation written here, in Python, from fact_sales and the dimensions."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.warehouse import load as warehouse_load
from services.warehouse.bulk import BulkPolicy
from services.warehouse.settings import WarehouseSettings
from shared.db import create_engine

OPEN_END = datetime(9999, 12, 31, tzinfo=UTC)
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
CENT = Decimal("0.01")


def at(month: int, day: int = 1, hour: int = 0) -> datetime:
    return datetime(2024, month, day, hour, tzinfo=UTC)


@dataclass(frozen=True)
class Customer:
    customer_id: str
    updated_at: datetime
    city: str = "Recife"
    state: str | None = "PE"
    country: str = "BR"
    customer_name: str = "Ana Souza"
    email: str | None = "ana@example.com"
    is_active: bool = True

    def attributes(self) -> tuple[Any, ...]:
        return (self.customer_name, self.email, self.city, self.state, self.country, self.is_active)


@dataclass(frozen=True)
class Product:
    product_id: str
    updated_at: datetime
    category: str = "electronics"
    product_name: str = "Smart Phone 1"
    created_at: datetime | None = datetime(2023, 1, 1, tzinfo=UTC)

    def attributes(self) -> tuple[Any, ...]:
        return (self.product_name, self.category, self.created_at)


@dataclass(frozen=True)
class Sale:
    transaction_id: str
    transaction_ts: datetime
    customer_id: str | None
    product_id: str | None
    quantity: int = 1
    unit_price: Decimal = Decimal("10.00")
    status: str = "completed"
    payment_method: str = "pix"

    @property
    def total_amount(self) -> Decimal:
        return self.quantity * self.unit_price


@dataclass(frozen=True)
class Version:
    """A dimension row without its surrogate key."""

    valid_from: datetime
    valid_to: datetime
    is_current: bool
    is_inferred: bool
    attributes: tuple[Any, ...]


def versions(*records: Customer | Product, ends: list[datetime] | None = None) -> list[Version]:
    """The versions a history of records should give: each record's attributes from its updated_at on."""
    result = []
    for i, record in enumerate(records):
        valid_to = ends[i] if ends else (records[i + 1].updated_at if i + 1 < len(records) else OPEN_END)
        result.append(Version(record.updated_at, valid_to, valid_to == OPEN_END, False, record.attributes()))
    return result


def inferred(n_attributes: int) -> Version:
    return Version(EARLIEST, OPEN_END, True, True, (None,) * n_attributes)


DIMS = {
    "customers": ("processed.dim_customers", "customer_id", "customer_key", Customer),
    "products": ("processed.dim_products", "product_id", "product_key", Product),
}
TRACKED = {
    "customers": "customer_name, email, city, state, country, is_active",
    "products": "product_name, category, created_at",
}


@dataclass
class Warehouse:
    conn: AsyncConnection
    bulk: BulkPolicy
    prefix: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:8]}")
    batches: list[tuple[str, uuid.UUID]] = field(default_factory=list)

    def key(self, name: str) -> str:
        """A natural key of this test only."""
        return f"{self.prefix}-{name}"

    async def _new_batch(self, dataset: str) -> uuid.UUID:
        batch_id = uuid.uuid4()
        await self.conn.execute(
            text(
                """INSERT INTO ops.batches (batch_id, dataset, status, file_name, file_format, object_bucket,
                       object_key, sha256, size_bytes, received_at)
                   VALUES (:b, :d, 'validated', 'f.csv', 'csv', 'raw-data', 'k', :sha, 1, clock_timestamp())"""
            ),
            {"b": batch_id, "d": dataset, "sha": uuid.uuid4().hex * 2},
        )
        return batch_id

    async def stage(self, dataset: str, rows: list[Any]) -> uuid.UUID:
        batch_id = await self._new_batch(dataset)
        for line, row in enumerate(rows, start=2):
            values = {**row.__dict__}
            if isinstance(row, Sale):
                values["total_amount"] = row.total_amount
            columns = ", ".join(values)
            await self.conn.execute(
                text(
                    f"INSERT INTO staging.{dataset} (batch_id, source_line, {columns}) "
                    f"VALUES (:batch_id, :source_line, {', '.join(':' + c for c in values)})"
                ),
                {"batch_id": batch_id, "source_line": line, **values},
            )
        return batch_id

    async def load(self, dataset: str, batch_id: uuid.UUID) -> warehouse_load.LoadResult:
        """The load as the warehouse's own database role runs it, then every check."""
        await self.conn.execute(text("SET LOCAL ROLE sdp_warehouse"))
        result = await warehouse_load.load(self.conn, dataset, batch_id, self.bulk)
        await self.conn.execute(text("RESET ROLE"))
        # A load groups some rebuilds by sorting (analytics.grouped_by_sorting); the rest of the transaction
        # plans as before.
        assert (await self.conn.execute(text("SELECT current_setting('enable_hashagg')"))).scalar_one() == "on"
        await self.conn.execute(text("UPDATE ops.batches SET status = 'loaded' WHERE batch_id = :b"), {"b": batch_id})
        self.batches.append((dataset, batch_id))
        await check_invariants(self.conn)
        await check_analytics(self.conn)
        return result

    async def customers(self, *rows: Customer) -> uuid.UUID:
        batch_id = await self.stage("customers", list(rows))
        await self.load("customers", batch_id)
        return batch_id

    async def products(self, *rows: Product) -> uuid.UUID:
        batch_id = await self.stage("products", list(rows))
        await self.load("products", batch_id)
        return batch_id

    async def sales(self, *rows: Sale) -> uuid.UUID:
        batch_id = await self.stage("sales", list(rows))
        await self.load("sales", batch_id)
        return batch_id

    async def versions(self, dataset: str, key: str) -> list[Version]:
        table, natural, _, _ = DIMS[dataset]
        rows = await self.conn.execute(
            text(
                f"""SELECT valid_from, valid_to, is_current, is_inferred, {TRACKED[dataset]} FROM {table}
                    WHERE {natural} = :k ORDER BY valid_from"""
            ),
            {"k": key},
        )
        return [Version(r[0], r[1], r[2], r[3], tuple(r[4:])) for r in rows]

    async def surrogate_keys(self, dataset: str, key: str) -> list[int]:
        table, natural, surrogate, _ = DIMS[dataset]
        rows = await self.conn.execute(
            text(f"SELECT {surrogate} FROM {table} WHERE {natural} = :k ORDER BY valid_from"), {"k": key}
        )
        return [r[0] for r in rows]

    async def bindings(self) -> dict[str, tuple[str | None, datetime | None, str | None, datetime | None]]:
        """This test's facts: transaction_id -> (customer_id, its version's valid_from, product_id, ditto)."""
        rows = await self.conn.execute(
            text(
                """SELECT f.transaction_id, c.customer_id, c.valid_from, p.product_id, p.valid_from
                   FROM processed.fact_sales f
                   LEFT JOIN processed.dim_customers c ON c.customer_key = f.customer_key
                   LEFT JOIN processed.dim_products p ON p.product_key = f.product_key
                   WHERE f.transaction_id LIKE :prefix"""
            ),
            {"prefix": f"{self.prefix}-%"},
        )
        return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}

    async def snapshot(self) -> dict[str, Any]:
        """This test's warehouse without surrogate keys or batch ids: what two load orders must agree on."""
        dims = {}
        for dataset, (table, natural, _, _) in DIMS.items():
            rows = await self.conn.execute(
                text(
                    f"""SELECT {natural}, valid_from, valid_to, is_current, is_inferred, {TRACKED[dataset]}
                        FROM {table} WHERE {natural} LIKE :prefix ORDER BY {natural}, valid_from"""
                ),
                {"prefix": f"{self.prefix}-%"},
            )
            dims[dataset] = [tuple(r) for r in rows]
        facts = await self.conn.execute(
            text(
                """SELECT transaction_id, transaction_ts, date_key, quantity, unit_price, total_amount,
                          payment_method, status
                   FROM processed.fact_sales WHERE transaction_id LIKE :prefix ORDER BY transaction_id"""
            ),
            {"prefix": f"{self.prefix}-%"},
        )
        return {"dims": dims, "facts": [tuple(r) for r in facts], "bindings": await self.bindings()}

    async def analytics(self, table: str, where: str = "true") -> list[tuple[Any, ...]]:
        rows = await self.conn.execute(text(f"SELECT * FROM analytics.{table} WHERE {where}"))
        return [tuple(r) for r in rows]


Scenario = Callable[[Warehouse], Awaitable[None]]


def run_scenario(settings: WarehouseSettings, scenario: Scenario, *, prefix: str | None = None) -> None:
    """Run ``scenario`` in a transaction that is rolled back, so tests never see each other's rows."""

    async def run() -> None:
        engine = create_engine(settings)
        try:
            async with engine.connect() as conn:
                tx = await conn.begin()
                try:
                    warehouse = Warehouse(conn, settings.bulk_policy, **({} if prefix is None else {"prefix": prefix}))
                    await scenario(warehouse)
                finally:
                    await tx.rollback()
        finally:
            await engine.dispose()

    asyncio.run(run())


# --- invariants ----------------------------------------------------------------------------------------------


async def _rows(conn: AsyncConnection, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in await conn.execute(text(sql))]


async def check_invariants(conn: AsyncConnection) -> None:
    for table, natural, surrogate, _ in DIMS.values():
        assert (
            await _rows(
                conn, f"SELECT {natural} FROM {table} GROUP BY {natural} HAVING count(*) FILTER (WHERE is_current) <> 1"
            )
            == []
        ), f"{table}: a key without exactly one current row"
        assert (
            await _rows(
                conn,
                f"""SELECT a.{natural} FROM {table} a JOIN {table} b
                ON a.{natural} = b.{natural} AND a.{surrogate} < b.{surrogate}
               AND tstzrange(a.valid_from, a.valid_to) && tstzrange(b.valid_from, b.valid_to)""",
            )
            == []
        ), f"{table}: overlapping versions"
        assert (
            await _rows(
                conn,
                f"""SELECT {natural}, valid_to, next_from FROM (
                    SELECT {natural}, valid_to,
                           lead(valid_from) OVER (PARTITION BY {natural} ORDER BY valid_from) AS next_from
                    FROM {table}) v
                WHERE valid_to <> coalesce(next_from, '9999-12-31 00:00:00+00')""",
            )
            == []
        ), f"{table}: a gap between versions (or a last version that is not open)"
        # Adjacent versions with equal attributes should have been one version.
        columns = TRACKED["customers" if "customer" in table else "products"]
        assert (
            await _rows(
                conn,
                f"""SELECT {natural}, valid_from FROM (
                    SELECT {natural}, valid_from, is_inferred, ({columns}) AS attrs,
                           lag(({columns})) OVER (PARTITION BY {natural} ORDER BY valid_from) AS previous
                    FROM {table}) v
                WHERE previous IS NOT NULL AND attrs IS NOT DISTINCT FROM previous AND NOT is_inferred""",
            )
            == []
        ), f"{table}: adjacent versions with identical attributes"
        # A fact sits inside its version's interval, or before the first version of its key.
        assert (
            await _rows(
                conn,
                f"""SELECT f.transaction_id FROM processed.fact_sales f
                JOIN {table} d ON d.{surrogate} = f.{surrogate}
                WHERE NOT (f.transaction_ts >= d.valid_from AND f.transaction_ts < d.valid_to)
                  AND (f.transaction_ts >= d.valid_from
                       OR EXISTS (SELECT 1 FROM {table} e WHERE e.{natural} = d.{natural}
                                  AND e.valid_from < d.valid_from))""",
            )
            == []
        ), f"{table}: facts outside their version's interval"
    facts, transactions = (
        await _rows(
            conn,
            """SELECT (SELECT count(*) FROM processed.fact_sales),
                      (SELECT count(DISTINCT s.transaction_id) FROM staging.sales s
                       JOIN ops.batches b ON b.batch_id = s.batch_id WHERE b.status = 'loaded')""",
        )
    )[0]
    assert facts == transactions, f"{facts} facts for {transactions} distinct loaded transaction ids"
    assert (
        await _rows(
            conn,
            """SELECT DISTINCT f.date_key FROM processed.fact_sales f
           WHERE NOT EXISTS (SELECT 1 FROM processed.dim_date d WHERE d.date_key = f.date_key)""",
        )
        == []
    )


# --- analytics, recomputed -------------------------------------------------------------------------------------


@dataclass
class Totals:
    orders: int = 0
    revenue: Decimal = Decimal("0.00")
    units: int = 0
    transactions: int = 0
    cancelled: int = 0
    refunded: int = 0
    customers: set[str] = field(default_factory=set)

    def add(self, status: str, amount: Decimal, quantity: int, customer_id: str | None) -> None:
        self.transactions += 1
        if status == "completed":
            self.orders += 1
            self.revenue += amount
            self.units += quantity
            if customer_id is not None:
                self.customers.add(customer_id)
        self.cancelled += status == "cancelled"
        self.refunded += status == "refunded"

    @property
    def avg_order_value(self) -> Decimal:
        return (self.revenue / self.orders).quantize(CENT, ROUND_HALF_UP) if self.orders else Decimal("0.00")


async def check_analytics(conn: AsyncConnection) -> None:
    """Every analytics table equals a recomputation from fact_sales and its point-in-time dimension rows."""
    facts = await _rows(
        conn,
        """SELECT f.transaction_ts, f.status, f.total_amount, f.quantity, f.payment_method,
                  c.customer_id, c.state, c.country, p.product_id, p.category
           FROM processed.fact_sales f
           LEFT JOIN processed.dim_customers c ON c.customer_key = f.customer_key
           LEFT JOIN processed.dim_products p ON p.product_key = f.product_key""",
    )
    daily: dict[date, Totals] = defaultdict(Totals)
    by: dict[str, dict[tuple[Any, ...], Totals]] = defaultdict(lambda: defaultdict(Totals))
    per_customer: dict[str, list[tuple[date, Decimal, int]]] = defaultdict(list)
    overall = Totals()
    for ts, status, amount, quantity, method, customer, state, country, product, category in facts:
        day = ts.astimezone(UTC).date()
        args = (status, amount or Decimal(0), quantity or 0, customer)
        daily[day].add(*args)
        overall.add(*args)
        by["category"][(day, category)].add(*args)
        by["payment_method"][(day, method)].add(*args)
        by["region"][(day, country, state)].add(*args)
        by["product"][(day, product)].add(*args)
        if status == "completed" and customer is not None:
            per_customer[customer].append((day, amount or Decimal(0), quantity or 0))

    got = {
        r[0]: r[1:]
        for r in await _rows(
            conn,
            """SELECT date, orders, revenue, units, avg_order_value, distinct_customers, cancelled, refunded,
                      transactions, date_key FROM analytics.daily_sales""",
        )
    }
    want = {
        d: (
            t.orders,
            t.revenue,
            t.units,
            t.avg_order_value,
            len(t.customers),
            t.cancelled,
            t.refunded,
            t.transactions,
            int(d.strftime("%Y%m%d")),
        )
        for d, t in daily.items()
    }
    differing = {d: (got.get(d), want.get(d)) for d in got.keys() | want.keys() if got.get(d) != want.get(d)}
    assert not differing, f"analytics.daily_sales differs from the recomputation (got, want): {differing}"

    breakdowns = {
        "category": (
            "daily_category_sales",
            "date, category",
            lambda t: (t.orders, t.revenue, t.units, t.transactions),
        ),
        "payment_method": (
            "daily_payment_method_sales",
            "date, payment_method",
            lambda t: (t.orders, t.revenue, t.units, t.transactions, t.cancelled, t.refunded),
        ),
        "region": (
            "daily_region_sales",
            "date, country, state",
            lambda t: (t.orders, t.revenue, t.units, t.transactions, len(t.customers)),
        ),
        "product": (
            "daily_product_sales",
            "date, product_id",
            lambda t: (t.orders, t.revenue, t.units, t.transactions, t.cancelled, t.refunded),
        ),
    }
    measures = {
        "category": "orders, revenue, units, transactions",
        "payment_method": "orders, revenue, units, transactions, cancelled, refunded",
        "region": "orders, revenue, units, transactions, distinct_customers",
        "product": "orders, revenue, units, transactions, cancelled, refunded",
    }
    for name, (table, keys, figures) in breakdowns.items():
        n = len(keys.split(","))
        rows = await _rows(conn, f"SELECT {keys}, {measures[name]} FROM analytics.{table}")
        got_rows, want_rows = {r[:n]: r[n:] for r in rows}, {k: figures(t) for k, t in by[name].items()}
        differing = {k: (got_rows.get(k), want_rows.get(k)) for k in got_rows.keys() | want_rows.keys()}
        differing = {k: v for k, v in differing.items() if v[0] != v[1]}
        assert not differing, f"analytics.{table} differs from the recomputation (got, want): {differing}"
        assert len(rows) == len(by[name])

    summary = {
        customer: (
            min(d for d, _, _ in orders),
            max(d for d, _, _ in orders),
            len(orders),
            sum((a for _, a, _ in orders), Decimal("0.00")),
            sum(q for _, _, q in orders),
        )
        for customer, orders in per_customer.items()
    }
    rows = await _rows(
        conn,
        "SELECT customer_id, first_order_date, last_order_date, orders, revenue, units FROM analytics.customer_summary",
    )
    assert {r[0]: r[1:] for r in rows} == summary, "analytics.customer_summary"

    activity: dict[date, list[Any]] = {}
    for customer, orders in per_customer.items():
        first = summary[customer][0]
        days: dict[date, list[Any]] = defaultdict(lambda: [0, Decimal("0.00")])
        for d, amount, _ in orders:
            days[d][0] += 1
            days[d][1] += amount
        for d, (count, revenue) in days.items():
            row = activity.setdefault(d, [0, 0, 0, 0, 0, Decimal("0.00"), Decimal("0.00")])
            row[0] += 1
            new = d == first
            row[1 if new else 2] += 1
            row[3 if new else 4] += count
            row[5 if new else 6] += revenue
    rows = await _rows(
        conn,
        """SELECT date, customers, new_customers, returning_customers, new_customer_orders,
                  returning_customer_orders, new_customer_revenue, returning_customer_revenue
           FROM analytics.daily_customer_activity""",
    )
    assert {r[0]: list(r[1:]) for r in rows} == activity, "analytics.daily_customer_activity"

    kpi = (
        await _rows(
            conn,
            """SELECT first_date, last_date, orders, revenue, units, avg_order_value, customers, transactions,
                      cancelled, refunded, cancellation_rate, refund_rate FROM analytics.kpi""",
        )
    )[0]
    rate = (lambda n: (Decimal(n) / overall.transactions).quantize(Decimal("0.0001"), ROUND_HALF_UP)) if facts else None
    assert kpi == (
        min(daily) if daily else None,
        max(daily) if daily else None,
        overall.orders,
        overall.revenue,
        overall.units,
        overall.avg_order_value,
        len(per_customer),
        overall.transactions,
        overall.cancelled,
        overall.refunded,
        rate(overall.cancelled) if rate else Decimal(0),
        rate(overall.refunded) if rate else Decimal(0),
    ), "analytics.kpi"

    products: dict[str, Totals] = defaultdict(Totals)
    for (_, product), totals in by["product"].items():
        if product is not None:
            p = products[product]
            p.orders += totals.orders
            p.revenue += totals.revenue
            p.units += totals.units
    rows = await _rows(conn, "SELECT product_id, orders, revenue, units FROM analytics.product_performance")
    assert {r[0]: r[1:] for r in rows} == {k: (t.orders, t.revenue, t.units) for k, t in products.items()}


def day_after(moment: datetime, days: int = 1) -> datetime:
    return moment + timedelta(days=days)
