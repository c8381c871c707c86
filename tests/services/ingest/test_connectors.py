"""Connectors over real sockets: an HTTP source, a PostgreSQL source, the landing prefix in (moto's) S3."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import gzip
import hashlib
import io
import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
from pydantic import SecretStr

from ops.admin import create_key
from services.ingest.app import create_app
from services.ingest.connectors.locks import LOCK_NAMESPACE
from services.ingest.settings import IngestSettings, SqlSource
from shared.datasets import CONTRACTS, Dataset
from shared.objectstore import ObjectStore, create_object_store
from shared.settings import PlatformSettings
from tests.conftest import create_database, drop_database, free_port, settings_from
from tests.http_server import serve

SALES_COLUMNS = list(CONTRACTS[Dataset.sales].column_names)
HEADER = ",".join(SALES_COLUMNS) + "\n"
ROW = "{id},2024-01-01T10:00:00Z,C1,P1,1,1.00,1.00,pix,completed\n"
HTTP_TIMEOUT_SECONDS = 1.0
RUN = uuid.uuid4().hex[:8]
ORDERS = f"orders-{RUN}"
BROKEN = f"broken-{RUN}"


def unique_csv(tag: str, rows: int = 2) -> bytes:
    return (HEADER + "".join(ROW.format(id=f"{tag}-{RUN}-{i}") for i in range(rows))).encode()


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, error
    assert error["message"]
    return error


def read_object(store: ObjectStore, bucket: str, key: str) -> bytes:
    reader: Any = store.open(bucket, key)
    try:
        return bytes(reader.read())
    finally:
        reader.close()
        if hasattr(reader, "release_conn"):
            reader.release_conn()


async def _fetch(database_url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


def fetch(database_url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    return asyncio.run(_fetch(database_url, sql, *args))


def batch_row(settings: PlatformSettings, batch_id: str) -> asyncpg.Record:
    rows = fetch(settings.database_url, "SELECT * FROM ops.batches WHERE batch_id = $1", uuid.UUID(batch_id))
    assert len(rows) == 1, batch_id
    return rows[0]


def batch_count(settings: PlatformSettings) -> int:
    return int(fetch(settings.database_url, "SELECT count(*) FROM ops.batches")[0][0])


def batch_object(settings: PlatformSettings, batch_id: str) -> bytes:
    row = batch_row(settings, batch_id)
    return read_object(create_object_store(settings), row["object_bucket"], row["object_key"])


# --- a throwaway HTTP source ---------------------------------------------------------------------------


class FileServer:
    """Serves ``files[path] = (status, headers, body, delay_seconds)`` on a loopback port."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[int, dict[str, str], bytes, float]] = {}
        files = self.files

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, headers, body, delay = files.get(
                    urlsplit(self.path).path, (404, {"Content-Type": "text/plain"}, b"not found", 0.0)
                )
                time.sleep(delay)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # a client that gave up
                    self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, path: str, body: bytes, *, status: int = 200, delay: float = 0.0, **headers: str) -> str:
        self.files[path] = (status, {k.replace("_", "-"): v for k, v in headers.items()}, body, delay)
        return f"{self.url}{path}"


@pytest.fixture(scope="module")
def files() -> Iterator[FileServer]:
    server = FileServer()
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


# --- a throwaway PostgreSQL source ---------------------------------------------------------------------

SOURCE_TABLE = """
CREATE TABLE orders (
    id bigserial PRIMARY KEY,
    transaction_id text NOT NULL,
    transaction_ts timestamptz NOT NULL,
    customer_id text,
    product_id text,
    quantity int,
    unit_price numeric(12, 2),
    total_amount numeric(12, 2),
    payment_method text,
    status text,
    modified_at timestamptz NOT NULL
)
"""
ORDERS_QUERY = f"SELECT {', '.join(SALES_COLUMNS)}, modified_at FROM orders;"
BROKEN_QUERY = "SELECT transaction_id, customer_id, modified_at FROM orders"


