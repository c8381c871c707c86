"""Least privilege: each service role can do its job and nothing else (migration 0005's grants)."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from shared.settings import PlatformSettings

BATCH = """INSERT INTO ops.batches (batch_id, dataset, status, file_name, file_format, object_bucket, object_key,
    sha256, size_bytes) VALUES ($1, 'sales', 'received', 'f.csv', 'csv', 'raw-data', 'k', $2, 1)"""

# role -> (statements it must be able to run, statements it must be refused)
CASES: dict[str, tuple[list[str], list[str]]] = {
    "sdp_ingest": (
        [
            BATCH,
            "SELECT count(*) FROM ops.api_keys",
            "SELECT count(*) FROM ops.connector_state",
            "SELECT count(*) FROM ops.batch_idempotency_keys",
        ],
        ["SELECT count(*) FROM staging.sales", "DELETE FROM ops.batches", "SELECT count(*) FROM processed.fact_sales"],
    ),
    "sdp_transform": (
        [
            "INSERT INTO raw.sales (batch_id, source_line) VALUES (gen_random_uuid(), 2)",
            "DELETE FROM staging.sales_rejects WHERE false",
            "UPDATE ops.batches SET updated_at = now() WHERE false",
        ],
        [
            "SELECT count(*) FROM processed.fact_sales",
            "DELETE FROM ops.quality_results",
        ],
    ),
    "sdp_quality": (
        [
            "SELECT count(*) FROM raw.sales",
            "DELETE FROM ops.quality_results WHERE false",
            "SELECT count(*) FROM processed.dim_customers",
            "INSERT INTO ops.quality_configs (config_version, declared_version, document) VALUES ('r', 'r', '{}')",
        ],
        [
            "DELETE FROM staging.sales WHERE false",
            "UPDATE processed.fact_sales SET status = status WHERE false",
            "INSERT INTO ops.audit_log (actor, action) VALUES ('r', 'r')",
        ],
    ),
    "sdp_warehouse": (
        [
            "CREATE TEMP TABLE scratch (d date)",
            "INSERT INTO processed.dim_customers (customer_id, valid_from, batch_id) "
            "VALUES ('RC1', now(), gen_random_uuid())",
            "DELETE FROM analytics.daily_sales WHERE false",
        ],
        ["INSERT INTO raw.sales (batch_id, source_line) VALUES (gen_random_uuid(), 2)", "DELETE FROM ops.batches"],
    ),
    "sdp_api": (
        [
            "SELECT count(*) FROM analytics.daily_sales",
            "SELECT count(*) FROM ops.quality_results",
            # Release and re-run of quarantined batches: the batch moves, its event and audit entry are written.
            "SELECT batch_id FROM ops.batches WHERE false FOR UPDATE",
            "INSERT INTO ops.audit_log (actor, action) VALUES ('r', 'r')",
            "UPDATE ops.batch_stages SET status = status WHERE false",
            "SELECT count(*) FROM ops.freshness",
            "SELECT count(*) FROM ops.quality_configs",
            "SELECT count(*) FROM staging.sales_rejects",
            # Backfill rewrites the analytics rows that differ from fact_sales; keys are created over HTTP.
            "DELETE FROM analytics.daily_sales WHERE false",
            "UPDATE analytics.customer_summary SET orders = orders WHERE false",
            "INSERT INTO analytics.daily_product_sales SELECT * FROM analytics.daily_product_sales WHERE false",
            "INSERT INTO ops.api_keys SELECT * FROM ops.api_keys WHERE false",
        ],
        [
            BATCH,
            "SELECT count(*) FROM raw.sales",
            "SELECT count(*) FROM staging.sales",
            "DELETE FROM processed.fact_sales WHERE false",
            "DELETE FROM ops.api_keys WHERE false",
            "DELETE FROM ops.audit_log",
            "DELETE FROM ops.quality_results WHERE false",
        ],
    ),
    "sdp_reconciler": (
        [
            "UPDATE ops.batch_events SET published_at = now() WHERE false",
            # An upsert, as the reconciler writes it: the platform's own reconciler may have evaluated sales.
            "INSERT INTO ops.freshness (dataset, evaluated_at, status, severity, config_version) "
            "VALUES ('sales', now(), 'fresh', 'warn', 'r') ON CONFLICT (dataset) DO UPDATE SET status = 'fresh'",
        ],
        [BATCH, "SELECT count(*) FROM staging.sales"],
    ),
}


async def _run(database_url: str, role: str, statement: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            await conn.execute(f"SET LOCAL ROLE {role}")
            args = (uuid.uuid4(), uuid.uuid4().hex * 2) if statement == BATCH else ()
            await conn.execute(statement, *args)
            raise _Rollback
    except _Rollback:
        pass
    finally:
        await conn.close()


class _Rollback(Exception):
    pass


@pytest.mark.parametrize("role", sorted(CASES))
def test_role_can_do_its_job_and_nothing_else(settings: PlatformSettings, role: str) -> None:
    allowed, refused = CASES[role]
    for statement in allowed:
        asyncio.run(_run(settings.database_url, role, statement))
    for statement in refused:
        with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
            asyncio.run(_run(settings.database_url, role, statement))
