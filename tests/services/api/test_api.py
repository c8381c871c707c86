"""The API over a socket: batch and KPI responses, money as exact JSON numbers, auth, error envelope."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from datetime import date

import asyncpg
import httpx
import pytest

from services.api.app import create_app
from services.api.settings import ApiSettings
from shared.admin import create_key
from shared.settings import PlatformSettings
from tests.conftest import settings_from
from tests.http_server import serve

BATCH_ID = uuid.uuid4()


async def _seed(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            """INSERT INTO ops.batches (batch_id, dataset, status, file_name, file_format, object_bucket, object_key,
                   sha256, size_bytes, header, rows_in, rows_valid, rows_rejected, rows_duplicate, finished_at)
               VALUES ($1, 'sales', 'loaded', 'api-test.csv', 'csv', 'raw-data', 'k', $2, 10, '{}',
                       5, 2, 2, 1, now())""",
            BATCH_ID,
            "a" * 64,
        )
        await conn.execute(
            """INSERT INTO ops.batch_stages (batch_id, stage, status, started_at, finished_at)
               VALUES ($1, 'transform', 'succeeded', now() - interval '2 seconds', now()),
                      ($1, 'ingest', 'succeeded', now() - interval '3 seconds', now() - interval '3 seconds')""",
            BATCH_ID,
        )
        await conn.executemany(
            """INSERT INTO staging.sales_rejects (batch_id, source_line, reasons, record)
               VALUES ($1, $2, $3, $4::jsonb)""",
            [
                (BATCH_ID, line, reasons, json.dumps({"transaction_id": f"T{line}", "quantity": "x"}))
                for line, reasons in ((7, ["invalid_quantity"]), (3, ["missing_transaction_ts", "invalid_quantity"]))
            ],
        )
        await conn.execute(
            """INSERT INTO analytics.daily_sales (date, date_key, orders, revenue, units, avg_order_value,
                   distinct_customers, cancelled, refunded, transactions, batch_id)
               VALUES ('1999-01-01', 19990101, 3, 0.30, 4, 0.10, 2, 1, 0, 4, $1),
                      ('1999-01-02', 19990102, 1, 12345678.91, 1, 12345678.91, 1, 0, 1, 2, $1)""",
            BATCH_ID,
        )
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def api_url(test_env: dict[str, str], settings: PlatformSettings) -> Iterator[str]:
    asyncio.run(_seed(settings.database_url))
    with serve(create_app(settings_from(test_env, ApiSettings))) as url:
        yield url


@pytest.fixture(scope="module")
def reader(settings: PlatformSettings) -> httpx.Client:
    key = asyncio.run(create_key(settings, name="api-test", scopes=["kpis:read", "batches:read"]))
    return httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=30)


def test_batch_has_the_contract_shape(api_url: str, reader: httpx.Client) -> None:
    body = reader.get(f"{api_url}/v1/batches/{BATCH_ID}").raise_for_status().json()
    assert body["batch_id"] == str(BATCH_ID)
    assert body["status"] == "loaded"
    assert body["counts"] == {"rows_in": 5, "rows_valid": 2, "rows_rejected": 2, "rows_duplicate": 1}
    assert [s["stage"] for s in body["stages"]] == ["ingest", "transform"]
    assert body["stages"][1]["duration_ms"] == pytest.approx(2000, abs=50)
    assert body["quality"] == [] and body["error"] is None
    assert {"received_at", "finished_at"} <= set(body)


def test_batch_list_filters(api_url: str, reader: httpx.Client) -> None:
    listed = reader.get(f"{api_url}/v1/batches", params={"status": "loaded", "dataset": "sales"}).json()["batches"]
    assert str(BATCH_ID) in {b["batch_id"] for b in listed}
    none = reader.get(f"{api_url}/v1/batches", params={"dataset": "products"}).json()["batches"]
    assert str(BATCH_ID) not in {b["batch_id"] for b in none}


def test_daily_kpis_are_exact_json_numbers(api_url: str, reader: httpx.Client) -> None:
    response = reader.get(f"{api_url}/v1/kpis/daily", params={"from": "1999-01-01", "to": "1999-01-31"})
    assert response.status_code == 200, response.text
    assert '"revenue":0.3,' in response.text and '"revenue":12345678.91,' in response.text
    body = response.json()
    assert body["from"] == "1999-01-01" and body["to"] == "1999-01-31"
    assert body["days"][0] == {
        "date": "1999-01-01",
        "orders": 3,
        "revenue": 0.3,
        "units": 4,
        "avg_order_value": 0.1,
        "distinct_customers": 2,
        "cancelled": 1,
        "refunded": 0,
    }
    assert [d["date"] for d in body["days"]] == [str(date(1999, 1, 1)), str(date(1999, 1, 2))]


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        (f"/v1/batches/{uuid.uuid4()}", {}, 404, "batch_not_found"),
        ("/v1/batches/not-a-uuid", {}, 422, "invalid_request"),
        ("/v1/kpis/daily", {"from": "2024-02-01", "to": "2024-01-01"}, 400, "invalid_range"),
        ("/v1/kpis/daily", {"from": "2024-02-01"}, 422, "invalid_request"),
    ],
)
def test_errors_use_the_envelope(
    api_url: str, reader: httpx.Client, path: str, params: dict[str, str], status: int, code: str
) -> None:
    response = reader.get(f"{api_url}{path}", params=params)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


def test_auth_is_required_and_scoped(api_url: str, settings: PlatformSettings) -> None:
    assert httpx.get(f"{api_url}/v1/batches/{BATCH_ID}").status_code == 401
    writer = asyncio.run(create_key(settings, name="writer-only", scopes=["ingest:write"]))
    headers = {"Authorization": f"Bearer {writer}"}
    response = httpx.get(f"{api_url}/v1/kpis/daily", params={"from": "1999-01-01", "to": "1999-01-02"}, headers=headers)
    assert response.status_code == 403
    assert response.json()["error"]["details"] == {"required_scope": "kpis:read"}
    assert httpx.get(f"{api_url}/healthz").status_code == 200
    assert httpx.get(f"{api_url}/readyz").json() == {"status": "ready"}


def test_metrics_count_requests_by_route_template(api_url: str, reader: httpx.Client) -> None:
    reader.get(f"{api_url}/v1/batches/{BATCH_ID}").raise_for_status()
    text = httpx.get(f"{api_url}/metrics").text
    line = next(
        (
            ln
            for ln in text.splitlines()
            if ln.startswith("sdp_http_requests_total{")
            and 'route="/v1/batches/{batch_id}"' in ln
            and 'status="200"' in ln
        ),
        None,
    )
    assert line is not None, text
    assert float(line.rsplit(" ", 1)[1]) >= 1


def test_rejects_page_through_a_batch_in_file_order(api_url: str, reader: httpx.Client) -> None:
    first = reader.get(f"{api_url}/v1/batches/{BATCH_ID}/rejects", params={"limit": 1})
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["batch_id"], body["dataset"], body["rows_rejected"]) == (str(BATCH_ID), "sales", 2)
    assert body["rejects"] == [
        {
            "source_line": 3,
            "reasons": ["missing_transaction_ts", "invalid_quantity"],
            "record": {"transaction_id": "T3", "quantity": "x"},
        }
    ]
    assert body["next_after_line"] == 3
    second = reader.get(f"{api_url}/v1/batches/{BATCH_ID}/rejects", params={"limit": 1, "after_line": 3}).json()
    assert [r["source_line"] for r in second["rejects"]] == [7]
    assert second["next_after_line"] == 7
    last = reader.get(f"{api_url}/v1/batches/{BATCH_ID}/rejects", params={"after_line": 7}).json()
    assert (last["rejects"], last["next_after_line"]) == ([], None)
    missing = reader.get(f"{api_url}/v1/batches/{uuid.uuid4()}/rejects")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "batch_not_found"
