"""The API's quality surface: the configured checks, a batch's results beside its config, release and
re-run of quarantined batches (admin, audited, the event queued for the next stage) and pipeline status."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest

from ops.admin import create_key
from services.api.app import create_app
from services.api.settings import ApiSettings
from shared.events import BatchStaged, RowCounts
from shared.quality_config import load_quality_config
from shared.settings import PlatformSettings
from tests.conftest import settings_from
from tests.http_server import serve


async def _quarantined_batch(database_url: str, config_version: str) -> uuid.UUID:
    """A sales batch as the quality stage leaves it quarantined: results, its config, its staged event."""
    batch_id = uuid.uuid4()
    staged = BatchStaged(
        batch_id=batch_id,
        dataset="sales",
        counts=RowCounts(rows_in=2, rows_valid=2, rows_rejected=0, rows_duplicate=0),
        parquet_prefix=f"sales/batch_id={batch_id}/",
    )
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            """INSERT INTO ops.batches (batch_id, dataset, status, file_name, file_format, object_bucket, object_key,
                   sha256, size_bytes, rows_in, rows_valid, rows_rejected, rows_duplicate, error, finished_at)
               VALUES ($1, 'sales', 'quarantined', 'q.csv', 'csv', 'raw-data', 'k', $2, 1, 2, 2, 0, 0,
                       'failed checks: range.quantity', now())""",
            batch_id,
            uuid.uuid4().hex * 2,
        )
        await conn.execute(
            """INSERT INTO ops.batch_events (event_id, batch_id, type, payload, published_at)
               VALUES ($1, $2, 'batch.staged', $3::jsonb, now())""",
            staged.event_id,
            batch_id,
            staged.model_dump_json(),
        )
        await conn.execute(
            """INSERT INTO ops.quality_configs (config_version, declared_version, document)
               VALUES ($1, 'test', $2::jsonb) ON CONFLICT DO NOTHING""",
            config_version,
            json.dumps({"version": "test", "datasets": {"sales": {"checks": [{"name": "range.quantity"}]}}}),
        )
        await conn.executemany(
            """INSERT INTO ops.quality_results (batch_id, check_name, check_type, severity, status, observed,
                   threshold, duration_ms, config_version)
               VALUES ($1, $2, 'range', $3, $4, 'o', 't', 1.0, $5)""",
            [
                (batch_id, "range.quantity", "error", "fail", config_version),
                (batch_id, "format.transaction_id", "warn", "warn", config_version),
            ],
        )
    finally:
        await conn.close()
    return batch_id


async def _fetch(database_url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def api(test_env: dict[str, str], run_id: str) -> Iterator[tuple[str, ApiSettings]]:
    # Its own queues (cleaned with the session's keys): no worker of a running platform takes its events.
    settings = settings_from({**test_env, "SDP_QUEUE_PREFIX": f"test-{run_id}-admin-"}, ApiSettings)
    with serve(create_app(settings)) as url:
        yield url, settings


def _client(settings: PlatformSettings, *scopes: str) -> httpx.Client:
    key = asyncio.run(create_key(settings, name=f"qa-{'-'.join(scopes)}", scopes=list(scopes)))
    return httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=30)


def test_configured_checks_and_their_version(api: tuple[str, ApiSettings], settings: PlatformSettings) -> None:
    url, api_settings = api
    with _client(settings, "batches:read") as reader:
        body = reader.get(f"{url}/v1/quality/checks").raise_for_status().json()
    loaded = load_quality_config(api_settings.quality_config)
    assert body["version"] == loaded.version and body["declared_version"] == loaded.config.version
    sales = body["datasets"]["sales"]
    assert [c["name"] for c in sales["checks"]] == [c.name for c in loaded.config.checks_for("sales")]  # type: ignore[arg-type]
    unique = next(c for c in sales["checks"] if c["type"] == "unique")
    assert unique["columns"] == ["transaction_id"]
    assert sales["freshness"]["column"] == "transaction_ts"
    assert "referential" in body["check_types"]


def test_release_loads_a_quarantined_batch_on_and_is_audited(
    api: tuple[str, ApiSettings], settings: PlatformSettings
) -> None:
    url, _ = api
    batch_id = asyncio.run(_quarantined_batch(settings.database_url, "test+release"))
    with _client(settings, "batches:read") as reader, _client(settings, "admin") as admin:
        detail = reader.get(f"{url}/v1/batches/{batch_id}").raise_for_status().json()
        assert detail["quality_config"]["version"] == "test+release"
        assert detail["quality_config"]["checks"] == [{"name": "range.quantity"}]
        assert reader.post(f"{url}/v1/batches/{batch_id}/release").status_code == 403
        queued_before = _warehouse_queue(reader, url)

        released = admin.post(f"{url}/v1/batches/{batch_id}/release", json={"reason": "known vendor glitch"})
        assert released.status_code == 200, released.text
        assert released.json()["status"] == "validated" and released.json()["action"] == "release"
        again = admin.post(f"{url}/v1/batches/{batch_id}/release")
        assert again.status_code == 409 and again.json()["error"]["code"] == "not_quarantined"
        assert admin.post(f"{url}/v1/batches/{uuid.uuid4()}/release").status_code == 404
        assert _warehouse_queue(reader, url) == queued_before + 1

        batch = reader.get(f"{url}/v1/batches/{batch_id}").raise_for_status().json()
    assert batch["status"] == "validated" and batch["error"] is None
    [event] = asyncio.run(
        _fetch(
            settings.database_url,
            "SELECT payload, published_at FROM ops.batch_events WHERE batch_id = $1 AND type = 'batch.validated'",
            batch_id,
        )
    )
    payload = json.loads(event["payload"])
    assert payload["outcome"] == "warn" and payload["warnings"] == ["range.quantity"]
    assert event["published_at"] is not None
    [audit] = asyncio.run(
        _fetch(
            settings.database_url, "SELECT actor, action, details FROM ops.audit_log WHERE target = $1", str(batch_id)
        )
    )
    assert audit["action"] == "batch.release" and audit["actor"] == "api-key:qa-admin"
    assert json.loads(audit["details"])["reason"] == "known vendor glitch"


def _warehouse_queue(client: httpx.Client, url: str) -> int:
    status = client.get(f"{url}/v1/pipeline/status").raise_for_status().json()
    lengths = {q["service"]: q["length"] for q in status["queues"]}
    assert set(lengths) == {"transform", "quality", "warehouse"}
    return int(lengths["warehouse"])


def test_rerun_sends_a_quarantined_batch_back_to_quality(
    api: tuple[str, ApiSettings], settings: PlatformSettings
) -> None:
    url, _ = api
    batch_id = asyncio.run(_quarantined_batch(settings.database_url, "test+rerun"))
    with _client(settings, "admin") as admin:
        rerun = admin.post(f"{url}/v1/batches/{batch_id}/rerun-quality", json={"reason": "config fixed"})
        assert rerun.status_code == 202, rerun.text
        assert rerun.json()["status"] == "staged"
        again = admin.post(f"{url}/v1/batches/{batch_id}/rerun-quality")
        assert again.status_code == 409 and again.json()["error"]["code"] == "not_rerunnable"
        assert admin.get(f"{url}/v1/batches/{batch_id}").json()["status"] == "staged"
    events = asyncio.run(
        _fetch(
            settings.database_url,
            "SELECT event_id, type FROM ops.batch_events WHERE batch_id = $1 ORDER BY created_at",
            batch_id,
        )
    )
    assert [e["type"] for e in events] == ["batch.staged", "batch.staged"]
    assert str(events[1]["event_id"]) == rerun.json()["event_id"] != str(events[0]["event_id"])
    [audit] = asyncio.run(
        _fetch(settings.database_url, "SELECT action FROM ops.audit_log WHERE target = $1", str(batch_id))
    )
    assert audit["action"] == "batch.rerun_quality"


def test_pipeline_status_has_freshness_queues_and_batch_counts(
    api: tuple[str, ApiSettings], settings: PlatformSettings
) -> None:
    url, _ = api
    asyncio.run(
        _fetch(
            settings.database_url,
            """INSERT INTO ops.freshness (dataset, evaluated_at, status, severity, config_version, breaches)
               VALUES ('products', now(), 'no_data', 'warn', 'v', '{}') ON CONFLICT (dataset) DO NOTHING""",
        )
    )
    # A batch of its own, so the counts have one whatever ran before.
    asyncio.run(
        _fetch(
            settings.database_url,
            f"""INSERT INTO ops.batches (batch_id, dataset, status, file_name, file_format, object_bucket,
                    object_key, sha256, size_bytes)
                VALUES ('{uuid.uuid4()}', 'products', 'failed', 'status.csv', 'csv', 'raw-data', 'k',
                        '{uuid.uuid4().hex * 2}', 1)""",
        )
    )
    with _client(settings, "batches:read") as reader:
        body = reader.get(f"{url}/v1/pipeline/status").raise_for_status().json()
    assert "products" in {f["dataset"] for f in body["freshness"]}
    assert all(isinstance(q["length"], int) for q in body["queues"])
    assert body["quality_config_version"] and sum(body["batches_by_status"].values()) >= 1
