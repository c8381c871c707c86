"""The API over a socket: batch and KPI responses, money as exact JSON numbers, auth, error envelope."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime

import asyncpg
import httpx
import pytest

from ops.admin import create_key
from services.api.app import create_app
from services.api.settings import ApiSettings
from shared.bus import EventBus
from shared.datasets import Dataset
from shared.events import BatchLoaded
from shared.http import RETRY_AFTER_SECONDS
from shared.settings import PlatformSettings
from tests.conftest import free_port, settings_from
from tests.http_server import serve
from tests.sse import sse_frames

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
        await _seed_breakdowns(conn)
    finally:
        await conn.close()


async def _seed_breakdowns(conn: asyncpg.Connection) -> None:
    """January 1999 in every analytics table the breakdowns read, and facts of two customers (one of them in
    two versions) for the summary's distinct customers."""
    await conn.execute(
        """INSERT INTO analytics.daily_category_sales (date, category, orders, revenue, units, transactions, batch_id)
           VALUES ('1999-01-01', 'books', 2, 0.20, 3, 3, $1), ('1999-01-01', NULL, 1, 0.10, 1, 1, $1),
                  ('1999-01-02', 'books', 1, 12345678.91, 1, 2, $1)""",
        BATCH_ID,
    )
    await conn.execute(
        """INSERT INTO analytics.daily_payment_method_sales (date, payment_method, orders, revenue, units,
               transactions, cancelled, refunded, batch_id)
           VALUES ('1999-01-01', 'pix', 3, 0.30, 4, 4, 1, 0, $1),
                  ('1999-01-02', 'boleto', 1, 12345678.91, 1, 2, 0, 1, $1)""",
        BATCH_ID,
    )
    await conn.execute(
        """INSERT INTO analytics.daily_region_sales (date, country, state, orders, distinct_customers, revenue, units,
               transactions, batch_id)
           VALUES ('1999-01-01', 'BR', 'SP', 3, 2, 0.30, 4, 4, $1),
                  ('1999-01-02', 'BR', 'RJ', 1, 1, 12345678.91, 1, 2, $1),
                  ('1999-01-02', 'BR', 'SP', 0, 0, 0, 0, 1, $1)""",
        BATCH_ID,
    )
    await conn.execute(
        """INSERT INTO analytics.daily_product_sales (date, product_id, orders, cancelled, refunded, revenue, units,
               transactions, batch_id)
           VALUES ('1999-01-01', 'api-P1', 2, 1, 0, 0.20, 3, 3, $1),
                  ('1999-01-01', 'api-P2', 1, 0, 0, 0.10, 1, 1, $1),
                  ('1999-01-02', 'api-P2', 1, 0, 1, 12345678.91, 1, 2, $1),
                  ('1999-01-02', NULL, 0, 0, 0, 0, 0, 1, $1)""",
        BATCH_ID,
    )
    await conn.execute(
        """INSERT INTO processed.dim_products (product_id, product_name, category, valid_from, batch_id)
           VALUES ('api-P2', 'Atlas', 'maps', '1990-01-01', $1)""",
        BATCH_ID,
    )
    c1_old, c1_new, c2 = [
        await conn.fetchval(
            """INSERT INTO processed.dim_customers (customer_id, valid_from, valid_to, is_current, batch_id)
               VALUES ($1, $2, $3, $4, $5) RETURNING customer_key""",
            customer_id,
            datetime(*valid_from, tzinfo=UTC),
            datetime(*valid_to, tzinfo=UTC),
            valid_to == (9999, 12, 31),
            BATCH_ID,
        )
        for customer_id, valid_from, valid_to in (
            ("api-C1", (1990, 1, 1), (1999, 1, 2)),
            ("api-C1", (1999, 1, 2), (9999, 12, 31)),
            ("api-C2", (1990, 1, 1), (9999, 12, 31)),
        )
    ]
    await conn.executemany(
        """INSERT INTO processed.fact_sales (transaction_id, transaction_ts, date_key, customer_key, quantity, status,
               batch_id)
           VALUES ($1, $2, $3, $4, 1, $5, $6)""",
        [
            ("api-T1", datetime(1999, 1, 1, 10, tzinfo=UTC), 19990101, c1_old, "completed", BATCH_ID),
            ("api-T2", datetime(1999, 1, 2, 10, tzinfo=UTC), 19990102, c1_new, "completed", BATCH_ID),
            ("api-T3", datetime(1999, 1, 2, 11, tzinfo=UTC), 19990102, c2, "completed", BATCH_ID),
            ("api-T4", datetime(1999, 1, 1, 12, tzinfo=UTC), 19990101, c2, "cancelled", BATCH_ID),
        ],
    )


