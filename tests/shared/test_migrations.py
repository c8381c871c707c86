"""Migrations on an empty database (up, down, up again) and the constraints the schema promises."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from decimal import Decimal

import asyncpg
import pytest
from alembic import command
from alembic.script import ScriptDirectory

from ops.admin import alembic_config
from shared.events import STATUS_AFTER
from shared.settings import PlatformSettings
from tests.conftest import create_database, drop_database

SCHEMAS = {"raw", "staging", "processed", "analytics", "ops"}
TABLES = {
    "ops.batches",
    "ops.batch_events",
    "ops.batch_stages",
    "ops.batch_idempotency_keys",
    "ops.quality_results",
    "ops.api_keys",
    "ops.audit_log",
    "raw.sales",
    "staging.sales",
    "staging.sales_rejects",
    "processed.dim_date",
    "processed.dim_customers",
    "processed.dim_products",
    "processed.fact_sales",
    "analytics.daily_sales",
}

OPEN_END = datetime(9999, 12, 31, tzinfo=UTC)
T1 = datetime(2025, 1, 1, tzinfo=UTC)
T2 = datetime(2025, 6, 1, tzinfo=UTC)
T3 = datetime(2025, 9, 1, tzinfo=UTC)
T4 = datetime(2026, 1, 1, tzinfo=UTC)


def unique(prefix: str) -> str:
    """A business key no other test (or committed row of the session) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# --- upgrade / downgrade on a database of its own -------------------------------------------------------


async def _catalog(database_url: str) -> tuple[set[str], set[str], list[str]]:
    conn = await asyncpg.connect(database_url)
    try:
        schemas = {r["nspname"] for r in await conn.fetch("SELECT nspname FROM pg_namespace")}
        tables = {
            f"{r['table_schema']}.{r['table_name']}"
            for r in await conn.fetch(
                "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
            )
        }
        has_version = await conn.fetchval("SELECT to_regclass('public.alembic_version') IS NOT NULL")
        versions = [r[0] for r in await conn.fetch("SELECT version_num FROM alembic_version")] if has_version else []
        return schemas, tables, versions
    finally:
        await conn.close()


def test_upgrade_downgrade_upgrade_on_an_empty_database(base_settings: PlatformSettings) -> None:
    server = base_settings.database_url.rsplit("/", 1)[0]
    database_url = f"{server}/sdp_migrations_{uuid.uuid4().hex[:12]}"
    settings = base_settings.model_copy(update={"database_url": database_url})
    config = alembic_config(settings)
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None

    asyncio.run(create_database(database_url))
    try:
        schemas, tables, versions = asyncio.run(_catalog(database_url))
        assert not schemas & SCHEMAS, "a brand-new database already has the platform's schemas"
        assert versions == []

        command.upgrade(config, "head")
        schemas, tables, versions = asyncio.run(_catalog(database_url))
        assert schemas >= SCHEMAS
        assert not TABLES - tables, f"missing tables: {sorted(TABLES - tables)}"
        assert versions == [head]

        command.downgrade(config, "base")
        schemas, tables, versions = asyncio.run(_catalog(database_url))
        assert not schemas & SCHEMAS, f"schemas left after downgrade: {sorted(schemas & SCHEMAS)}"
        assert not {t for t in tables if t.split(".")[0] in SCHEMAS}
        assert versions == []

        command.upgrade(config, "head")
        schemas, tables, versions = asyncio.run(_catalog(database_url))
        assert schemas >= SCHEMAS
        assert not TABLES - tables, f"missing tables after the second upgrade: {sorted(TABLES - tables)}"
        assert versions == [head]
    finally:
        asyncio.run(drop_database(database_url))


# --- constraints, on the session's migrated database ----------------------------------------------------

Body = Callable[[asyncpg.Connection], Awaitable[None]]


def in_rolled_back_transaction(database_url: str, body: Body) -> None:
    """Run ``body`` inside a transaction that is always rolled back, so tests never see each other's rows."""

    async def run() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            tx = conn.transaction()
            await tx.start()
            try:
                await body(conn)
            finally:
                await tx.rollback()
        finally:
            await conn.close()

    asyncio.run(run())


async def expect(conn: asyncpg.Connection, error: type[asyncpg.PostgresError], constraint: str, coro: Body) -> None:
    """``coro`` fails with exactly ``error`` on ``constraint``; a savepoint keeps the transaction usable."""
    with pytest.raises(error) as info:
        async with conn.transaction():
            await coro(conn)
    assert type(info.value) is error
    assert info.value.constraint_name == constraint


