"""KPI exports over a socket: two years of daily sales loaded by the warehouse's own load, then every KPI
endpoint's CSV and Parquet compared with its JSON, column by column, to the cent; the format chosen by
``?format=`` or ``Accept``; unknown formats refused in the error envelope; the answer streamed a chunk (a
Parquet row group) at a time.

The warehouse is loaded directly (staged rows COPYed in, then ``services.warehouse.load``), the fastest way
the warehouse's tests fill it, in a database of this module's own: the other API tests seed analytics rows
by hand.
"""

from __future__ import annotations

import asyncio
import math
import random
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import text

from ops.admin import create_key, migrate
from services.api.app import create_app
from services.api.settings import ApiSettings
from services.warehouse import load as warehouse_load
from services.warehouse.settings import WarehouseSettings
from shared.db import create_engine, raw_connection
from tests.conftest import as_role, create_database, drop_database, settings_from
from tests.http_server import serve
from tests.kpi_exports import (
    ENDPOINTS,
    assert_exports_equal_json,
    csv_differences,
    csv_rows,
    json_body,
    json_rows,
    parquet_rows,
)

FIRST_DAY, LAST_DAY = date(2024, 1, 1), date(2025, 12, 31)
DAYS = (LAST_DAY - FIRST_DAY).days + 1
SALES_PER_DAY = 12
# Small, so that the two years arrive in many chunks and row groups.
CHUNK_ROWS = 100
TWO_YEARS = {"from": FIRST_DAY.isoformat(), "to": LAST_DAY.isoformat()}
STATES = ("SP", "RJ", "MG", "PE", "BA", None)
CATEGORIES = ("books", "electronics", "toys", "garden", None)
PAYMENT_METHODS = ("credit_card", "debit_card", "pix", "boleto", "cash", "paypal")
# Mostly completed; the others move the rates.
STATUSES = ("completed",) * 7 + ("pending", "cancelled", "refunded")


@dataclass(frozen=True)
class Loaded:
    api: str
    key: str
    # transaction_ts date -> the completed sales' revenue, recomputed here from what was staged
    revenue: dict[date, Decimal]
    # the database's owner, who makes keys
    settings: WarehouseSettings


def _sales(rng: random.Random) -> list[tuple[Any, ...]]:
    rows = []
    for day in range(DAYS):
        for n in range(SALES_PER_DAY):
            quantity = rng.randint(1, 5)
            # Cents a float cannot hold exactly, and now and then an amount near numeric(12, 2)'s largest.
            unit_price = Decimal(rng.choice((rng.randint(1, 99_999), 999_999_999))) / 100
            ts = datetime.combine(FIRST_DAY + timedelta(days=day), datetime.min.time(), UTC) + timedelta(
                seconds=rng.randrange(86_400)
            )
            rows.append(
                (
                    f"X-{day}-{n}",
                    ts,
                    f"C{rng.randrange(40)}",
                    f"P{rng.randrange(25)}",
                    quantity,
                    unit_price,
                    quantity * unit_price,
                    rng.choice(PAYMENT_METHODS),
                    rng.choice(STATUSES),
                )
            )
    return rows


async def _stage_and_load(settings: WarehouseSettings, dataset: str, columns: list[str], rows: list[Any]) -> None:
    engine = create_engine(settings)
    try:
        async with engine.begin() as conn:
            batch_id = uuid.uuid4()
            await conn.execute(
                text(
                    """INSERT INTO ops.batches (batch_id, dataset, status, file_name, file_format, object_bucket,
                           object_key, sha256, size_bytes)
                       VALUES (:b, :d, 'validated', 'f.csv', 'csv', 'raw-data', 'k', :sha, 1)"""
                ),
                {"b": batch_id, "d": dataset, "sha": uuid.uuid4().hex * 2},
            )
            await (await raw_connection(conn)).copy_records_to_table(
                dataset,
                schema_name="staging",
                columns=["batch_id", "source_line", *columns],
                records=[(batch_id, line, *row) for line, row in enumerate(rows, start=2)],
            )
            await conn.execute(text("SET LOCAL ROLE sdp_warehouse"))
            await warehouse_load.load(conn, dataset, batch_id, settings.bulk_policy)
            await conn.execute(text("RESET ROLE"))
            await conn.execute(text("UPDATE ops.batches SET status = 'loaded' WHERE batch_id = :b"), {"b": batch_id})
    finally:
        await engine.dispose()