@pytest.fixture(scope="module")
def source_db(base_settings: PlatformSettings) -> Iterator[str]:
    url = f"{base_settings.database_url.rsplit('/', 1)[0]}/sdp_source_{RUN}"
    asyncio.run(create_database(url))

    async def create() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(SOURCE_TABLE)
        finally:
            await conn.close()

    asyncio.run(create())
    yield url
    asyncio.run(drop_database(url))


def insert_orders(source_db: str, rows: list[tuple[Any, ...]]) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(source_db)
        try:
            await conn.executemany(
                f"""INSERT INTO orders ({", ".join(SALES_COLUMNS)}, modified_at)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)""",
                rows,
            )
        finally:
            await conn.close()

    asyncio.run(run())


def order(n: int, modified: datetime, *, customer: str | None = "C1") -> tuple[Any, ...]:
    plus_two = timezone(timedelta(hours=2))
    return (
        f"SQL-{RUN}-{n}",
        datetime(2024, 3, 1, 12, n, tzinfo=plus_two),
        customer,
        "P1",
        2,
        Decimal("12.50"),
        Decimal("25.00"),
        "pix",
        "completed",
        modified,
    )


def expected_csv_row(n: int, *, customer: str = "C1") -> list[str]:
    return [
        f"SQL-{RUN}-{n}",
        f"2024-03-01T10:{n:02d}:00+00:00",
        customer,
        "P1",
        "2",
        "12.50",
        "25.00",
        "pix",
        "completed",
    ]


def csv_rows(body: bytes) -> tuple[list[str], list[list[str]]]:
    header, *rows = list(csv.reader(io.StringIO(body.decode())))
    return header, rows


def connector_state(settings: PlatformSettings, source: str) -> asyncpg.Record | None:
    rows = fetch(settings.database_url, "SELECT * FROM ops.connector_state WHERE connector = $1", f"sql:{source}")
    return rows[0] if rows else None


# --- the ingest service with the connector routes ------------------------------------------------------


@pytest.fixture(scope="module")
def ingest_url(test_env: dict[str, str], source_db: str) -> Iterator[str]:
    sources = [
        SqlSource(
            name=ORDERS,
            dsn=SecretStr(source_db),
            dataset=Dataset.sales,
            query=ORDERS_QUERY,
            watermark_column="modified_at",
        ),
        SqlSource(
            name=BROKEN,
            dsn=SecretStr(source_db),
            dataset=Dataset.sales,
            query=BROKEN_QUERY,
            watermark_column="modified_at",
        ),
    ]
    settings = settings_from(
        test_env,
        IngestSettings,
        ingest_sql_sources=sources,
        ingest_http_timeout_seconds=HTTP_TIMEOUT_SECONDS,
        api_public_url="http://api.test",
    )
    with serve(create_app(settings)) as url:
        yield url


def client_with(settings: PlatformSettings, *scopes: str) -> httpx.Client:
    key = asyncio.run(create_key(settings, name=f"connectors-{'-'.join(scopes)}", scopes=list(scopes)))
    return httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=60)


@pytest.fixture(scope="module")
def writer(settings: PlatformSettings) -> Iterator[httpx.Client]:
    with client_with(settings, "ingest:write") as client:
        yield client


@pytest.fixture(scope="module")
def admin(settings: PlatformSettings) -> Iterator[httpx.Client]:
    with client_with(settings, "admin") as client:
        yield client


# --- HTTP pull -----------------------------------------------------------------------------------------


def test_http_pull_creates_a_batch_and_the_same_content_again_is_that_batch(
    ingest_url: str, writer: httpx.Client, files: FileServer, settings: PlatformSettings
) -> None:
    body = unique_csv("http")
    url = files.add("/exports/daily%20sales.csv", body, Content_Type="text/csv; charset=utf-8")

    first = writer.post(f"{ingest_url}/v1/connectors/http", json={"dataset": "sales", "url": url})
    assert first.status_code == 202, first.text
    accepted = first.json()
    assert set(accepted) == {"batch_id", "dataset", "status", "sha256", "size_bytes", "status_url"}
    assert accepted["sha256"] == hashlib.sha256(body).hexdigest() and accepted["size_bytes"] == len(body)
    assert accepted["status_url"] == f"http://api.test/v1/batches/{accepted['batch_id']}"
    row = batch_row(settings, accepted["batch_id"])
    assert row["sha256"] == hashlib.sha256(body).hexdigest()
    assert row["file_name"] == "daily_sales.csv" and row["file_format"] == "csv"
    assert batch_object(settings, accepted["batch_id"]) == body

    again = writer.post(f"{ingest_url}/v1/connectors/http", json={"dataset": "sales", "url": url})
    assert again.status_code == 200, again.text
    assert again.json()["batch_id"] == accepted["batch_id"]