DIMENSIONS = {
    "customers": ("processed.dim_customers", "customer_id"),
    "products": ("processed.dim_products", "product_id"),
}


def version(dim: str, key: str, valid_from: datetime, valid_to: datetime, is_current: bool) -> Body:
    table, column = DIMENSIONS[dim]

    async def insert(conn: asyncpg.Connection) -> None:
        await conn.execute(
            f"INSERT INTO {table} ({column}, valid_from, valid_to, is_current, batch_id) VALUES ($1, $2, $3, $4, $5)",
            key,
            valid_from,
            valid_to,
            is_current,
            uuid.uuid4(),
        )

    return insert


async def versions_of(conn: asyncpg.Connection, dim: str, key: str) -> list[tuple[datetime, datetime, bool]]:
    table, column = DIMENSIONS[dim]
    rows = await conn.fetch(
        f"SELECT valid_from, valid_to, is_current FROM {table} WHERE {column} = $1 ORDER BY valid_from", key
    )
    return [(r["valid_from"], r["valid_to"], r["is_current"]) for r in rows]


@pytest.mark.parametrize("dim", sorted(DIMENSIONS))
def test_dimension_accepts_adjacent_versions(settings: PlatformSettings, dim: str) -> None:
    async def body(conn: asyncpg.Connection) -> None:
        k1 = unique("k1")
        await version(dim, k1, T1, T2, False)(conn)
        await version(dim, k1, T2, T3, False)(conn)
        await version(dim, k1, T3, OPEN_END, True)(conn)
        # The same periods for another key do not conflict.
        await version(dim, unique("k2"), T1, OPEN_END, True)(conn)
        assert await versions_of(conn, dim, k1) == [
            (T1, T2, False),
            (T2, T3, False),
            (T3, OPEN_END, True),
        ]

    in_rolled_back_transaction(settings.database_url, body)


@pytest.mark.parametrize("dim", sorted(DIMENSIONS))
def test_dimension_rejects_a_second_current_row(settings: PlatformSettings, dim: str) -> None:
    """Two current rows always overlap (both end at the open end); the one-current index, older than the
    exclusion constraint migration 0010 rebuilt, is checked first. Both hold on their own (below)."""

    async def body(conn: asyncpg.Connection) -> None:
        k1 = unique("k1")
        await version(dim, k1, T1, OPEN_END, True)(conn)
        await expect(
            conn,
            asyncpg.exceptions.UniqueViolationError,
            f"dim_{dim}_one_current",
            version(dim, k1, T2, OPEN_END, True),
        )
        assert await versions_of(conn, dim, k1) == [(T1, OPEN_END, True)]

    in_rolled_back_transaction(settings.database_url, body)


@pytest.mark.parametrize("dim", sorted(DIMENSIONS))
def test_one_current_index_alone_rejects_a_second_current_row(settings: PlatformSettings, dim: str) -> None:
    """The partial unique index holds on its own: with the exclusion constraint dropped (inside the
    rolled-back transaction only), a second current row is a unique violation."""
    table, _ = DIMENSIONS[dim]

    async def body(conn: asyncpg.Connection) -> None:
        k1 = unique("k1")
        await conn.execute(f"ALTER TABLE {table} DROP CONSTRAINT dim_{dim}_no_overlap")
        await version(dim, k1, T1, OPEN_END, True)(conn)
        await expect(
            conn,
            asyncpg.exceptions.UniqueViolationError,
            f"dim_{dim}_one_current",
            version(dim, k1, T2, OPEN_END, True),
        )

    in_rolled_back_transaction(settings.database_url, body)


@pytest.mark.parametrize("dim", sorted(DIMENSIONS))
def test_dimension_rejects_overlapping_versions(settings: PlatformSettings, dim: str) -> None:
    async def body(conn: asyncpg.Connection) -> None:
        k1 = unique("k1")
        await version(dim, k1, T1, T3, False)(conn)
        overlapping = [
            version(dim, k1, T2, T4, False),  # starts inside
            version(dim, k1, datetime(2024, 1, 1, tzinfo=UTC), T2, False),  # ends inside
            version(dim, k1, T1, T3, False),  # the same period
            version(dim, k1, T2, OPEN_END, True),  # a current row starting inside
        ]
        for insert in overlapping:
            await expect(conn, asyncpg.exceptions.ExclusionViolationError, f"dim_{dim}_no_overlap", insert)
        assert await versions_of(conn, dim, k1) == [(T1, T3, False)]

    in_rolled_back_transaction(settings.database_url, body)


