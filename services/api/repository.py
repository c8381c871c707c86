"""The SQL of the API service: the routes' reads, and what the admin actions read and audit."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Result, text
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.events import Event

BATCH_COLUMNS = """batch_id, dataset, status, file_name, sha256, size_bytes, schema_drift, received_at,
    finished_at, rows_in, rows_valid, rows_rejected, rows_duplicate, error, attempt"""


async def get_batch(conn: AsyncConnection, batch_id: uuid.UUID) -> dict[str, Any] | None:
    row = (
        (await conn.execute(text(f"SELECT {BATCH_COLUMNS} FROM ops.batches WHERE batch_id = :id"), {"id": batch_id}))
        .mappings()
        .one_or_none()
    )
    return dict(row) if row else None


async def list_batches(
    conn: AsyncConnection,
    *,
    dataset: str | None,
    status: str | None,
    since: datetime | None,
    until: datetime | None,
    before: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[dict[str, Any]]:
    """The batches newest first, by (received_at, batch_id), those after ``before`` in that order (keyset
    pagination: a batch received meanwhile is on no later page, so pages neither skip nor repeat)."""
    rows = await conn.execute(
        text(
            f"""SELECT {BATCH_COLUMNS} FROM ops.batches
                WHERE (CAST(:dataset AS text) IS NULL OR dataset = :dataset)
                  AND (CAST(:status AS text) IS NULL OR status = :status)
                  AND (CAST(:since AS timestamptz) IS NULL OR received_at >= :since)
                  AND (CAST(:until AS timestamptz) IS NULL OR received_at < :until)
                  AND (CAST(:before_at AS timestamptz) IS NULL
                       OR (received_at, batch_id) < (CAST(:before_at AS timestamptz), CAST(:before_id AS uuid)))
                ORDER BY received_at DESC, batch_id DESC LIMIT :limit"""
        ),
        {
            "dataset": dataset,
            "status": status,
            "since": since,
            "until": until,
            "before_at": before[0] if before else None,
            "before_id": before[1] if before else None,
            "limit": limit,
        },
    )
    return [dict(r) for r in rows.mappings()]


REJECT_TABLES = {
    "customers": "staging.customers_rejects",
    "products": "staging.products_rejects",
    "sales": "staging.sales_rejects",
}


async def rejects(
    conn: AsyncConnection, batch_id: uuid.UUID, dataset: str, *, after_line: int, limit: int
) -> list[dict[str, Any]]:
    """A page of a batch's rejected rows in file order: those after ``after_line`` (keyset pagination)."""
    rows = await conn.execute(
        text(
            f"""SELECT source_line, reasons, record FROM {REJECT_TABLES[dataset]}
                WHERE batch_id = :id AND source_line > :after ORDER BY source_line LIMIT :limit"""
        ),
        {"id": batch_id, "after": after_line, "limit": limit},
    )
    return [dict(r) for r in rows.mappings()]


