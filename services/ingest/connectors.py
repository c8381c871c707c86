"""Connectors the scheduler uses to pull data: HTTP(S) downloads, incremental SQL sources, the landing prefix.

Every connector hands its bytes to :meth:`IngestService.accept` as a stream, so a pulled file gets exactly
what an upload gets: format detection, the contract check, dedupe by content, the batch row and its outbox
event. Nothing is read into memory whole.

SQL sources are named and configured by the operator (``SDP_INGEST_SQL_SOURCES``, a JSON list of
:class:`SqlSource`); a request names a source, it never carries a DSN or SQL.

This module imports the service lazily: ``services.ingest.settings`` imports :class:`SqlSource` from here,
and ``services.ingest.service`` imports those settings.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import posixpath
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import asyncpg
import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.datasets import CONTRACTS, Dataset
from shared.http import ApiError
from shared.logs import get_logger
from shared.objectstore import CHUNK_SIZE, ObjectNotFound, ObjectStore

if TYPE_CHECKING:
    from services.ingest.service import Accepted, IngestService

log = get_logger(__name__)

# The int4 namespace of the connectors' two-key advisory locks (a key space apart from one-key locks).
LOCK_NAMESPACE = 0x5D02
DEFAULT_HTTP_TIMEOUT_SECONDS = 60.0
SQL_CONNECT_TIMEOUT_SECONDS = 30.0
FETCH_ROWS = 1000
CSV_FLUSH_CHARS = 256 * 1024
LANDING_ROOT = "landing/"
DONE = "_done"
REJECTED = "_rejected"
ERROR_SUFFIX = ".error.json"
# Session settings of a source connection: the watermark's text form round-trips exactly through them.
SOURCE_SERVER_SETTINGS = {
    "TimeZone": "UTC",
    "DateStyle": "ISO, YMD",
    "IntervalStyle": "iso_8601",
    "extra_float_digits": "3",
    "application_name": "sdp-ingest-connector",
}
WATERMARK_ALIAS = "__sdp_watermark"


class SqlSource(BaseModel):
    """An incremental PostgreSQL source, configured by the operator.

    ``query`` is a plain SELECT (no placeholder; a trailing semicolon is ignored) whose output columns carry
    the contract's column names of ``dataset`` (others are dropped from the file) and ``watermark_column``
    (an output column of the query, named as it comes out of it). The connector wraps the query::

        SELECT <contract columns>, w::text FROM (<query>) AS sdp_source
        WHERE w > CAST(<stored watermark> AS <type of w>)   -- first pull: WHERE w IS NOT NULL
        ORDER BY w, <contract columns as text>

    PostgreSQL pushes that filter into the query, so an index on the watermark column serves it. The query
    runs in a read-only REPEATABLE READ transaction. The watermark column must only grow (a sequence, or a
    modification time set at commit): a row committed later with a watermark at or below the stored one
    is never pulled, and rows whose watermark is NULL are never pulled.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
    dsn: SecretStr
    dataset: Dataset
    query: str = Field(min_length=1)
    watermark_column: str = Field(min_length=1, max_length=63)

    @field_validator("query")
    @classmethod
    def _strip_query(cls, value: str) -> str:
        stripped = value.strip().rstrip(";").strip()
        if not stripped:
            raise ValueError("the query is empty")
        return stripped


@dataclass(frozen=True)
class SweepResult:
    """What a sweep did with one object of the landing prefix.

    ``outcome``: ``ingested`` (a new batch), ``duplicate`` (the content was already a batch: that batch),
    ``rejected`` (moved to ``_rejected`` with its error beside it) or ``gone`` (removed since listed).
    """

    key: str
    dataset: str | None
    outcome: str
    moved_to: str | None = None
    batch: Accepted | None = None
    error: dict[str, Any] | None = None


def _setting(service: IngestService, name: str, default: Any) -> Any:
    # Connector settings of IngestSettings: ingest_sql_sources, ingest_http_timeout_seconds, ingest_http_allowed_hosts.
    return getattr(service.settings, name, default)


async def _try_lock(conn: AsyncConnection, name: str) -> bool:
    """A transaction-level advisory lock on the platform database, released by commit or rollback."""
    locked = await conn.scalar(
        text("SELECT pg_try_advisory_xact_lock(:namespace, hashtext(:name))"),
        {"namespace": LOCK_NAMESPACE, "name": name},
    )
    return bool(locked)


# --- HTTP(S) ------------------------------------------------------------------------------------------