@pytest.mark.parametrize("dim", sorted(DIMENSIONS))
def test_dimension_rejects_empty_or_inverted_periods(settings: PlatformSettings, dim: str) -> None:
    async def body(conn: asyncpg.Connection) -> None:
        k1 = unique("k1")
        for valid_from, valid_to in [(T2, T2), (T3, T2)]:
            await expect(
                conn,
                asyncpg.exceptions.CheckViolationError,
                f"dim_{dim}_interval",
                version(dim, k1, valid_from, valid_to, False),
            )
        assert await versions_of(conn, dim, k1) == []

    in_rolled_back_transaction(settings.database_url, body)


@pytest.mark.parametrize("dim", sorted(DIMENSIONS))
def test_dimension_current_flag_matches_the_open_end(settings: PlatformSettings, dim: str) -> None:
    async def body(conn: asyncpg.Connection) -> None:
        k1 = unique("k1")
        # Current but closed.
        await expect(conn, asyncpg.exceptions.CheckViolationError, f"dim_{dim}_current", version(dim, k1, T1, T2, True))
        # Open but not current.
        await expect(
            conn, asyncpg.exceptions.CheckViolationError, f"dim_{dim}_current", version(dim, k1, T1, OPEN_END, False)
        )
        assert await versions_of(conn, dim, k1) == []

    in_rolled_back_transaction(settings.database_url, body)


def batch_row(file_name: str, **overrides: object) -> Body:
    row: dict[str, object] = {
        "batch_id": uuid.uuid4(),
        "dataset": "sales",
        "status": "received",
        "file_name": file_name,
        "file_format": "csv",
        "object_bucket": "raw-data",
        "object_key": "sales/x/sales.csv",
        "sha256": uuid.uuid4().hex * 2,
        "size_bytes": 10,
        **overrides,
    }
    columns = ", ".join(row)
    params = ", ".join(f"${i}" for i in range(1, len(row) + 1))

    async def insert(conn: asyncpg.Connection) -> None:
        await conn.execute(f"INSERT INTO ops.batches ({columns}) VALUES ({params})", *row.values())

    return insert


async def statuses_of(conn: asyncpg.Connection, file_name: str) -> list[str]:
    rows = await conn.fetch("SELECT status FROM ops.batches WHERE file_name = $1 ORDER BY status", file_name)
    return [r[0] for r in rows]


def test_batches_rows_must_add_up(settings: PlatformSettings) -> None:
    name = unique("conservation")

    async def body(conn: asyncpg.Connection) -> None:
        await batch_row(name, rows_in=10, rows_valid=7, rows_rejected=2, rows_duplicate=1)(conn)
        await batch_row(name)(conn)  # counts unknown yet
        for rows_in, valid, rejected, duplicate in [(10, 7, 2, 0), (10, 7, 2, 2), (0, 1, 0, 0)]:
            await expect(
                conn,
                asyncpg.exceptions.CheckViolationError,
                "batches_conservation",
                batch_row(name, rows_in=rows_in, rows_valid=valid, rows_rejected=rejected, rows_duplicate=duplicate),
            )
        assert await statuses_of(conn, name) == ["received", "received"]

    in_rolled_back_transaction(settings.database_url, body)


def test_batches_reject_an_unknown_status(settings: PlatformSettings) -> None:
    name = unique("status")

    async def body(conn: asyncpg.Connection) -> None:
        for status in ["processing", "LOADED", ""]:
            await expect(
                conn, asyncpg.exceptions.CheckViolationError, "batches_status_check", batch_row(name, status=status)
            )
        assert await statuses_of(conn, name) == []

    in_rolled_back_transaction(settings.database_url, body)


def test_batches_accept_every_status_an_event_records(settings: PlatformSettings) -> None:
    name = unique("statuses")

    async def body(conn: asyncpg.Connection) -> None:
        for status in sorted(set(STATUS_AFTER.values())):
            await batch_row(name, status=status)(conn)
        assert await statuses_of(conn, name) == sorted(set(STATUS_AFTER.values()))

    in_rolled_back_transaction(settings.database_url, body)