async def batch_stages(conn: AsyncConnection, batch_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await conn.execute(
        text(
            """SELECT stage, status, attempts, interruptions, started_at, heartbeat_at, worker, finished_at, error,
                      extract(epoch FROM finished_at - started_at) * 1000 AS duration_ms
               FROM ops.batch_stages WHERE batch_id = :id
               ORDER BY array_position(ARRAY['ingest', 'transform', 'quality', 'warehouse'], stage)"""
        ),
        {"id": batch_id},
    )
    return [dict(r) for r in rows.mappings()]


async def quality_results(conn: AsyncConnection, batch_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await conn.execute(
        text(
            """SELECT check_name, check_type, severity, status, observed, threshold, failing_sample, duration_ms,
                      config_version
               FROM ops.quality_results WHERE batch_id = :id ORDER BY result_id"""
        ),
        {"id": batch_id},
    )
    return [dict(r) for r in rows.mappings()]


@dataclass
class RowStream:
    """A read's column names and its rows, fetched from a server-side cursor ``chunk_rows`` at a time."""

    columns: list[str]
    chunks: AsyncIterator[Sequence[Sequence[Any]]]


async def _stream(conn: AsyncConnection, sql: str, params: dict[str, Any], chunk_rows: int) -> RowStream:
    # The cursor is opened here, in the handler, so that a database that is down is still a 503 rather
    # than a response cut off after its headers.
    result = await conn.stream(text(sql).execution_options(yield_per=chunk_rows), params)

    async def chunks() -> AsyncIterator[Sequence[Sequence[Any]]]:
        try:
            async for part in result.partitions(chunk_rows):
                yield part
        finally:
            await result.close()

    return RowStream(list(result.keys()), chunks())


def _dicts(result: Result[Any]) -> list[dict[str, Any]]:
    # Zipped with the keys once, not a RowMapping per row: a two-year daily answer's rows cost a tenth of
    # its CPU that way (bench/kpi_api.py).
    keys = list(result.keys())
    return [dict(zip(keys, row, strict=True)) for row in result]


DAILY = """
SELECT date, orders, revenue, units, avg_order_value, distinct_customers, cancelled, refunded
FROM analytics.daily_sales WHERE date BETWEEN :start AND :end ORDER BY date
"""


# The days of a range summed into ISO weeks (Monday first) or calendar months, each period named by its first
# day and holding only the range's days. Distinct customers are not additive over days, so a period's are
# counted from the facts, each customer once per period.
PERIODS = """
WITH periods AS (
    SELECT date_trunc(CAST(:grain AS text), date::timestamp)::date AS date, sum(orders) AS orders,
           sum(revenue) AS revenue, sum(units) AS units, sum(cancelled) AS cancelled, sum(refunded) AS refunded
    FROM analytics.daily_sales WHERE date BETWEEN :start AND :end GROUP BY 1
), customers AS (
    SELECT date_trunc(CAST(:grain AS text), to_date(f.date_key::text, 'YYYYMMDD')::timestamp)::date AS date,
           count(DISTINCT c.customer_id) AS distinct_customers
    FROM processed.fact_sales f JOIN processed.dim_customers c ON c.customer_key = f.customer_key
    WHERE f.status = 'completed' AND f.date_key BETWEEN :start_key AND :end_key GROUP BY 1
)
SELECT p.date, p.orders, p.revenue, p.units,
       CASE WHEN p.orders > 0 THEN round(p.revenue / p.orders, 2) ELSE 0 END AS avg_order_value,
       coalesce(c.distinct_customers, 0) AS distinct_customers, p.cancelled, p.refunded
FROM periods p LEFT JOIN customers c USING (date) ORDER BY p.date
"""


def _daily_read(start: date, end: date, grain: str) -> tuple[str, dict[str, Any]]:
    if grain == "day":
        return DAILY, {"start": start, "end": end}
    keys = {"start_key": _date_key(start), "end_key": _date_key(end)}
    return PERIODS, {"start": start, "end": end, "grain": grain, **keys}


async def daily_kpis(conn: AsyncConnection, *, start: date, end: date, grain: str = "day") -> list[dict[str, Any]]:
    sql, params = _daily_read(start, end, grain)
    rows = await conn.execute(text(sql), params)
    return _dicts(rows)


async def stream_daily_kpis(
    conn: AsyncConnection, *, start: date, end: date, chunk_rows: int, grain: str = "day"
) -> RowStream:
    sql, params = _daily_read(start, end, grain)
    return await _stream(conn, sql, params, chunk_rows)


async def quality_config_of(conn: AsyncConnection, batch_id: uuid.UUID, dataset: str) -> dict[str, Any] | None:
    """The config version the batch's results were produced by, with that version's rules for its dataset."""
    row = (
        await conn.execute(
            text(
                """SELECT c.config_version, c.declared_version, c.document -> 'datasets' -> :dataset AS spec
                   FROM ops.quality_results r JOIN ops.quality_configs c USING (config_version)
                   WHERE r.batch_id = :id ORDER BY r.result_id DESC LIMIT 1"""
            ),
            {"id": batch_id, "dataset": dataset},
        )
    ).one_or_none()
    if row is None:
        return None
    spec = row.spec or {}
    return {
        "version": row.config_version,
        "declared_version": row.declared_version,
        "checks": spec.get("checks", []),
        "freshness": spec.get("freshness"),
    }


async def freshness(conn: AsyncConnection) -> list[dict[str, Any]]:
    rows = await conn.execute(
        text(
            """SELECT dataset, status, severity, evaluated_at, config_version, last_loaded_at, max_event_ts,
                      load_lag_seconds, event_lag_seconds, max_load_lag_seconds, max_event_lag_seconds, breaches
               FROM ops.freshness ORDER BY dataset"""
        )
    )
    return [dict(r) for r in rows.mappings()]


async def batches_by_status(conn: AsyncConnection) -> dict[str, int]:
    rows = await conn.execute(text("SELECT status, count(*) FROM ops.batches GROUP BY status"))
    return {r[0]: int(r[1]) for r in rows}


def _date_key(day: date) -> int:
    return day.year * 10_000 + day.month * 100 + day.day


# Additive measures summed over a date range from the daily tables. Distinct customers are not additive
# (one customer buys on many days): the summary counts them from the facts.
SUMMARY = """
SELECT coalesce(sum(orders), 0) AS orders, coalesce(sum(revenue), 0) AS revenue, coalesce(sum(units), 0) AS units,
       coalesce(round(sum(revenue) / nullif(sum(orders), 0), 2), 0) AS avg_order_value,
       coalesce(sum(transactions), 0) AS transactions, coalesce(sum(cancelled), 0) AS cancelled,
       coalesce(sum(refunded), 0) AS refunded,
       coalesce(round(sum(cancelled)::numeric / nullif(sum(transactions), 0), 4), 0) AS cancellation_rate,
       coalesce(round(sum(refunded)::numeric / nullif(sum(transactions), 0), 4), 0) AS refund_rate,
       count(*) FILTER (WHERE transactions > 0) AS days_with_sales
FROM analytics.daily_sales WHERE date BETWEEN :start AND :end
"""
DISTINCT_CUSTOMERS = """
SELECT count(DISTINCT c.customer_id)
FROM processed.fact_sales f JOIN processed.dim_customers c ON c.customer_key = f.customer_key
WHERE f.status = 'completed' AND f.date_key BETWEEN :start_key AND :end_key
"""


async def kpi_summary(conn: AsyncConnection, *, start: date, end: date) -> dict[str, Any]:
    row = dict((await conn.execute(text(SUMMARY), {"start": start, "end": end})).mappings().one())
    keys = {"start_key": _date_key(start), "end_key": _date_key(end)}
    row["distinct_customers"] = (await conn.execute(text(DISTINCT_CUSTOMERS), keys)).scalar_one()
    return row


# breakdown -> (table, the columns it groups by, its measures); identifiers are constants, never input.
BREAKDOWNS = {
    "categories": ("analytics.daily_category_sales", ("category",), ("orders", "revenue", "units", "transactions")),
    "payment_methods": (
        "analytics.daily_payment_method_sales",
        ("payment_method",),
        ("orders", "revenue", "units", "transactions", "cancelled", "refunded"),
    ),
    "states": ("analytics.daily_region_sales", ("country", "state"), ("orders", "revenue", "units", "transactions")),
}


def _breakdown_sql(name: str) -> str:
    """One row per group over the range, the largest revenue first (ties in the group's order)."""
    table, keys, measures = BREAKDOWNS[name]
    group = ", ".join(keys)
    sums = ", ".join(f"sum({m}) AS {m}" for m in measures)
    return f"""SELECT {group}, {sums} FROM {table} WHERE date BETWEEN :start AND :end
               GROUP BY {group} ORDER BY sum(revenue) DESC, {", ".join(f"{k} NULLS LAST" for k in keys)}"""


async def breakdown(conn: AsyncConnection, name: str, *, start: date, end: date) -> list[dict[str, Any]]:
    rows = await conn.execute(text(_breakdown_sql(name)), {"start": start, "end": end})
    return _dicts(rows)


async def stream_breakdown(conn: AsyncConnection, name: str, *, start: date, end: date, chunk_rows: int) -> RowStream:
    return await _stream(conn, _breakdown_sql(name), {"start": start, "end": end}, chunk_rows)


TOP_PRODUCTS = """
SELECT s.product_id, p.product_name, p.category, s.orders, s.revenue, s.units, s.cancelled, s.refunded
FROM (SELECT product_id, sum(orders) AS orders, sum(revenue) AS revenue, sum(units) AS units,
             sum(cancelled) AS cancelled, sum(refunded) AS refunded
      FROM analytics.daily_product_sales
      WHERE date BETWEEN :start AND :end AND product_id IS NOT NULL
      GROUP BY product_id
      ORDER BY sum(revenue) DESC, product_id
      LIMIT :limit) s
LEFT JOIN processed.dim_products p ON p.product_id = s.product_id AND p.is_current
ORDER BY s.revenue DESC, s.product_id
"""


async def top_products(conn: AsyncConnection, *, start: date, end: date, limit: int) -> list[dict[str, Any]]:
    """The products with the largest revenue over the range, named and categorised as they are now."""
    rows = await conn.execute(text(TOP_PRODUCTS), {"start": start, "end": end, "limit": limit})
    return _dicts(rows)


async def stream_top_products(
    conn: AsyncConnection, *, start: date, end: date, limit: int, chunk_rows: int
) -> RowStream:
    return await _stream(conn, TOP_PRODUCTS, {"start": start, "end": end, "limit": limit}, chunk_rows)


async def events_after(conn: AsyncConnection, event_id: uuid.UUID, limit: int) -> list[str]:
    """The events recorded after ``event_id`` (as JSON, oldest first); none if it is unknown."""
    rows = await conn.execute(
        text(
            """SELECT e.payload::text FROM ops.batch_events e
               WHERE e.created_at > (SELECT created_at FROM ops.batch_events WHERE event_id = :id)
               ORDER BY e.created_at, e.event_id LIMIT :limit"""
        ),
        {"id": event_id, "limit": limit},
    )
    return [r[0] for r in rows]


async def failed_stage(conn: AsyncConnection, batch_id: uuid.UUID) -> str | None:
    stage: str | None = (
        await conn.execute(text("SELECT failed_stage FROM ops.batches WHERE batch_id = :b"), {"b": batch_id})
    ).scalar_one()
    return stage


async def failed_checks(conn: AsyncConnection, batch_id: uuid.UUID) -> list[str]:
    rows = await conn.execute(
        text("SELECT check_name FROM ops.quality_results WHERE batch_id = :b AND status = 'fail' ORDER BY result_id"),
        {"b": batch_id},
    )
    return [r[0] for r in rows]


async def last_staged_event(conn: AsyncConnection, batch_id: uuid.UUID) -> dict[str, Any] | None:
    """The payload of the batch's latest ``batch.staged`` event; None if it was never staged."""
    payload = (
        await conn.execute(
            text(
                """SELECT payload FROM ops.batch_events WHERE batch_id = :b AND type = 'batch.staged'
                   ORDER BY created_at DESC LIMIT 1"""
            ),
            {"b": batch_id},
        )
    ).scalar_one_or_none()
    if payload is None:
        return None
    # The driver may hand jsonb back decoded or as text.
    decoded: dict[str, Any] = payload if isinstance(payload, dict) else json.loads(payload)
    return decoded


async def insert_audit(conn: AsyncConnection, *, actor: str, action: str, target: str, details: dict[str, Any]) -> int:
    audit_id = (
        await conn.execute(
            text(
                """INSERT INTO ops.audit_log (actor, action, target, details)
                   VALUES (:actor, :action, :target, CAST(:details AS jsonb)) RETURNING audit_id"""
            ),
            {"actor": actor, "action": action, "target": target, "details": json.dumps(details)},
        )
    ).scalar_one()
    return int(audit_id)


# --- what /metrics reads at scrape time (services/api/metrics.py): aggregates over small ops tables ---


async def batch_totals(conn: AsyncConnection) -> list[dict[str, Any]]:
    """Batches and their rows by dataset and status."""
    rows = await conn.execute(
        text(
            """SELECT dataset, status, count(*) AS batches, coalesce(sum(rows_in), 0) AS rows_in,
                      coalesce(sum(rows_valid), 0) AS rows_valid, coalesce(sum(rows_rejected), 0) AS rows_rejected,
                      coalesce(sum(rows_duplicate), 0) AS rows_duplicate
               FROM ops.batches GROUP BY dataset, status"""
        )
    )
    return [dict(r) for r in rows.mappings()]


async def in_flight_ages(conn: AsyncConnection) -> list[dict[str, Any]]:
    """Per dataset and non-terminal status, the seconds since the least recently moved batch moved."""
    rows = await conn.execute(
        text(
            """SELECT dataset, status, extract(epoch FROM clock_timestamp() - min(updated_at))::float8 AS age
               FROM ops.batches WHERE status NOT IN ('loaded', 'quarantined', 'failed')
               GROUP BY dataset, status"""
        )
    )
    return [dict(r) for r in rows.mappings()]


async def freshness_lags(conn: AsyncConnection) -> list[dict[str, Any]]:
    """The latest freshness evaluation per dataset, its lags carried forward to now."""
    rows = await conn.execute(
        text(
            """SELECT dataset, status, severity, max_load_lag_seconds, max_event_lag_seconds,
                      extract(epoch FROM clock_timestamp() - last_loaded_at)::float8 AS load_lag_seconds,
                      extract(epoch FROM clock_timestamp() - max_event_ts)::float8 AS event_lag_seconds
               FROM ops.freshness"""
        )
    )
    return [dict(r) for r in rows.mappings()]


async def stage_duration_buckets(conn: AsyncConnection, bounds: Sequence[float]) -> list[dict[str, Any]]:
    """Finished stages by stage, dataset and duration bucket (``width_bucket`` over ``bounds``: 0 below the
    first bound, len(bounds) at or above the last), with the bucket's summed seconds."""
    rows = await conn.execute(
        text(
            """SELECT s.stage, b.dataset, width_bucket(s.seconds, CAST(:bounds AS float8[])) AS bucket,
                      count(*) AS n, sum(s.seconds) AS seconds
               FROM (SELECT batch_id, stage, extract(epoch FROM finished_at - started_at)::float8 AS seconds
                     FROM ops.batch_stages WHERE status = 'succeeded' AND finished_at IS NOT NULL) AS s
               JOIN ops.batches AS b USING (batch_id)
               GROUP BY s.stage, b.dataset, bucket"""
        ),
        {"bounds": list(bounds)},
    )
    return [dict(r) for r in rows.mappings()]


async def first_received_event(conn: AsyncConnection, batch_id: uuid.UUID) -> dict[str, Any] | None:
    """The payload of the batch's first ``batch.received`` event, the one ingest recorded with the raw object."""
    payload = (
        await conn.execute(
            text(
                """SELECT payload FROM ops.batch_events WHERE batch_id = :b AND type = 'batch.received'
                   ORDER BY created_at LIMIT 1"""
            ),
            {"b": batch_id},
        )
    ).scalar_one_or_none()
    if payload is None:
        return None
    decoded: dict[str, Any] = payload if isinstance(payload, dict) else json.loads(payload)
    return decoded


async def batch_attempt(conn: AsyncConnection, batch_id: uuid.UUID) -> int:
    attempt = (
        await conn.execute(text("SELECT attempt FROM ops.batches WHERE batch_id = :b"), {"b": batch_id})
    ).scalar_one()
    return int(attempt)


async def last_replay_audit(
    conn: AsyncConnection, batch_id: uuid.UUID, *, idempotency_key: str | None = None
) -> tuple[int, dict[str, Any]] | None:
    """The latest audited replay of the batch (with that Idempotency-Key, if one is given): its id and details."""
    row = (
        await conn.execute(
            text(
                """SELECT audit_id, details FROM ops.audit_log
                   WHERE action = 'batch.replay' AND target = :target
                     AND (CAST(:key AS text) IS NULL OR details ->> 'idempotency_key' = :key)
                   ORDER BY audit_id DESC LIMIT 1"""
            ),
            {"target": str(batch_id), "key": idempotency_key},
        )
    ).one_or_none()
    if row is None:
        return None
    details: dict[str, Any] = row[1] if isinstance(row[1], dict) else json.loads(row[1])
    return int(row[0]), details


async def start_attempt(conn: AsyncConnection, batch_id: uuid.UUID, received: Event) -> int:
    """Put a terminal batch back at ``received`` as its next attempt and queue ``received`` in the outbox; the
    stages' records stay (their attempts count on), their deaths are forgotten: a new run gets every try.
    The ingest stage keeps its timing, which is the upload's."""
    attempt = (
        await conn.execute(
            text(
                """UPDATE ops.batches SET status = 'received', attempt = attempt + 1, error = NULL,
                          failed_stage = NULL, finished_at = NULL, updated_at = clock_timestamp()
                   WHERE batch_id = :b RETURNING attempt"""
            ),
            {"b": batch_id},
        )
    ).scalar_one()
    await conn.execute(
        text("UPDATE ops.batch_stages SET interruptions = 0 WHERE batch_id = :b AND stage <> 'ingest'"),
        {"b": batch_id},
    )
    await conn.execute(
        text(
            """INSERT INTO ops.batch_events (event_id, batch_id, type, payload)
               VALUES (:event_id, :batch_id, :type, CAST(:payload AS jsonb))"""
        ),
        {
            "event_id": received.event_id,
            "batch_id": batch_id,
            "type": received.type,
            "payload": received.model_dump_json(),
        },
    )
    return int(attempt)