def test_http_pull_keeps_a_gzip_content_encoding_as_gzip(
    ingest_url: str, writer: httpx.Client, files: FileServer, settings: PlatformSettings
) -> None:
    body = unique_csv("gzip", rows=50)
    compressed = gzip.compress(body)
    url = files.add("/exports/sales-gz", compressed, Content_Type="text/csv", Content_Encoding="gzip")

    response = writer.post(f"{ingest_url}/v1/connectors/http", json={"dataset": "sales", "url": url})
    assert response.status_code == 202, response.text
    row = batch_row(settings, response.json()["batch_id"])
    assert row["compression"] == "gzip"
    assert row["sha256"] == hashlib.sha256(compressed).hexdigest()
    assert gzip.decompress(batch_object(settings, response.json()["batch_id"])) == body


def test_http_pull_of_a_file_that_breaks_the_contract_is_the_services_422(
    ingest_url: str, writer: httpx.Client, files: FileServer
) -> None:
    url = files.add("/exports/bad.csv", b"transaction_id,quantity\nT1,1\n", Content_Type="text/csv")
    error = assert_error(
        writer.post(f"{ingest_url}/v1/connectors/http", json={"dataset": "sales", "url": url}), 422, "contract_mismatch"
    )
    assert error["details"]["missing_columns"] == ["transaction_ts"]


def test_upstream_errors_are_502(ingest_url: str, writer: httpx.Client, files: FileServer) -> None:
    missing = writer.post(
        f"{ingest_url}/v1/connectors/http", json={"dataset": "sales", "url": f"{files.url}/nope.csv?token=secret"}
    )
    error = assert_error(missing, 502, "source_error")
    assert error["details"]["upstream_status"] == 404
    assert "secret" not in missing.text

    refused = writer.post(
        f"{ingest_url}/v1/connectors/http", json={"dataset": "sales", "url": f"http://127.0.0.1:{free_port()}/x.csv"}
    )
    assert_error(refused, 502, "source_error")

    slow = files.add("/exports/slow.csv", unique_csv("slow"), Content_Type="text/csv", delay=HTTP_TIMEOUT_SECONDS + 2)
    error = assert_error(
        writer.post(f"{ingest_url}/v1/connectors/http", json={"dataset": "sales", "url": slow}), 502, "source_error"
    )
    assert error["details"]["reason"] == "timeout"


def test_allowed_hosts_bind_every_request_of_a_pull(
    test_env: dict[str, str], writer: httpx.Client, files: FileServer
) -> None:
    port = urlsplit(files.url).port
    allowed = files.add("/exports/allowed.csv", unique_csv("allowed"), Content_Type="text/csv")
    files.add("/exports/hop.csv", b"", status=302, Location=allowed)  # a redirect to a host not allowed
    settings = settings_from(test_env, IngestSettings, ingest_http_allowed_hosts=["localhost"])
    with serve(create_app(settings)) as restricted:
        pull = f"{restricted}/v1/connectors/http"
        ok = writer.post(pull, json={"dataset": "sales", "url": allowed.replace("127.0.0.1", "localhost")})
        assert ok.status_code == 202, ok.text
        error = assert_error(writer.post(pull, json={"dataset": "sales", "url": allowed}), 400, "invalid_source")
        assert error["details"]["host"] == "127.0.0.1"
        redirected = writer.post(pull, json={"dataset": "sales", "url": f"http://localhost:{port}/exports/hop.csv"})
        assert_error(redirected, 400, "invalid_source")


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/sales.csv", "gopher://x/", "not a url"])
def test_only_http_urls_are_pulled(ingest_url: str, writer: httpx.Client, url: str) -> None:
    assert_error(
        writer.post(f"{ingest_url}/v1/connectors/http", json={"dataset": "sales", "url": url}), 400, "invalid_source"
    )