def _load(settings: WarehouseSettings) -> dict[date, Decimal]:
    rng = random.Random(18)
    updated = datetime(2020, 1, 1, tzinfo=UTC)
    customers = [(f"C{i}", f"Customer {i}", None, "Cidade", rng.choice(STATES), "BR", True, updated) for i in range(40)]
    products = [(f"P{i}", f"Product {i}", rng.choice(CATEGORIES), updated, updated) for i in range(25)]
    sales = _sales(rng)
    for dataset, columns, rows in (
        (
            "customers",
            ["customer_id", "customer_name", "email", "city", "state", "country", "is_active", "updated_at"],
            customers,
        ),
        ("products", ["product_id", "product_name", "category", "created_at", "updated_at"], products),
        (
            "sales",
            [
                "transaction_id",
                "transaction_ts",
                "customer_id",
                "product_id",
                "quantity",
                "unit_price",
                "total_amount",
                "payment_method",
                "status",
            ],
            sales,
        ),
    ):
        asyncio.run(_stage_and_load(settings, dataset, columns, rows))
    revenue: dict[date, Decimal] = {}
    for _, ts, _, _, _, _, amount, _, status in sales:
        if status == "completed":
            revenue[ts.date()] = revenue.get(ts.date(), Decimal("0.00")) + amount
    return revenue


@pytest.fixture(scope="module")
def loaded(test_env: dict[str, str]) -> Iterator[Loaded]:
    database_url = f"{test_env['SDP_DATABASE_URL']}_exports"
    asyncio.run(create_database(database_url))
    try:
        env = {**test_env, "SDP_DATABASE_URL": database_url}
        warehouse = settings_from(env, WarehouseSettings)
        migrate(warehouse, create_database=False)
        revenue = _load(warehouse)
        key = asyncio.run(create_key(warehouse, name="exports", scopes=["kpis:read"]))
        # The API as it is deployed: its own role (migration 0005's grants), exports in small chunks.
        api = settings_from(
            {**env, "SDP_DATABASE_URL": as_role(database_url, "sdp_api")}, ApiSettings, api_export_chunk_rows=CHUNK_ROWS
        )
        with serve(create_app(api)) as url:
            yield Loaded(url, key, revenue, warehouse)
    finally:
        asyncio.run(drop_database(database_url))


@pytest.fixture(scope="module")
def client(loaded: Loaded) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=loaded.api, headers={"Authorization": f"Bearer {loaded.key}"}, timeout=60) as c:
        yield c