def test_fact_sales_rejects_a_duplicate_transaction_id(settings: PlatformSettings) -> None:
    first, second = unique("T"), unique("T")

    def fact(transaction_id: str) -> Body:
        async def insert(conn: asyncpg.Connection) -> None:
            await conn.execute(
                """INSERT INTO processed.fact_sales (transaction_id, transaction_ts, date_key, quantity, batch_id)
                   VALUES ($1, $2, 20250309, 1, $3)""",
                transaction_id,
                datetime(2025, 3, 9, 12, tzinfo=UTC),
                uuid.uuid4(),
            )

        return insert

    async def body(conn: asyncpg.Connection) -> None:
        await conn.execute(
            """INSERT INTO processed.dim_date (date_key, full_date, year, quarter, month, week, day_of_week, is_weekend)
               VALUES (20250309, $1, 2025, 1, 3, 10, 7, true) ON CONFLICT DO NOTHING""",
            date(2025, 3, 9),
        )
        await fact(first)(conn)
        await fact(second)(conn)
        await expect(conn, asyncpg.exceptions.UniqueViolationError, "fact_sales_transaction_id_key", fact(first))
        rows = await conn.fetch(
            "SELECT transaction_id FROM processed.fact_sales WHERE transaction_id = ANY($1::text[]) ORDER BY 1",
            [first, second],
        )
        assert [r[0] for r in rows] == sorted([first, second])

    in_rolled_back_transaction(settings.database_url, body)


# --- bulk loads: indexes suspended and restored (migration 0010) ---------------------------------------------

BULK_TABLES = ("processed.fact_sales", "analytics.daily_product_sales")
INDEXES_OF = "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname || '.' || tablename = $1 ORDER BY 1"


def test_suspended_indexes_come_back_as_they_were(settings: PlatformSettings) -> None:
    async def body(conn: asyncpg.Connection) -> None:
        before = {t: await conn.fetch(INDEXES_OF, t) for t in BULK_TABLES}
        await conn.execute("SET LOCAL ROLE sdp_warehouse")
        for table in BULK_TABLES:
            suspended = await conn.fetchval("SELECT ops.suspend_indexes($1::regclass)", table)
            assert suspended == len(before[table]) > 0
            assert await conn.fetch(INDEXES_OF, table) == []
            assert await conn.fetchval("SELECT ops.restore_indexes($1::regclass)", table) == suspended
        await conn.execute("RESET ROLE")
        assert {t: await conn.fetch(INDEXES_OF, t) for t in BULK_TABLES} == before
        assert await conn.fetchval("SELECT count(*) FROM ops.suspended_indexes") == 0

    in_rolled_back_transaction(settings.database_url, body)


@pytest.mark.parametrize(
    "table",
    ["processed.dim_customers", "processed.dim_products", "processed.fact_sales", "analytics.daily_product_sales"],
)
def test_the_warehouse_refreshes_statistics_of_the_tables_it_loads(settings: PlatformSettings, table: str) -> None:
    """ANALYZE by a role that does not own the table is skipped with a warning; ops.analyze_table runs it as
    the owner. A never-analyzed table has reltuples -1 (set here, in the rolled-back transaction)."""
    reltuples = "SELECT reltuples FROM pg_class WHERE oid = $1::regclass"

    async def body(conn: asyncpg.Connection) -> None:
        await conn.execute("UPDATE pg_class SET reltuples = -1 WHERE oid = $1::regclass", table)
        await conn.execute("SET LOCAL ROLE sdp_warehouse")
        await conn.execute("SELECT ops.analyze_table($1::regclass)", table)
        await conn.execute("RESET ROLE")
        assert await conn.fetchval(reltuples, table) >= 0

    in_rolled_back_transaction(settings.database_url, body)


def test_restoring_indexes_checks_the_unique_ones(settings: PlatformSettings) -> None:
    async def body(conn: asyncpg.Connection) -> None:
        await conn.execute("SET LOCAL ROLE sdp_warehouse")
        await conn.execute("SELECT ops.suspend_indexes('processed.fact_sales')")
        twice = unique("T")
        for _ in range(2):
            await conn.execute(
                """INSERT INTO processed.fact_sales (transaction_id, transaction_ts, date_key, quantity, batch_id)
                   VALUES ($1, $2, 20250309, 1, $3)""",
                twice,
                datetime(2025, 3, 9, 12, tzinfo=UTC),
                uuid.uuid4(),
            )
        with pytest.raises(asyncpg.exceptions.UniqueViolationError):
            await conn.execute("SELECT ops.restore_indexes('processed.fact_sales')")

    in_rolled_back_transaction(settings.database_url, body)


@pytest.mark.parametrize(
    ("function", "table"),
    [
        ("suspend_indexes", "ops.batches"),
        ("suspend_indexes", "processed.dim_customers"),
        ("suspend_indexes", "analytics.daily_sales"),
        ("restore_indexes", "ops.api_keys"),
        ("analyze_table", "ops.batches"),
        ("analyze_table", "staging.sales"),
    ],
)
def test_the_owner_functions_refuse_other_tables(settings: PlatformSettings, function: str, table: str) -> None:
    async def body(conn: asyncpg.Connection) -> None:
        await conn.execute("SET LOCAL ROLE sdp_warehouse")
        with pytest.raises(asyncpg.exceptions.RaiseError, match="cannot be"):
            await conn.execute(f"SELECT ops.{function}($1::regclass)", table)

    in_rolled_back_transaction(settings.database_url, body)