def test_connector_requests_are_checked_and_scoped(
    ingest_url: str, writer: httpx.Client, files: FileServer, settings: PlatformSettings
) -> None:
    url = files.add("/exports/auth.csv", unique_csv("auth"), Content_Type="text/csv")
    body = {"dataset": "sales", "url": url}
    assert_error(httpx.post(f"{ingest_url}/v1/connectors/http", json=body), 401, "unauthenticated")
    with client_with(settings, "kpis:read") as reader:
        assert_error(reader.post(f"{ingest_url}/v1/connectors/http", json=body), 403, "forbidden")
        assert_error(reader.post(f"{ingest_url}/v1/connectors/landing/sweep"), 403, "forbidden")
    assert_error(writer.post(f"{ingest_url}/v1/connectors/sql/{ORDERS}"), 403, "forbidden")
    assert_error(
        writer.post(f"{ingest_url}/v1/connectors/http", json={**body, "dataset": "nope"}), 404, "unknown_dataset"
    )
    extra = writer.post(f"{ingest_url}/v1/connectors/http", json={**body, "headers": {"Authorization": "x"}})
    assert_error(extra, 422, "invalid_request")


# --- SQL pull ------------------------------------------------------------------------------------------


def test_sql_pull_is_incremental_by_watermark(
    ingest_url: str, admin: httpx.Client, source_db: str, settings: PlatformSettings
) -> None:
    pull = f"{ingest_url}/v1/connectors/sql/{ORDERS}"
    t0 = datetime(2024, 3, 5, tzinfo=UTC)
    insert_orders(source_db, [order(1, t0 + timedelta(seconds=1)), order(2, t0 + timedelta(seconds=2), customer=None)])
    insert_orders(source_db, [order(3, t0 + timedelta(seconds=3))])

    first = admin.post(pull)
    assert first.status_code == 202, first.text
    header, rows = csv_rows(batch_object(settings, first.json()["batch_id"]))
    assert header == SALES_COLUMNS
    assert rows == [expected_csv_row(1), expected_csv_row(2, customer=""), expected_csv_row(3)]
    state = connector_state(settings, ORDERS)
    assert state is not None and state["watermark"] == "2024-03-05 00:00:03+00"
    assert str(state["last_batch_id"]) == first.json()["batch_id"]

    insert_orders(source_db, [order(5, t0 + timedelta(seconds=5)), order(4, t0 + timedelta(seconds=4))])
    second = admin.post(pull)
    assert second.status_code == 202, second.text
    assert second.json()["batch_id"] != first.json()["batch_id"]
    _, rows = csv_rows(batch_object(settings, second.json()["batch_id"]))
    assert rows == [expected_csv_row(4), expected_csv_row(5)]

    before = batch_count(settings)
    nothing = admin.post(pull)
    assert nothing.status_code == 200, nothing.text
    assert nothing.json() == {"batch": None}
    assert batch_count(settings) == before
    assert connector_state(settings, ORDERS)["watermark"] == "2024-03-05 00:00:05+00"  # type: ignore[index]

    # A pull that is repeated (its watermark was not stored) reads the same rows: the same batch.
    fetch(
        settings.database_url,
        "UPDATE ops.connector_state SET watermark = $2 WHERE connector = $1",
        f"sql:{ORDERS}",
        "2024-03-05 00:00:03+00",
    )
    repeated = admin.post(pull)
    assert repeated.status_code == 200, repeated.text
    assert repeated.json()["batch_id"] == second.json()["batch_id"]
    assert batch_count(settings) == before