def test_two_years_of_daily_csv_equal_the_json_to_the_cent(loaded: Loaded, client: httpx.Client) -> None:
    days = json_body(client, "/v1/kpis/daily", TWO_YEARS)["days"]
    # The JSON itself is the warehouse's figures: every day, its revenue as recomputed from the staged sales.
    assert len(days) == DAYS
    assert {date.fromisoformat(d["date"]): Decimal(d["revenue"]) for d in days} == loaded.revenue

    response = client.get("/v1/kpis/daily", params={**TWO_YEARS, "format": "csv"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == 'attachment; filename="kpis-daily_2024-01-01_2025-12-31.csv"'
    rows = csv_rows(response.text)
    assert list(rows[0]) == list(days[0])
    differing = csv_differences(rows, days)
    assert not differing, differing[:10]
    # Money is written with its cents, never as a float's repr (no 0.30000000000000004, no 1e+07).
    assert all(len(row[c].rpartition(".")[2]) == 2 for row in rows for c in ("revenue", "avg_order_value"))


def test_parquet_read_back_with_pyarrow_equals_the_json(client: httpx.Client) -> None:
    days = json_body(client, "/v1/kpis/daily", TWO_YEARS)["days"]
    response = client.get("/v1/kpis/daily", params={**TWO_YEARS, "format": "parquet"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/vnd.apache.parquet"
    assert response.headers["content-disposition"].endswith('filename="kpis-daily_2024-01-01_2025-12-31.parquet"')
    table = pq.read_table(pa.BufferReader(response.content))
    assert table.schema.field("date").type == pa.date32()
    assert table.schema.field("orders").type == pa.int64()
    assert table.schema.field("revenue").type == pa.decimal128(38, 2)
    assert table.schema.field("avg_order_value").type == pa.decimal128(38, 2)
    assert parquet_rows(response.content) == days


def test_the_accept_header_chooses_like_the_format_parameter(client: httpx.Client) -> None:
    by_parameter = client.get("/v1/kpis/daily", params={**TWO_YEARS, "format": "csv"}).content
    by_header = client.get("/v1/kpis/daily", params=TWO_YEARS, headers={"Accept": "text/csv"})
    assert by_header.headers["content-type"] == "text/csv; charset=utf-8"
    assert by_header.content == by_parameter
    parquet = client.get("/v1/kpis/daily", params={**TWO_YEARS, "format": "parquet"}).content
    for accept in ("application/vnd.apache.parquet", "application/x-parquet", "text/csv;q=0.5, application/x-parquet"):
        response = client.get("/v1/kpis/daily", params=TWO_YEARS, headers={"Accept": accept})
        assert response.headers["content-type"] == "application/vnd.apache.parquet", accept
        assert response.content == parquet, accept
    for accept in ("application/json", "*/*", "application/json, text/csv", "text/csv;q=0.2, */*;q=0.8"):
        response = client.get("/v1/kpis/daily", params=TWO_YEARS, headers={"Accept": accept})
        assert response.headers["content-type"] == "application/json", accept
    # The parameter wins over the header.
    forced = client.get("/v1/kpis/daily", params={**TWO_YEARS, "format": "json"}, headers={"Accept": "text/csv"})
    assert forced.headers["content-type"] == "application/json"
    # Caches keep the answers to one URL apart by Accept.
    assert forced.headers["vary"] == by_header.headers["vary"] == "Accept"


@pytest.mark.parametrize(
    ("params", "headers", "status", "code"),
    [
        ({"format": "xlsx"}, {}, 422, "unsupported_format"),
        ({"format": ""}, {}, 422, "unsupported_format"),
        ({}, {"Accept": "application/xml"}, 406, "not_acceptable"),
        ({}, {"Accept": "text/csv;q=0"}, 406, "not_acceptable"),
    ],
)
@pytest.mark.parametrize("path", ["daily", "summary", "top-products"])
def test_an_unknown_format_is_refused_in_the_error_envelope(
    client: httpx.Client, path: str, params: dict[str, str], headers: dict[str, str], status: int, code: str
) -> None:
    response = client.get(f"/v1/kpis/{path}", params={**TWO_YEARS, **params}, headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == code
    assert set(error) == {"code", "message", "details"}
    assert "csv" in error["message"] or "Accept" in error["message"]


@pytest.mark.parametrize("path", sorted(ENDPOINTS))
def test_every_kpi_endpoint_exports_what_its_json_holds(loaded: Loaded, client: httpx.Client, path: str) -> None:
    params = {**TWO_YEARS, **({"limit": 20} if path == "top-products" else {})}
    assert all(json_rows(path, json_body(client, f"/v1/kpis/{path}", params)))
    assert_exports_equal_json(client, loaded.api, path, params)
    response = client.get(f"/v1/kpis/{path}", params={**params, "format": "csv"})
    assert response.headers["content-disposition"] == f'attachment; filename="kpis-{path}_2024-01-01_2025-12-31.csv"'
    assert response.headers["vary"] == "Accept"


def test_an_empty_range_is_a_header_or_an_empty_table(client: httpx.Client) -> None:
    empty = {"from": "1990-01-01", "to": "1990-12-31"}
    csv_body = client.get("/v1/kpis/daily", params={**empty, "format": "csv"}).text
    assert csv_body == "date,orders,revenue,units,avg_order_value,distinct_customers,cancelled,refunded\r\n"
    table = pq.read_table(pa.BufferReader(client.get("/v1/kpis/daily", params={**empty, "format": "parquet"}).content))
    assert table.num_rows == 0 and table.schema.field("revenue").type == pa.decimal128(38, 2)


def test_exports_take_the_json_endpoints_auth(loaded: Loaded) -> None:
    for fmt in ("csv", "parquet"):
        response = httpx.get(f"{loaded.api}/v1/kpis/daily", params={**TWO_YEARS, "format": fmt})
        assert (response.status_code, response.json()["error"]["code"]) == (401, "unauthenticated")
        # an unknown format from a client without a key: still told to authenticate first
        assert httpx.get(f"{loaded.api}/v1/kpis/daily", params={**TWO_YEARS, "format": "xlsx"}).status_code == 401
    writer = asyncio.run(create_key(loaded.settings, name="exports-writer", scopes=["ingest:write"]))
    response = httpx.get(
        f"{loaded.api}/v1/kpis/states",
        params={**TWO_YEARS, "format": "csv"},
        headers={"Authorization": f"Bearer {writer}"},
    )
    assert (response.status_code, response.json()["error"]["details"]) == (403, {"required_scope": "kpis:read"})


def _chunked_get(url: str, path: str, key: str, accept: str) -> tuple[list[str], list[bytes]]:
    """A GET over a bare socket: the response's header lines and its body's HTTP chunks as they were framed."""
    parts = urlsplit(url)
    assert parts.hostname and parts.port
    with socket.create_connection((parts.hostname, parts.port), timeout=60) as sock:
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: Bearer {key}\r\n"
            f"Accept: {accept}\r\nConnection: close\r\n\r\n"
        )
        sock.sendall(request.encode())
        stream = sock.makefile("rb")
        headers = []
        while line := stream.readline().rstrip(b"\r\n"):
            headers.append(line.decode().lower())
        chunks = []
        while size := int(stream.readline().split(b";")[0], 16):
            chunks.append(stream.read(size))
            assert stream.read(2) == b"\r\n"
    return headers, chunks


@pytest.mark.parametrize("accept", ["text/csv", "application/vnd.apache.parquet"])
def test_a_large_range_is_streamed_a_chunk_at_a_time(loaded: Loaded, client: httpx.Client, accept: str) -> None:
    path = f"/v1/kpis/daily?{urlencode(TWO_YEARS)}"
    headers, chunks = _chunked_get(loaded.api, path, loaded.key, accept)
    assert headers[0].startswith("http/1.1 200"), headers
    # No length up front: the body is written while the cursor is read, not built whole and then sent.
    assert "transfer-encoding: chunked" in headers
    assert not any(h.startswith("content-length:") for h in headers)
    row_chunks = math.ceil(DAYS / CHUNK_ROWS)
    # CSV: the header line, then a piece per chunk of rows; Parquet: a row group per chunk, then the footer.
    assert len(chunks) == row_chunks + 1
    body = b"".join(chunks)
    assert body == client.get(path, headers={"Accept": accept}).content
    if accept == "text/csv":
        assert [len(csv_rows(chunks[0].decode() + c.decode())) for c in chunks[1:]] == [
            min(CHUNK_ROWS, DAYS - i * CHUNK_ROWS) for i in range(row_chunks)
        ]
    else:
        metadata = pq.ParquetFile(pa.BufferReader(body)).metadata
        assert metadata.num_row_groups == row_chunks
        assert [metadata.row_group(i).num_rows for i in range(row_chunks)] == [
            min(CHUNK_ROWS, DAYS - i * CHUNK_ROWS) for i in range(row_chunks)
        ]