@pytest.mark.parametrize("role", ["sdp_api", "sdp_transform", "sdp_quality", "sdp_ingest", "sdp_reconciler"])
@pytest.mark.parametrize("function", ["suspend_indexes", "restore_indexes", "analyze_table"])
def test_only_the_warehouse_runs_the_owner_functions(settings: PlatformSettings, role: str, function: str) -> None:
    async def body(conn: asyncpg.Connection) -> None:
        await conn.execute(f"SET LOCAL ROLE {role}")
        with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
            await conn.execute(f"SELECT ops.{function}('processed.fact_sales')")

    in_rolled_back_transaction(settings.database_url, body)


# --- the BI role's masked view of customers (migration 0011) -------------------------------------------------

MASKED = """SELECT customer_id, customer_name_masked, email_masked, city, state, country, is_active, is_inferred,
                  current_since, first_order_date, last_order_date, orders, revenue, units
           FROM analytics.customers_masked WHERE customer_id = ANY($1::text[]) ORDER BY customer_id"""


def test_the_bi_role_sees_customers_masked_and_no_personal_data(settings: PlatformSettings) -> None:
    async def body(conn: asyncpg.Connection) -> None:
        known, unnamed = unique("C1"), unique("C2")
        insert = """INSERT INTO processed.dim_customers (customer_id, customer_name, email, city, state, country,
                        is_active, valid_from, valid_to, is_current, batch_id)
                    VALUES ($1, $2, $3, $4, 'PE', 'BR', true, $5, $6, $7, $8)"""
        batch = uuid.uuid4()
        await conn.execute(insert, known, "Ana Souza", "ana.souza@example.com", "Recife", T1, T2, False, batch)
        await conn.execute(insert, known, "Ana Maria Souza", "ana@example.com.br", "Olinda", T2, OPEN_END, True, batch)
        await conn.execute(insert, unnamed, "Élise", None, "Natal", T3, OPEN_END, True, batch)
        await conn.execute(
            """INSERT INTO analytics.customer_summary (customer_id, first_order_date, last_order_date, orders,
                   revenue, units, batch_id) VALUES ($1, $2, $3, 3, 99.90, 4, $4)""",
            known,
            date(2025, 1, 2),
            date(2025, 7, 1),
            batch,
        )
        await conn.execute("SET LOCAL ROLE analytics_reader")
        rows = [tuple(r) for r in await conn.fetch(MASKED, [known, unnamed])]
        current = (known, "A*** M*** S***", "a***@example.com.br", "Olinda", "PE", "BR", True, False, T2)
        figures = (date(2025, 1, 2), date(2025, 7, 1), 3, Decimal("99.90"), 4)
        assert rows == [
            (*current, *figures),
            (unnamed, "É***", None, "Natal", "PE", "BR", True, False, T3, None, None, 0, Decimal("0"), 0),
        ]
        with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
            await conn.fetch("SELECT email FROM processed.dim_customers LIMIT 1")

    in_rolled_back_transaction(settings.database_url, body)


def test_every_analytics_column_is_commented_for_metabase(settings: PlatformSettings) -> None:
    async def body(conn: asyncpg.Connection) -> None:
        uncommented = await conn.fetch(
            """SELECT c.table_name, c.column_name FROM information_schema.columns c
               WHERE c.table_schema = 'analytics'
                 AND col_description(format('%I.%I', c.table_schema, c.table_name)::regclass, c.ordinal_position)
                     IS NULL"""
        )
        assert [tuple(r) for r in uncommented] == []
        assert await conn.fetchval("SELECT count(*) FROM information_schema.columns WHERE table_schema = 'analytics'")

    in_rolled_back_transaction(settings.database_url, body)


def test_every_analytics_table_and_view_is_described_for_metabase(settings: PlatformSettings) -> None:
    async def body(conn: asyncpg.Connection) -> None:
        objects = await conn.fetch(
            """SELECT c.relname, c.relkind::text AS relkind, obj_description(c.oid, 'pg_class') AS comment
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = 'analytics' AND c.relkind IN ('r', 'p', 'v', 'm', 'f') ORDER BY 1"""
        )
        assert [r["relname"] for r in objects if not (r["comment"] or "").strip()] == []
        kinds = {r["relkind"] for r in objects}
        assert {"r", "v"} <= kinds and len(objects) >= 10

    in_rolled_back_transaction(settings.database_url, body)