def test_a_failing_accept_leaves_the_watermark_where_it_was(
    ingest_url: str, admin: httpx.Client, source_db: str, settings: PlatformSettings
) -> None:
    t0 = datetime(2024, 4, 1, tzinfo=UTC)
    insert_orders(source_db, [order(11, t0 + timedelta(seconds=1)), order(12, t0 + timedelta(seconds=2))])
    fetch(
        settings.database_url,
        """INSERT INTO ops.connector_state (connector, watermark, updated_at)
           VALUES ($1, '2024-04-01 00:00:00+00', '2020-01-01')""",
        f"sql:{BROKEN}",
    )
    before = batch_count(settings)
    error = assert_error(admin.post(f"{ingest_url}/v1/connectors/sql/{BROKEN}"), 422, "contract_mismatch")
    assert error["details"]["missing_columns"] == ["transaction_ts"]
    state = connector_state(settings, BROKEN)
    assert state is not None
    assert state["watermark"] == "2024-04-01 00:00:00+00"
    assert state["updated_at"] == datetime(2020, 1, 1, tzinfo=UTC)
    assert batch_count(settings) == before


def test_one_pull_of_a_source_at_a_time(ingest_url: str, admin: httpx.Client, settings: PlatformSettings) -> None:
    async def while_locked() -> httpx.Response:
        conn = await asyncpg.connect(settings.database_url)
        try:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", LOCK_NAMESPACE, f"sql:{ORDERS}")
                async with httpx.AsyncClient(headers=admin.headers, timeout=60) as client:
                    return await client.post(f"{ingest_url}/v1/connectors/sql/{ORDERS}")
        finally:
            await conn.close()

    assert_error(asyncio.run(while_locked()), 409, "pull_in_progress")
    after = admin.post(f"{ingest_url}/v1/connectors/sql/{ORDERS}")
    assert after.status_code in (200, 202), after.text  # the lock is gone with its transaction


def test_unknown_sql_source_is_404(ingest_url: str, admin: httpx.Client) -> None:
    error = assert_error(admin.post(f"{ingest_url}/v1/connectors/sql/no-such-source"), 404, "unknown_source")
    assert ORDERS in error["details"]["sources"]


def test_sql_sources_come_from_json_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    configured = [
        {
            "name": "shop",
            "dsn": "postgresql://reader:hunter2@db.internal/shop",
            "dataset": "sales",
            "query": "SELECT * FROM sales_export",
            "watermark_column": "changed_at",
        }
    ]
    monkeypatch.setenv("SDP_INGEST_SQL_SOURCES", json.dumps(configured))
    sources = IngestSettings(_env_file=None).ingest_sql_sources
    assert [(s.name, s.dataset, s.watermark_column) for s in sources] == [("shop", Dataset.sales, "changed_at")]
    assert sources[0].dsn.get_secret_value().endswith("@db.internal/shop")
    assert "hunter2" not in repr(sources)
    monkeypatch.setenv("SDP_INGEST_SQL_SOURCES", json.dumps([{**configured[0], "dataset": "nope"}]))
    with pytest.raises(ValueError):
        IngestSettings(_env_file=None)


# --- landing sweep -------------------------------------------------------------------------------------


def landing_keys(store: ObjectStore, bucket: str) -> list[str]:
    return store.list_keys(bucket, "landing/")