def _source_url(url: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise ApiError(400, "invalid_source", f"not a valid URL: {exc}") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ApiError(
            400, "invalid_source", "only http and https URLs can be pulled", {"scheme": parsed.scheme or None}
        )
    return parsed


def host_allowed(host: str, allowed: Sequence[str]) -> bool:
    """``host`` is one of ``allowed`` (names, or ``*.example.com`` for any name below example.com)."""
    host = host.lower().rstrip(".")
    for pattern in (p.lower().rstrip(".") for p in allowed):
        if host == pattern or (pattern.startswith("*.") and host.endswith(pattern[1:])):
            return True
    return False


def _host_check(allowed: Sequence[str] | None) -> Callable[[httpx.Request], Awaitable[None]]:
    """An httpx request hook: every request of a pull, redirects included, goes to an allowed host."""

    async def check(request: httpx.Request) -> None:
        if allowed is not None and not host_allowed(request.url.host, allowed):
            raise ApiError(400, "invalid_source", "the host is not an allowed source", {"host": request.url.host})

    return check


def _redacted(url: httpx.URL) -> str:
    """The URL without credentials or query string (either may hold a secret)."""
    port = f":{url.port}" if url.port else ""
    return f"{url.scheme}://{url.host}{port}{url.path}"


async def pull_http(
    service: IngestService,
    *,
    dataset: str,
    url: str,
    headers: Mapping[str, str] | None = None,
    idempotency_key: str | None = None,
    timeout_seconds: float | None = None,
) -> Accepted:
    """GET ``url`` and stream the response body into :meth:`IngestService.accept` as a file of ``dataset``.

    The file name is the URL path's last segment; Content-Type and Content-Encoding come from the response
    (a gzip body is stored as it came, compressed). A non-2xx answer, a connection error or a timeout
    (``timeout_seconds`` between bytes, by default ``ingest_http_timeout_seconds``) is a 502 ``source_error``.
    Redirects are followed. When ``ingest_http_allowed_hosts`` is set, every request (each redirect too) must
    go to one of those hosts: unset, a client with ``ingest:write`` can make the service fetch any URL it can
    reach, internal ones included.
    """
    from services.ingest.service import Upload, parse_dataset, safe_file_name

    ds = parse_dataset(dataset)
    source = _source_url(url)
    where = _redacted(source)
    request_headers = httpx.Headers({"Accept-Encoding": "gzip, identity"})
    request_headers.update(headers or {})
    if timeout_seconds is None:
        timeout_seconds = _setting(service, "ingest_http_timeout_seconds", DEFAULT_HTTP_TIMEOUT_SECONDS)
    try:
        async with (
            httpx.AsyncClient(
                timeout=timeout_seconds,
                follow_redirects=True,
                event_hooks={"request": [_host_check(_setting(service, "ingest_http_allowed_hosts", None))]},
            ) as client,
            client.stream("GET", source, headers=request_headers) as response,
        ):
            if not response.is_success:
                raise ApiError(
                    502,
                    "source_error",
                    f"the source answered HTTP {response.status_code}",
                    {"upstream_status": response.status_code, "url": where},
                )
            encoding = response.headers.get("content-encoding", "").strip().lower()
            if encoding in ("", "identity", "gzip", "x-gzip"):
                # The bytes as sent: a gzip body is checked (and stored) as gzip by the service.
                chunks = response.aiter_raw(CHUNK_SIZE)
            else:
                # Another coding (deflate, br) is undone here: the service reads only gzip.
                chunks, encoding = response.aiter_bytes(CHUNK_SIZE), ""
            upload = Upload(
                dataset=ds,
                file_name=safe_file_name(posixpath.basename(source.path)),  # httpx decodes the path
                content_type=response.headers.get("content-type", ""),
                chunks=chunks,
                idempotency_key=idempotency_key,
                content_encoding="" if encoding == "identity" else encoding,
            )
            accepted = await service.accept(upload)
    except httpx.TimeoutException as exc:
        raise ApiError(
            502, "source_error", "the source did not answer in time", {"url": where, "reason": "timeout"}
        ) from exc
    except httpx.HTTPError as exc:
        raise ApiError(
            502,
            "source_error",
            f"the source could not be read: {type(exc).__name__}",
            {"url": where, "reason": type(exc).__name__},
        ) from exc
    log.info("connector.http.pulled", dataset=ds.value, url=where, batch_id=str(accepted.batch_id))
    return accepted


# --- SQL (PostgreSQL) ---------------------------------------------------------------------------------


def sql_sources(service: IngestService) -> list[SqlSource]:
    return list(_setting(service, "ingest_sql_sources", []))


def find_sql_source(service: IngestService, name: str) -> SqlSource:
    sources = sql_sources(service)
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
    from services.ingest.service import Upload, safe_file_name

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


async def pull_sql(service: IngestService, engine: AsyncEngine, *, source_name: str) -> Accepted | None:
    """Pull the rows of a configured source past its stored watermark as one batch (None: no new rows).

    One pull per source at a time (an advisory lock on the platform database; a second pull gets 409).
    The watermark (the highest one read) is stored only after accept returned, in the lock's transaction:
    a pull that fails re-reads the same rows next time, and identical rows give the same batch again.
    """
    source = find_sql_source(service, source_name)
    connector = f"sql:{source.name}"
    async with engine.begin() as state:
        if not await _try_lock(state, connector):
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


# --- landing prefix -----------------------------------------------------------------------------------


def _landing_prefix(prefix: str) -> str:
    if prefix == LANDING_ROOT.rstrip("/"):
        return LANDING_ROOT
    if not prefix.startswith(LANDING_ROOT) or ".." in prefix.split("/"):
        raise ApiError(400, "invalid_prefix", f"a sweep prefix lies under {LANDING_ROOT!r}", {"prefix": prefix[:300]})
    return prefix


def _free_key(store: ObjectStore, bucket: str, key: str) -> str:
    """``key``, or a sibling name when an object (or its error) already sits there: nothing is overwritten."""
    candidate = key
    while store.exists(bucket, candidate) or store.exists(bucket, candidate + ERROR_SUFFIX):
        folder, _, name = key.rpartition("/")
        stem, dot, extension = name.partition(".")
        candidate = f"{folder}/{stem}-{uuid.uuid4().hex[:8]}{dot}{extension}"
    return candidate


async def _object_chunks(reader: Any) -> AsyncGenerator[bytes, None]:
    while chunk := await asyncio.to_thread(reader.read, CHUNK_SIZE):
        yield bytes(chunk)


def _close_reader(reader: Any) -> None:
    reader.close()
    release = getattr(reader, "release_conn", None)
    if release is not None:
        release()


async def _ingest_object(service: IngestService, dataset: Dataset, key: str) -> Accepted:
    from services.ingest.service import Upload, safe_file_name

    bucket = service.settings.bucket_raw
    reader = await asyncio.to_thread(service.store.open, bucket, key)
    chunks = _object_chunks(reader)
    try:
        # No declared type: the service decides by the name, then the bytes (as for any upload).
        upload = Upload(dataset, safe_file_name(key), "", chunks, idempotency_key=None)
        return await service.accept(upload)
    finally:
        await chunks.aclose()
        await asyncio.to_thread(_close_reader, reader)


async def _settle(service: IngestService, key: str, area: str, relative: str, error: dict[str, Any] | None) -> str:
    """Move ``key`` under ``landing/<area>/``; a rejected object gets its error as JSON beside it first."""
    store, bucket = service.store, service.settings.bucket_raw
    destination = await asyncio.to_thread(_free_key, store, bucket, f"{LANDING_ROOT}{area}/{relative}")
    if error is not None:
        body = json.dumps(
            {"key": key, "rejected_at": datetime.now(UTC).isoformat(), "error": error}, indent=2, default=str
        ).encode()
        await asyncio.to_thread(
            store.put_stream, bucket, destination + ERROR_SUFFIX, [body], content_type="application/json"
        )
    await asyncio.to_thread(store.move, bucket, key, destination)
    return destination


async def _sweep_one(service: IngestService, key: str, relative: str) -> SweepResult:
    from services.ingest.service import parse_dataset

    folder, _, rest = relative.partition("/")
    dataset = folder if rest else None
    try:
        if dataset is None:
            raise ApiError(
                404,
                "unknown_dataset",
                f"objects land in {LANDING_ROOT}<dataset>/",
                {"datasets": [d.value for d in Dataset]},
            )
        accepted = await _ingest_object(service, parse_dataset(dataset), key)
    except ObjectNotFound:
        return SweepResult(key, dataset, "gone")
    except ApiError as exc:
        if exc.status == 409 or exc.status >= 500:
            raise  # a conflict to retry or a fault of ours: not the file's, so it stays for the next sweep
        error = {"status": exc.status, "code": exc.code, "message": exc.message, "details": exc.details}
        moved_to = await _settle(service, key, REJECTED, relative, error)
        log.warning("connector.landing.rejected", key=key, moved_to=moved_to, code=exc.code)
        return SweepResult(key, dataset, "rejected", moved_to, error=error)
    try:
        moved_to = await _settle(service, key, DONE, relative, None)
    except ObjectNotFound:
        return SweepResult(key, dataset, "gone", batch=accepted)
    log.info("connector.landing.ingested", key=key, moved_to=moved_to, batch_id=str(accepted.batch_id))
    return SweepResult(key, dataset, "ingested" if accepted.created else "duplicate", moved_to, batch=accepted)


def _settled(relative: str) -> bool:
    return relative.split("/", 1)[0] in (DONE, REJECTED)


async def sweep_landing(service: IngestService, *, prefix: str = LANDING_ROOT) -> list[SweepResult]:
    """Ingest every object under ``prefix`` (within ``landing/``), one object at a time.

    ``landing/<dataset>/<path>`` is accepted as a file of ``<dataset>`` and moved to ``landing/_done/<dataset>/
    <path>``; an object the service refuses (or outside a known dataset folder) is moved to ``landing/_rejected/
    ...`` with ``<name>.error.json`` beside it. Nothing is deleted or overwritten. A failure that is not the
    file's (the database or the store) ends the sweep and leaves the object where it was, for the next sweep.
    One sweep runs at a time (a second gets 409).
    """
    prefix = _landing_prefix(prefix)
    async with service.engine.begin() as lock:
        if not await _try_lock(lock, "landing"):
            raise ApiError(409, "sweep_in_progress", "a sweep of the landing prefix is running")
        keys = await asyncio.to_thread(service.store.list_keys, service.settings.bucket_raw, prefix)
        results = []
        for key in keys:
            relative = key[len(LANDING_ROOT) :]
            if key.endswith("/") or _settled(relative):
                continue
            results.append(await _sweep_one(service, key, relative))
    return results