async def _unseed(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("DELETE FROM processed.fact_sales WHERE transaction_id LIKE 'api-T%'")
        await conn.execute("DELETE FROM processed.dim_customers WHERE customer_id LIKE 'api-C%'")
        await conn.execute("DELETE FROM processed.dim_products WHERE product_id LIKE 'api-P%'")
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def api_url(test_env: dict[str, str], settings: PlatformSettings) -> Iterator[str]:
    asyncio.run(_seed(settings.database_url))
    try:
        with serve(create_app(settings_from(test_env, ApiSettings))) as url:
            yield url
    finally:
        asyncio.run(_unseed(settings.database_url))


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


PAGED = [uuid.uuid4() for _ in range(5)]


async def _seed_paged(database_url: str, batches: list[tuple[uuid.UUID, str, datetime]]) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.executemany(
            """INSERT INTO ops.batches (batch_id, dataset, status, file_name, file_format, object_bucket, object_key,
                   sha256, size_bytes, header, received_at)
               VALUES ($1, $2, 'loaded', 'paged.csv', 'csv', 'raw-data', 'k', $3, 10, '{}', $4)""",
            [(batch_id, dataset, uuid.uuid4().hex * 2, at) for batch_id, dataset, at in batches],
        )
    finally:
        await conn.close()


def test_batch_list_pages_with_a_cursor_that_is_stable_under_inserts(
    api_url: str, reader: httpx.Client, settings: PlatformSettings
) -> None:
    # Two share a received time: the batch id breaks the tie, so neither is skipped or repeated at a page edge.
    times = [datetime(1990, 1, day, tzinfo=UTC) for day in (1, 2, 2, 3, 4)]
    datasets = ["customers", "products", "customers", "customers", "products"]
    asyncio.run(_seed_paged(settings.database_url, list(zip(PAGED, datasets, times, strict=True))))
    window = {"since": "1990-01-01T00:00:00", "until": "1990-02-01T00:00:00Z"}
    expected = [b for _, b in sorted(zip(times, PAGED, strict=True), key=lambda p: (p[0], p[1]), reverse=True)]
    seen: list[str] = []
    cursor = None
    for page in range(3):
        params = {**window, "limit": 2, **({"cursor": cursor} if cursor else {})}
        body = reader.get(f"{api_url}/v1/batches", params=params).raise_for_status().json()
        seen += [b["batch_id"] for b in body["batches"]]
        cursor = body["next_cursor"]
        if page == 0:
            # A batch received after the first page was read is on none of the next ones.
            newer = [(uuid.uuid4(), "sales", datetime(1990, 1, 31, tzinfo=UTC))]
            asyncio.run(_seed_paged(settings.database_url, newer))
    assert seen == [str(b) for b in expected]
    assert cursor is None

    customers = reader.get(f"{api_url}/v1/batches", params={**window, "dataset": "customers"}).json()
    assert [b["batch_id"] for b in customers["batches"]] == [
        str(b) for b in expected if datasets[PAGED.index(b)] == "customers"
    ]
    assert customers["next_cursor"] is None
    narrow = {"since": "1990-01-02T00:00:00+00:00", "until": "1990-01-03T00:00:00+00:00"}
    between = reader.get(f"{api_url}/v1/batches", params=narrow).json()["batches"]
    assert {b["batch_id"] for b in between} == {str(PAGED[1]), str(PAGED[2])}


def test_daily_kpis_by_week_and_month_count_each_customer_once(api_url: str, reader: httpx.Client) -> None:
    january = {"from": "1999-01-01", "to": "1999-01-31"}
    days = reader.get(f"{api_url}/v1/kpis/daily", params=january).raise_for_status().json()
    assert days["grain"] == "day" and sum(d["distinct_customers"] for d in days["days"]) == 3
    # 1999-01-01 is a Friday: its ISO week starts on Monday 1998-12-28, and holds the range's days only.
    for grain, first_day in (("week", "1998-12-28"), ("month", "1999-01-01")):
        response = reader.get(f"{api_url}/v1/kpis/daily", params={**january, "grain": grain})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["grain"] == grain
        assert body["days"] == [
            {
                "date": first_day,
                "orders": 4,
                "revenue": 12345679.21,
                "units": 5,
                "avg_order_value": 3086419.8,
                # api-C1 bought on both days (in two versions), api-C2 on one: two customers, not 2 + 1.
                "distinct_customers": 2,
                "cancelled": 1,
                "refunded": 1,
            }
        ]
    split = reader.get(f"{api_url}/v1/kpis/daily", params={"from": "1999-01-01", "to": "1999-01-04", "grain": "week"})
    assert [w["date"] for w in split.json()["days"]] == ["1998-12-28"]
    exported = reader.get(f"{api_url}/v1/kpis/daily", params={**january, "grain": "month", "format": "csv"})
    assert exported.status_code == 200, exported.text
    assert 'filename="kpis-monthly_1999-01-01_1999-01-31.csv"' in exported.headers["content-disposition"]
    assert exported.text.splitlines()[1] == "1999-01-01,4,12345679.21,5,3086419.80,2,1,1"


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
        # Past PostgreSQL's bigint (source_line): refused before it reaches the driver.
        (f"/v1/batches/{BATCH_ID}/rejects", {"after_line": str(2**63)}, 422, "invalid_request"),
        (f"/v1/batches/{BATCH_ID}/rejects", {"after_line": "99999999999999999999"}, 422, "invalid_request"),
        # PostgreSQL text cannot hold a NUL; the filters take only the known datasets and statuses.
        ("/v1/batches", {"dataset": "sales\x00"}, 422, "invalid_request"),
        ("/v1/batches", {"status": "loaded\x00"}, 422, "invalid_request"),
        ("/v1/batches", {"dataset": "invoices"}, 422, "invalid_request"),
        ("/v1/batches", {"status": "done"}, 422, "invalid_request"),
        ("/v1/batches", {"since": "yesterday"}, 422, "invalid_request"),
        ("/v1/batches", {"since": "2025-02-01", "until": "2025-01-01"}, 400, "invalid_range"),
        ("/v1/batches", {"cursor": "bm90LWEtY3Vyc29y"}, 400, "invalid_cursor"),
        ("/v1/batches", {"cursor": "%%%"}, 400, "invalid_cursor"),
        ("/v1/kpis/daily", {"from": "1999-01-01", "to": "1999-01-31", "grain": "year"}, 422, "invalid_request"),
        ("/v1/kpis/daily", {"from": "1999-01-01", "to": "1999-01-31", "grain": "WEEK"}, 422, "invalid_request"),
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
    largest = reader.get(f"{api_url}/v1/batches/{BATCH_ID}/rejects", params={"after_line": 2**63 - 1})
    assert (largest.status_code, largest.json()["rejects"]) == (200, [])
    missing = reader.get(f"{api_url}/v1/batches/{uuid.uuid4()}/rejects")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "batch_not_found"


JANUARY = {"from": "1999-01-01", "to": "1999-01-31"}


def test_summary_sums_the_days_and_counts_each_customer_once(api_url: str, reader: httpx.Client) -> None:
    response = reader.get(f"{api_url}/v1/kpis/summary", params=JANUARY)
    assert response.status_code == 200, response.text
    assert '"revenue":12345679.21,' in response.text
    assert response.json() == {
        "from": "1999-01-01",
        "to": "1999-01-31",
        "orders": 4,
        "revenue": 12345679.21,
        "units": 5,
        "avg_order_value": 3086419.8,
        # api-C1 in two versions and api-C2: two customers, not three rows
        "distinct_customers": 2,
        "transactions": 6,
        "cancelled": 1,
        "refunded": 1,
        "cancellation_rate": 0.1667,
        "refund_rate": 0.1667,
        "days_with_sales": 2,
    }
    first_day = reader.get(f"{api_url}/v1/kpis/summary", params={"from": "1999-01-01", "to": "1999-01-01"}).json()
    # api-C2's only sale that day was cancelled
    assert (first_day["orders"], first_day["distinct_customers"], first_day["cancellation_rate"]) == (3, 1, 0.25)
    empty = reader.get(f"{api_url}/v1/kpis/summary", params={"from": "2000-01-01", "to": "2000-12-31"}).json()
    assert (empty["orders"], empty["revenue"], empty["avg_order_value"], empty["refund_rate"]) == (0, 0, 0, 0)


def test_breakdowns_sum_the_range_largest_revenue_first(api_url: str, reader: httpx.Client) -> None:
    def get(path: str, **params: object) -> dict[str, object]:
        response = reader.get(f"{api_url}/v1/kpis/{path}", params={**JANUARY, **params})
        assert response.status_code == 200, response.text
        body: dict[str, object] = response.json()
        assert (body.pop("from"), body.pop("to")) == (JANUARY["from"], JANUARY["to"])
        return body

    assert get("categories") == {
        "categories": [
            {"category": "books", "orders": 3, "revenue": 12345679.11, "units": 4, "transactions": 5},
            {"category": None, "orders": 1, "revenue": 0.1, "units": 1, "transactions": 1},
        ]
    }
    assert get("payment-methods") == {
        "payment_methods": [
            {
                "payment_method": "boleto",
                "orders": 1,
                "revenue": 12345678.91,
                "units": 1,
                "transactions": 2,
                "cancelled": 0,
                "refunded": 1,
            },
            {
                "payment_method": "pix",
                "orders": 3,
                "revenue": 0.3,
                "units": 4,
                "transactions": 4,
                "cancelled": 1,
                "refunded": 0,
            },
        ]
    }
    assert get("states") == {
        "states": [
            {"country": "BR", "state": "RJ", "orders": 1, "revenue": 12345678.91, "units": 1, "transactions": 2},
            {"country": "BR", "state": "SP", "orders": 3, "revenue": 0.3, "units": 4, "transactions": 5},
        ]
    }
    atlas = {
        "product_id": "api-P2",
        "product_name": "Atlas",
        "category": "maps",
        "orders": 2,
        "revenue": 12345679.01,
        "units": 2,
        "cancelled": 0,
        "refunded": 1,
    }
    unnamed = {
        "product_id": "api-P1",
        "product_name": None,
        "category": None,
        "orders": 2,
        "revenue": 0.2,
        "units": 3,
        "cancelled": 1,
        "refunded": 0,
    }
    assert get("top-products", limit=1) == {"products": [atlas]}
    assert get("top-products") == {"products": [atlas, unnamed]}


@pytest.mark.parametrize("path", ["summary", "categories", "payment-methods", "states", "top-products"])
def test_range_endpoints_check_their_range(api_url: str, reader: httpx.Client, path: str) -> None:
    backwards = reader.get(f"{api_url}/v1/kpis/{path}", params={"from": "1999-02-01", "to": "1999-01-01"})
    assert (backwards.status_code, backwards.json()["error"]["code"]) == (400, "invalid_range")
    missing = reader.get(f"{api_url}/v1/kpis/{path}", params={"from": "1999-02-01"})
    assert (missing.status_code, missing.json()["error"]["code"]) == (422, "invalid_request")


def test_top_products_limit_is_bounded(api_url: str, reader: httpx.Client) -> None:
    for limit in (0, 1001):
        response = reader.get(f"{api_url}/v1/kpis/top-products", params={**JANUARY, "limit": limit})
        assert response.status_code == 422, response.text


def test_events_stream_what_is_published_for_the_batch_asked_for(
    api_url: str, reader: httpx.Client, settings: PlatformSettings
) -> None:
    bus = EventBus(settings)
    other = BatchLoaded(batch_id=uuid.uuid4(), dataset=Dataset.sales, facts_upserted=1, dates_refreshed=1)
    ours = BatchLoaded(batch_id=BATCH_ID, dataset=Dataset.sales, facts_upserted=2, dates_refreshed=1)
    with reader.stream("GET", f"{api_url}/v1/events", params={"batch_id": str(BATCH_ID)}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        assert next(lines) == ": connected"
        bus.publish(other)
        bus.publish(ours)
        frame = next(sse_frames(lines))
    assert frame["id"] == str(ours.event_id)
    assert frame["event"] == "batch.loaded"
    assert json.loads(frame["data"]) == ours.model_dump(mode="json")


def test_events_resume_after_the_last_event_id(api_url: str, reader: httpx.Client, settings: PlatformSettings) -> None:
    seen, missed = (
        BatchLoaded(batch_id=BATCH_ID, dataset=Dataset.sales, facts_upserted=n, dates_refreshed=1) for n in (3, 4)
    )

    async def record() -> None:
        conn = await asyncpg.connect(settings.database_url)
        try:
            for offset, event in enumerate((seen, missed)):
                await conn.execute(
                    """INSERT INTO ops.batch_events (event_id, batch_id, type, payload, created_at, published_at)
                       VALUES ($1, $2, $3, $4::jsonb, now() + make_interval(secs => $5), now())""",
                    event.event_id,
                    event.batch_id,
                    event.type,
                    event.model_dump_json(),
                    offset,
                )
        finally:
            await conn.close()

    asyncio.run(record())
    headers = {"Last-Event-ID": str(seen.event_id)}
    with reader.stream("GET", f"{api_url}/v1/events", headers=headers) as response:
        assert response.status_code == 200
        frame = next(sse_frames(response.iter_lines()))
    assert frame["id"] == str(missed.event_id)
    assert json.loads(frame["data"])["facts_upserted"] == 4


def test_a_database_that_is_down_is_503_with_retry_after(test_env: dict[str, str], reader: httpx.Client) -> None:
    env = {**test_env, "SDP_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/sdp"}
    with serve(create_app(settings_from(env, ApiSettings))) as url:
        # The key check is the first thing that reads the database.
        batches = reader.get(f"{url}/v1/batches")
        ready = httpx.get(f"{url}/readyz")
    for response, code in ((batches, "database_unavailable"), (ready, "not_ready")):
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == str(RETRY_AFTER_SECONDS)
        assert response.json()["error"]["code"] == code


def test_events_while_redis_is_down_are_503_and_the_status_degrades(
    test_env: dict[str, str], reader: httpx.Client
) -> None:
    env = {**test_env, "SDP_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    with serve(create_app(settings_from(env, ApiSettings))) as url:
        events = reader.get(f"{url}/v1/events")
        status = reader.get(f"{url}/v1/pipeline/status")
    assert events.status_code == 503, events.text
    assert events.headers["retry-after"] == str(RETRY_AFTER_SECONDS)
    assert events.json()["error"]["code"] == "broker_unavailable"
    assert status.status_code == 200, status.text
    assert {q["length"] for q in status.json()["queues"]} == {None}
