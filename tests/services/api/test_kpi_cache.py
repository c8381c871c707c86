"""The KPI cache over a socket: a repeated question is answered from Redis until a load is published; the
next request after it reads the new figures. Exports are never cached; Redis down only costs the cache."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ops.admin import create_key
from services.api.app import create_app
from services.api.settings import ApiSettings
from shared.bus import EventBus
from shared.datasets import Dataset
from shared.events import AnalyticsBackfilled, BatchLoaded
from shared.settings import PlatformSettings
from tests.conftest import free_port, settings_from
from tests.http_server import serve

CACHE_ON = {"SDP_API_KPI_CACHE_TTL_SECONDS": "300"}
# A month no other test writes.
DAYS = {"from": "1997-03-01", "to": "1997-03-31"}


@dataclass(frozen=True)
class Served:
    url: str
    settings: ApiSettings
    batch_id: uuid.UUID


async def _load_day(database_url: str, batch_id: uuid.UUID, day: date, orders: int) -> None:
    """What a load leaves in analytics.daily_sales for one day (the test stands in for the warehouse)."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            """INSERT INTO ops.batches (batch_id, dataset, status, file_name, file_format, object_bucket, object_key,
                   sha256, size_bytes, header, finished_at)
               VALUES ($1, 'sales', 'loaded', 'cache-test.csv', 'csv', 'raw-data', 'k', $2, 10, '{}', now())
               ON CONFLICT (batch_id) DO NOTHING""",
            batch_id,
            batch_id.hex * 2,
        )
        await conn.execute(
            """INSERT INTO analytics.daily_sales (date, date_key, orders, revenue, units, avg_order_value,
                   distinct_customers, cancelled, refunded, transactions, batch_id)
               VALUES ($1, $2, $3::int, $3::int * 10, $3::int, 10, 1, 0, 0, $3::int, $4)""",
            day,
            day.year * 10_000 + day.month * 100 + day.day,
            orders,
            batch_id,
        )
    finally:
        await conn.close()


async def _unload(database_url: str, batch_id: uuid.UUID) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("DELETE FROM analytics.daily_sales WHERE batch_id = $1", batch_id)
        await conn.execute("DELETE FROM ops.batches WHERE batch_id = $1", batch_id)
    finally:
        await conn.close()


@pytest.fixture
def served(test_env: dict[str, str]) -> Iterator[Served]:
    # A queue prefix of its own: a namespace of the cache (and generation) no other test shares.
    prefix = f"{test_env['SDP_QUEUE_PREFIX']}cache-{uuid.uuid4().hex[:8]}-"
    settings = settings_from({**test_env, "SDP_QUEUE_PREFIX": prefix, **CACHE_ON}, ApiSettings)
    batch_id = uuid.uuid4()
    try:
        with serve(create_app(settings)) as url:
            yield Served(url, settings, batch_id)
    finally:
        asyncio.run(_unload(settings.database_url, batch_id))


@pytest.fixture(scope="module")
def reader(settings: PlatformSettings) -> Iterator[httpx.Client]:
    key = asyncio.run(create_key(settings, name="cache-test", scopes=["kpis:read"]))
    with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
        yield client


def cache_lookups(url: str, endpoint: str, result: str) -> float:
    text = httpx.get(f"{url}/metrics").raise_for_status().text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "sdp_api_kpi_cache_requests_total" and sample.labels == {
                "endpoint": endpoint,
                "result": result,
            }:
                return sample.value
    return 0.0


def orders(response: httpx.Response) -> list[int]:
    assert response.status_code == 200, response.text
    return [day["orders"] for day in response.json()["days"]]


def test_an_answer_is_cached_until_a_load_is_published(served: Served, reader: httpx.Client) -> None:
    daily = f"{served.url}/v1/kpis/daily"
    asyncio.run(_load_day(served.settings.database_url, served.batch_id, date(1997, 3, 1), 3))
    first = reader.get(daily, params=DAYS)
    assert orders(first) == [3] and first.headers["x-cache"] == "miss"
    # The same question with its parameters in another order is the same key.
    again = reader.get(daily, params={"to": "1997-03-31", "from": "1997-03-01"})
    assert again.headers["x-cache"] == "hit" and again.content == first.content
    assert cache_lookups(served.url, "daily", "hit") == 1

    # Rows written without a load's event are not seen: the answer comes from the cache.
    asyncio.run(_load_day(served.settings.database_url, served.batch_id, date(1997, 3, 2), 5))
    assert orders(reader.get(daily, params=DAYS)) == [3]
    assert cache_lookups(served.url, "daily", "hit") == 2

    # The warehouse publishes batch.loaded after its commit: the very next request reads the new figures.
    bus = EventBus(served.settings)
    try:
        loaded = BatchLoaded(batch_id=served.batch_id, dataset=Dataset.sales, facts_upserted=5, dates_refreshed=1)
        bus.publish(loaded)
    finally:
        bus.close()
    fresh = reader.get(daily, params=DAYS)
    assert orders(fresh) == [3, 5] and fresh.headers["x-cache"] == "miss"
    assert reader.get(daily, params=DAYS).headers["x-cache"] == "hit"
    # A different range is a different answer.
    narrow = reader.get(daily, params={"from": "1997-03-02", "to": "1997-03-31"})
    assert orders(narrow) == [5] and narrow.headers["x-cache"] == "miss"

    # A backfill rewrites analytics without a load: its broadcast moves the cache on too.
    asyncio.run(_load_day(served.settings.database_url, served.batch_id, date(1997, 3, 3), 7))
    assert orders(reader.get(daily, params=DAYS)) == [3, 5]
    bus = EventBus(served.settings)
    try:
        bus.broadcast(
            AnalyticsBackfilled(
                date_from=date(1997, 3, 1), date_to=date(1997, 3, 31), changed=True, tables={}, audit_id=1
            )
        )
    finally:
        bus.close()
    backfilled = reader.get(daily, params=DAYS)
    assert orders(backfilled) == [3, 5, 7] and backfilled.headers["x-cache"] == "miss"


def test_the_cached_answer_equals_the_uncached_one(
    served: Served, reader: httpx.Client, test_env: dict[str, str]
) -> None:
    asyncio.run(_load_day(served.settings.database_url, served.batch_id, date(1997, 3, 4), 2))
    uncached_settings = settings_from(test_env, ApiSettings)
    assert uncached_settings.api_kpi_cache_ttl_seconds == 0
    with serve(create_app(uncached_settings)) as plain:
        for path in ("daily", "summary", "categories", "payment-methods", "states", "top-products"):
            cached = [reader.get(f"{served.url}/v1/kpis/{path}", params=DAYS) for _ in range(2)]
            direct = reader.get(f"{plain}/v1/kpis/{path}", params=DAYS)
            assert [r.headers["x-cache"] for r in cached] == ["miss", "hit"], path
            assert direct.headers["x-cache"] == "bypass", path
            assert cached[0].json() == cached[1].json() == direct.json(), path
            assert cached[1].headers["content-type"] == "application/json"


def test_exports_are_not_cached(served: Served, reader: httpx.Client) -> None:
    asyncio.run(_load_day(served.settings.database_url, served.batch_id, date(1997, 3, 5), 4))
    for _ in range(2):
        export = reader.get(f"{served.url}/v1/kpis/daily", params={**DAYS, "format": "csv"})
        assert export.status_code == 200, export.text
        assert export.headers["content-type"].startswith("text/csv") and "x-cache" not in export.headers
    assert cache_lookups(served.url, "daily", "hit") == 0


def test_redis_down_costs_only_the_cache(test_env: dict[str, str], reader: httpx.Client) -> None:
    settings = settings_from(
        {**test_env, "SDP_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", **CACHE_ON}, ApiSettings
    )
    with serve(create_app(settings)) as url:
        response = reader.get(f"{url}/v1/kpis/daily", params=DAYS)
        assert response.status_code == 200, response.text
        assert response.headers["x-cache"] == "bypass"
        assert cache_lookups(url, "daily", "bypass") == 1