def test_sweep_ingests_good_objects_and_rejects_bad_ones_without_losing_any(
    ingest_url: str, writer: httpx.Client, settings: PlatformSettings
) -> None:
    store, bucket = create_object_store(settings), settings.bucket_raw
    good = unique_csv("landing")
    objects = {
        f"landing/sales/{RUN}/good.csv": good,
        f"landing/unknown/{RUN}/other.csv": unique_csv("unknown"),
        f"landing/sales/{RUN}/empty.csv": b"",
        f"landing/loose-{RUN}.csv": unique_csv("loose"),
    }
    settled = f"landing/_done/sales/{RUN}/earlier.csv"
    for key, body in {**objects, settled: b"already done"}.items():
        store.put_stream(bucket, key, [body])
    before = landing_keys(store, bucket)

    response = writer.post(f"{ingest_url}/v1/connectors/landing/sweep")
    assert response.status_code == 202, response.text
    results = {r["key"]: r for r in response.json()}
    assert set(results) == set(objects)

    ingested = results[f"landing/sales/{RUN}/good.csv"]
    assert ingested["outcome"] == "ingested" and ingested["moved_to"] == f"landing/_done/sales/{RUN}/good.csv"
    assert batch_object(settings, ingested["batch"]["batch_id"]) == good
    assert ingested["batch"]["sha256"] == hashlib.sha256(good).hexdigest()

    expected = {
        f"landing/unknown/{RUN}/other.csv": (f"landing/_rejected/unknown/{RUN}/other.csv", "unknown_dataset"),
        f"landing/sales/{RUN}/empty.csv": (f"landing/_rejected/sales/{RUN}/empty.csv", "unreadable_file"),
        f"landing/loose-{RUN}.csv": (f"landing/_rejected/loose-{RUN}.csv", "unknown_dataset"),
    }
    for key, (moved_to, code) in expected.items():
        assert results[key]["outcome"] == "rejected" and results[key]["moved_to"] == moved_to
        assert results[key]["error"]["code"] == code and results[key]["batch"] is None
        recorded = json.loads(read_object(store, bucket, moved_to + ".error.json"))
        assert recorded["key"] == key and recorded["error"]["code"] == code

    after = landing_keys(store, bucket)
    for key, body in objects.items():
        assert key not in after
        assert read_object(store, bucket, results[key]["moved_to"]) == body
    assert read_object(store, bucket, settled) == b"already done"
    assert not [k for k in after if k.startswith(("landing/sales/", "landing/unknown/"))]
    assert len(after) == len(before) + len(expected)  # every object kept, plus one error record per rejection


def test_a_resweep_of_ingested_content_is_the_original_batch_and_overwrites_nothing(
    ingest_url: str, writer: httpx.Client, settings: PlatformSettings
) -> None:
    store, bucket = create_object_store(settings), settings.bucket_raw
    body = unique_csv("resweep")
    key = f"landing/sales/{RUN}/resweep/day.csv"
    store.put_stream(bucket, key, [body])
    prefix = {"prefix": f"landing/sales/{RUN}/resweep/"}
    first = writer.post(f"{ingest_url}/v1/connectors/landing/sweep", json=prefix)
    assert first.status_code == 202, first.text
    [done] = first.json()

    store.put_stream(bucket, key, [body])
    again = writer.post(f"{ingest_url}/v1/connectors/landing/sweep", json=prefix)
    assert again.status_code == 200, again.text
    [repeat] = again.json()
    assert repeat["outcome"] == "duplicate"
    assert repeat["batch"]["batch_id"] == done["batch"]["batch_id"]
    assert repeat["moved_to"] != done["moved_to"] and repeat["moved_to"].startswith(
        f"landing/_done/sales/{RUN}/resweep/"
    )
    assert read_object(store, bucket, done["moved_to"]) == body
    assert read_object(store, bucket, repeat["moved_to"]) == body
    assert writer.post(f"{ingest_url}/v1/connectors/landing/sweep", json=prefix).json() == []


@pytest.mark.parametrize("prefix", ["", "sales/", "landing/../sales/", "/landing/"])
def test_a_sweep_stays_inside_the_landing_prefix(ingest_url: str, writer: httpx.Client, prefix: str) -> None:
    response = writer.post(f"{ingest_url}/v1/connectors/landing/sweep", json={"prefix": prefix})
    assert_error(response, 400, "invalid_prefix")


def test_one_sweep_at_a_time(ingest_url: str, writer: httpx.Client, settings: PlatformSettings) -> None:
    async def while_locked() -> httpx.Response:
        conn = await asyncpg.connect(settings.database_url)
        try:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext('landing'))", LOCK_NAMESPACE)
                async with httpx.AsyncClient(headers=writer.headers, timeout=60) as client:
                    return await client.post(f"{ingest_url}/v1/connectors/landing/sweep")
        finally:
            await conn.close()

    assert_error(asyncio.run(while_locked()), 409, "sweep_in_progress")
