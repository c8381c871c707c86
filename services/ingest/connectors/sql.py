"""The SQL connector: the rows of an operator-configured PostgreSQL source past its watermark, as one CSV.

A request names a source (``SDP_INGEST_SQL_SOURCES``, a JSON list of :class:`SqlSource`); it never carries
a DSN or SQL.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncGenerator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import asyncpg
from sqlalchemy import text

from services.ingest.connectors.locks import try_lock
from services.ingest.service import Accepted, IngestService, Upload, safe_file_name
from services.ingest.settings import SqlSource
from shared.datasets import CONTRACTS
from shared.http import ApiError
from shared.logs import get_logger

log = get_logger(__name__)

SQL_CONNECT_TIMEOUT_SECONDS = 30.0
FETCH_ROWS = 1000
CSV_FLUSH_CHARS = 256 * 1024
# Session settings of a source connection: the watermark's text form round-trips exactly through them.
SOURCE_SERVER_SETTINGS = {
    "TimeZone": "UTC",
    "DateStyle": "ISO, YMD",
    "IntervalStyle": "iso_8601",
    "extra_float_digits": "3",
    "application_name": "sdp-ingest-connector",
}
WATERMARK_ALIAS = "__sdp_watermark"


def find_sql_source(service: IngestService, name: str) -> SqlSource:
    sources = service.settings.ingest_sql_sources
    for source in sources:
        if source.name == name:
            return source
    raise ApiError(404, "unknown_source", f"no SQL source is named {name!r}", {"sources": [s.name for s in sources]})


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@contextmanager
def _source_errors(source: SqlSource) -> Iterator[None]:
    """Errors of the source database as a 502 (never with its DSN)."""
    try:
        yield
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
        details: dict[str, Any] = {"source": source.name, "reason": type(exc).__name__}
        if isinstance(exc, asyncpg.PostgresError):
            details["sqlstate"] = exc.sqlstate
            details["reason"] = str(exc)[:500]
        raise ApiError(502, "source_error", f"the SQL source {source.name!r} could not be read", details) from exc


def csv_text(value: Any) -> str:
    """A source value as CSV text: timestamps ISO 8601 in UTC with their offset, numbers without exponents."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)  # no offset: UTC (DESIGN §3)
        return aware.astimezone(UTC).isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f") if value.is_finite() else str(value)
    if isinstance(value, float):
        return format(Decimal(repr(value)), "f") if value == value and abs(value) != float("inf") else str(value)
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


@dataclass
class _Progress:
    rows: int = 0
    watermark: str | None = None
    complete: bool = False


@dataclass(frozen=True)
class _Statement:
    sql: str
    args: tuple[Any, ...]
    header: list[str]


async def _statement(conn: asyncpg.Connection, source: SqlSource, watermark: str | None) -> _Statement:
    """The wrapped query (see :class:`SqlSource`), from the query's own output columns and their types."""
    described = await conn.prepare(f"SELECT * FROM ({source.query}) AS sdp_source")
    attributes = {a.name: a for a in described.get_attributes()}
    column = attributes.get(source.watermark_column)
    if column is None:
        raise ApiError(
            500,
            "source_misconfigured",
            f"the query of source {source.name!r} has no column {source.watermark_column!r}",
            {"source": source.name, "columns": list(attributes)[:200]},
        )
    header = [c for c in CONTRACTS[source.dataset].column_names if c in attributes]
    wm = f"sdp_source.{_ident(source.watermark_column)}"
    select = ", ".join([*(f"sdp_source.{_ident(c)}" for c in header), f"{wm}::text AS {WATERMARK_ALIAS}"])
    # Identical rows give identical bytes (and so the same batch): order by the watermark, then everything.
    order = ", ".join([wm, *(f'sdp_source.{_ident(c)}::text COLLATE "C"' for c in header)])
    args: tuple[Any, ...] = ()
    if watermark is None:
        where = f"{wm} IS NOT NULL"
    else:
        type_name = f"{_ident(column.type.schema)}.{_ident(column.type.name)}"
        where, args = f"{wm} > CAST($1::text AS {type_name})", (watermark,)
    sql = f"SELECT {select} FROM ({source.query}) AS sdp_source WHERE {where} ORDER BY {order}"
    return _Statement(sql, args, header)


