"""The API's /metrics carries the pipeline's state, read at scrape time from a database of its own and the
queues in Redis; a dependency that is down is reported as down, and the scrape still answers."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Iterator

import asyncpg
import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from ops.admin import migrate
from services.api.app import create_app
from services.api.settings import ApiSettings
from tests.conftest import create_database, drop_database, free_port, settings_from
from tests.http_server import serve

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def _seed(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        loaded, quarantined, waiting = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        for batch_id, dataset, status, counts, moved in (
            (loaded, "sales", "loaded", (10, 8, 1, 1), "now()"),
            (quarantined, "sales", "quarantined", (4, 2, 2, 0), "now()"),
            (waiting, "customers", "received", (None, None, None, None), "now() - interval '1 hour'"),
        ):
            await conn.execute(
                f"""INSERT INTO ops.batches (batch_id, dataset, status, file_name, file_format, object_bucket,
                        object_key, sha256, size_bytes, header, rows_in, rows_valid, rows_rejected, rows_duplicate,
                        updated_at)
                    VALUES ($1, $2, $3, 'f.csv', 'csv', 'raw-data', 'k', $4, 1, '{{}}', $5, $6, $7, $8, {moved})""",
                batch_id,
                dataset,
                status,
                hashlib.sha256(batch_id.bytes).hexdigest(),
                *counts,
            )
        await conn.execute(
            """INSERT INTO ops.batch_stages (batch_id, stage, status, started_at, finished_at)
               VALUES ($1, 'transform', 'succeeded', now() - interval '2 seconds', now()),
                      ($1, 'quality', 'succeeded', now() - interval '300 milliseconds', now()),
                      ($2, 'transform', 'succeeded', now() - interval '2 seconds', now()),
                      ($3, 'transform', 'running', now(), NULL)""",
            loaded,
            quarantined,
            waiting,
        )
        await conn.execute(
            """INSERT INTO ops.freshness (dataset, evaluated_at, status, severity, config_version, last_loaded_at,
                   max_event_ts, load_lag_seconds, event_lag_seconds, max_load_lag_seconds, max_event_lag_seconds,
                   breaches)
               VALUES ('sales', now(), 'fail', 'error', 'v1', now() - interval '2 hours', now() - interval '3 hours',
                       7200, 10800, 3600, NULL, '{}'),
                      ('products', now(), 'fresh', 'warn', 'v1', now() - interval '1 minute', NULL,
                       60, NULL, 3600, NULL, '{}')"""
        )
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def database(test_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """The session's settings with a database of this module's own: the counts are exact."""
    url = f"{test_env['SDP_DATABASE_URL']}_metrics"
    asyncio.run(create_database(url))
    env = {**test_env, "SDP_DATABASE_URL": url, "SDP_QUEUE_PREFIX": f"{test_env['SDP_QUEUE_PREFIX']}metrics-"}
    try:
        migrate(settings_from(env), create_database=False)
        asyncio.run(_seed(url))
        yield env
    finally:
        asyncio.run(drop_database(url))


def scrape(url: str) -> Samples:
    response = httpx.get(f"{url}/metrics", timeout=30)
    assert response.status_code == 200, response.text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def test_metrics_carry_the_pipeline_state(database: dict[str, str]) -> None:
    settings = settings_from(database, ApiSettings)
    client = redis.Redis.from_url(settings.redis_url)
    client.rpush(settings.queue("quality"), b"{}", b"{}")
    try:
        with serve(create_app(settings)) as url:
            samples = scrape(url)
    finally:
        client.delete(settings.queue("quality"))
        client.close()

    assert value(samples, "sdp_dependency_up", dependency="postgres") == 1
    assert value(samples, "sdp_dependency_up", dependency="redis") == 1
    assert value(samples, "sdp_pipeline_batches", dataset="sales", status="loaded") == 1
    assert value(samples, "sdp_pipeline_batches", dataset="sales", status="quarantined") == 1
    assert value(samples, "sdp_pipeline_batches", dataset="customers", status="received") == 1
    assert value(samples, "sdp_pipeline_batches", dataset="products", status="failed") == 0
    assert value(samples, "sdp_pipeline_rows_in_total", dataset="sales") == 14
    assert value(samples, "sdp_pipeline_rows_valid_total", dataset="sales") == 10
    assert value(samples, "sdp_pipeline_rows_rejected_total", dataset="sales") == 3
    assert value(samples, "sdp_pipeline_rows_duplicate_total", dataset="sales") == 1
    assert value(samples, "sdp_pipeline_rows_in_total", dataset="products") == 0
    oldest = value(samples, "sdp_pipeline_in_flight_oldest_seconds", dataset="customers", status="received")
    assert oldest == pytest.approx(3600, abs=60)
    assert value(samples, "sdp_pipeline_in_flight_oldest_seconds", dataset="sales", status="received") == 0
    assert value(samples, "sdp_queue_depth", service="quality", queue=settings.queue("quality")) == 2
    assert value(samples, "sdp_queue_depth", service="warehouse", queue=settings.queue("warehouse")) == 0

    assert value(samples, "sdp_freshness_breached", dataset="sales", severity="error") == 1
    assert value(samples, "sdp_freshness_breached", dataset="products", severity="warn") == 0
    assert value(samples, "sdp_freshness_load_lag_seconds", dataset="sales") == pytest.approx(7200, abs=60)
    assert value(samples, "sdp_freshness_event_lag_seconds", dataset="sales") == pytest.approx(10800, abs=60)
    assert value(samples, "sdp_freshness_max_load_lag_seconds", dataset="sales") == 3600
    assert value(samples, "sdp_freshness_event_lag_seconds", dataset="products") is None

    stage = {"stage": "transform", "dataset": "sales"}
    assert value(samples, "sdp_pipeline_stage_seconds_count", **stage) == 2
    assert value(samples, "sdp_pipeline_stage_seconds_sum", **stage) == pytest.approx(4, abs=0.1)
    assert value(samples, "sdp_pipeline_stage_seconds_bucket", **stage, le="1.0") == 0
    assert value(samples, "sdp_pipeline_stage_seconds_bucket", **stage, le="2.5") == 2
    assert value(samples, "sdp_pipeline_stage_seconds_bucket", **stage, le="+Inf") == 2
    quality = {"stage": "quality", "dataset": "sales"}
    assert value(samples, "sdp_pipeline_stage_seconds_bucket", **quality, le="0.25") == 0
    assert value(samples, "sdp_pipeline_stage_seconds_bucket", **quality, le="0.5") == 1
    # A running stage has no duration yet.
    assert value(samples, "sdp_pipeline_stage_seconds_count", stage="transform", dataset="customers") is None


def test_redis_down_leaves_out_only_the_queues(database: dict[str, str]) -> None:
    settings = settings_from({**database, "SDP_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}, ApiSettings)
    with serve(create_app(settings)) as url:
        samples = scrape(url)
    assert value(samples, "sdp_dependency_up", dependency="redis") == 0
    assert value(samples, "sdp_dependency_up", dependency="postgres") == 1
    assert not [name for name, _ in samples if name == "sdp_queue_depth"]
    assert value(samples, "sdp_pipeline_batches", dataset="sales", status="loaded") == 1


def test_postgres_down_leaves_out_only_the_database(database: dict[str, str]) -> None:
    down = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    settings = settings_from({**database, "SDP_DATABASE_URL": down}, ApiSettings)
    with serve(create_app(settings)) as url:
        scrape(url)
        samples = scrape(url)
    assert value(samples, "sdp_dependency_up", dependency="postgres") == 0
    assert value(samples, "sdp_dependency_up", dependency="redis") == 1
    assert not [name for name, _ in samples if name.startswith(("sdp_pipeline_", "sdp_freshness_"))]
    assert value(samples, "sdp_queue_depth", service="quality", queue=settings.queue("quality")) == 0
    # The service's own request metrics are there too: the first scrape, answered 200.
    assert value(samples, "sdp_http_requests_total", service="api", method="GET", route="/metrics", status="200") == 1