async def _csv_chunks(
    cursor: Any, first: list[asyncpg.Record], header: list[str], progress: _Progress, source: SqlSource
) -> AsyncGenerator[bytes, None]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    width = len(header)
    rows = first
    while rows:
        for record in rows:
            values = tuple(record)
            writer.writerow([csv_text(v) for v in values[:width]])
            progress.rows += 1
            progress.watermark = values[width]
            if buffer.tell() >= CSV_FLUSH_CHARS:
                yield buffer.getvalue().encode()
                buffer.seek(0)
                buffer.truncate()
        with _source_errors(source):
            rows = await cursor.fetch(FETCH_ROWS)
    if buffer.tell():
        yield buffer.getvalue().encode()
    progress.complete = True


async def _close(conn: asyncpg.Connection) -> None:
    try:
        await conn.close(timeout=10)
    except Exception:
        conn.terminate()


async def _pull_rows(
    service: IngestService, source: SqlSource, watermark: str | None
) -> tuple[Accepted, _Progress] | None:
    """Rows of ``source`` past ``watermark`` as one CSV file through accept; None when there are none."""
    with _source_errors(source):
        conn = await asyncpg.connect(
            source.dsn.get_secret_value(),
            timeout=SQL_CONNECT_TIMEOUT_SECONDS,
            server_settings=SOURCE_SERVER_SETTINGS,
        )
    try:
        with _source_errors(source):
            # Read-only, one snapshot; never committed (closing the connection ends it).
            await conn.transaction(isolation="repeatable_read", readonly=True).start()
            statement = await _statement(conn, source, watermark)
            cursor = await conn.cursor(statement.sql, *statement.args)
            first = await cursor.fetch(FETCH_ROWS)
        if not first:
            return None
        progress = _Progress()
        chunks = _csv_chunks(cursor, first, statement.header, progress, source)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        upload = Upload(
            dataset=source.dataset,
            file_name=safe_file_name(f"{source.name}-{stamp}.csv"),
            content_type="text/csv",
            chunks=chunks,
            idempotency_key=None,
        )
        try:
            accepted = await service.accept(upload)
        finally:
            await chunks.aclose()
        if not progress.complete:
            raise ApiError(500, "incomplete_pull", "the batch was accepted before every row was read")
        return accepted, progress
    finally:
        await _close(conn)


async def pull_sql(service: IngestService, *, source_name: str) -> Accepted | None:
    """Pull the rows of a configured source past its stored watermark as one batch (None: no new rows).

    One pull per source at a time (an advisory lock on the platform database; a second pull gets 409).
    The watermark (the highest one read) is stored only after accept returned, in the lock's transaction:
    a pull that fails re-reads the same rows next time, and identical rows give the same batch again.
    """
    source = find_sql_source(service, source_name)
    connector = f"sql:{source.name}"
    async with service.engine.begin() as state:
        if not await try_lock(state, connector):
            raise ApiError(
                409, "pull_in_progress", f"a pull of source {source.name!r} is running", {"source": source.name}
            )
        watermark = await state.scalar(
            text("SELECT watermark FROM ops.connector_state WHERE connector = :connector"), {"connector": connector}
        )
        pulled = await _pull_rows(service, source, watermark)
        if pulled is None:
            log.info("connector.sql.no_new_rows", source=source.name, watermark=watermark)
            return None
        accepted, progress = pulled
        await state.execute(
            text(
                """INSERT INTO ops.connector_state (connector, watermark, updated_at, last_batch_id)
                   VALUES (:connector, :watermark, now(), :batch_id)
                   ON CONFLICT (connector) DO UPDATE
                   SET watermark = EXCLUDED.watermark, updated_at = EXCLUDED.updated_at,
                       last_batch_id = EXCLUDED.last_batch_id"""
            ),
            {"connector": connector, "watermark": progress.watermark, "batch_id": accepted.batch_id},
        )
    log.info(
        "connector.sql.pulled",
        source=source.name,
        rows=progress.rows,
        watermark=progress.watermark,
        batch_id=str(accepted.batch_id),
        created=accepted.created,
    )
    return accepted
