"""``POST /v1/batches/{id}/replay`` at the API: a terminal batch goes back to ``received`` as its next attempt
with its first ``batch.received`` recorded again (a new event id, the same raw object) and queued for the
transform; a batch being replayed answers with that attempt, as does a repeated Idempotency-Key; a batch on its
first run is a 409 ``not_terminal``; each replay is audited. The api runs as sdp_api, on queues of its own (no
worker takes the events); the whole platform's replay is tests/e2e/test_replay.py."""

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
from shared.events import BatchReceived, ObjectRef
from shared.settings import PlatformSettings
from tests.conftest import as_role, settings_from
from tests.http_server import serve


async def _batch(database_url: str, status: str) -> tuple[uuid.UUID, BatchReceived]:
    """A sales batch in ``status`` with the batch.received event ingest recorded and a stage that died once."""
    batch_id = uuid.uuid4()
    received = BatchReceived(
        batch_id=batch_id,
        dataset="sales",
        object=ObjectRef(bucket="raw-data", key=f"sales/dt=2024-01-01/{batch_id}/r.csv"),
        sha256=uuid.uuid4().hex * 2,
        size_bytes=10,
        file_format="csv",
    )
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            """INSERT INTO ops.batches (batch_id, dataset, status, file_name, file_format, object_bucket, object_key,
                   sha256, size_bytes, rows_in, rows_valid, rows_rejected, rows_duplicate, failed_stage, error,
                   finished_at)
               VALUES ($1, 'sales', $2, 'r.csv', 'csv', 'raw-data', $3, $4, 10, 2, 2, 0, 0, $5, $6,
                       CASE WHEN $2 IN ('loaded', 'failed', 'quarantined') THEN now() END)""",
            batch_id,
            status,
            received.object.key,
            received.sha256,
            "warehouse" if status == "failed" else None,
            "boom" if status == "failed" else None,
        )
        await conn.execute(
            """INSERT INTO ops.batch_events (event_id, batch_id, type, payload, published_at)
               VALUES ($1, $2, 'batch.received', $3::jsonb, now())""",
            received.event_id,
            batch_id,
            received.model_dump_json(),
        )
        await conn.execute(
            """INSERT INTO ops.batch_stages (batch_id, stage, status, started_at, finished_at, interruptions)
               VALUES ($1, 'ingest', 'succeeded', now(), now(), 0), ($1, 'transform', 'succeeded', now(), now(), 2)""",
            batch_id,
        )
    finally:
        await conn.close()
    return batch_id, received


async def _fetch(database_url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def api(test_env: dict[str, str], run_id: str) -> Iterator[str]:
    env = {
        **test_env,
        "SDP_DATABASE_URL": as_role(test_env["SDP_DATABASE_URL"], "sdp_api"),
        "SDP_QUEUE_PREFIX": f"test-{run_id}-replay-",
    }
    with serve(create_app(settings_from(env, ApiSettings))) as url:
        yield url


@pytest.fixture(scope="module")
def admin(settings: PlatformSettings) -> Iterator[httpx.Client]:
    key = asyncio.run(create_key(settings, name="replayer", scopes=["admin"]))
    with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
        yield client


def _transform_queue(client: httpx.Client, url: str) -> int:
    status = client.get(f"{url}/v1/pipeline/status").raise_for_status().json()
    return int({q["service"]: q["length"] for q in status["queues"]}["transform"])


@pytest.mark.parametrize("status", ["loaded", "failed", "quarantined"])
def test_a_terminal_batch_is_replayed_once_as_its_next_attempt(
    api: str, admin: httpx.Client, settings: PlatformSettings, status: str
) -> None:
    batch_id, received = asyncio.run(_batch(settings.database_url, status))
    queued = _transform_queue(admin, api)
    first = admin.post(f"{api}/v1/batches/{batch_id}/replay", json={"reason": "rules fixed"})
    assert first.status_code == 202, first.text
    body = first.json()
    assert (body["action"], body["attempt"], body["status"], body["replayed"]) == ("replay", 2, "received", True)
    # Being replayed: the same attempt again, no second one.
    again = admin.post(f"{api}/v1/batches/{batch_id}/replay")
    assert again.status_code == 202, again.text
    assert {**again.json(), "replayed": True} == body and again.json()["replayed"] is False
    assert _transform_queue(admin, api) == queued + 1
    assert admin.get(f"{api}/v1/batches/{batch_id}").raise_for_status().json()["attempt"] == 2

    [row] = asyncio.run(
        _fetch(
            settings.database_url,
            "SELECT status, attempt, error, failed_stage, finished_at FROM ops.batches WHERE batch_id = $1",
            batch_id,
        )
    )
    assert tuple(row) == ("received", 2, None, None, None)
    events = asyncio.run(
        _fetch(
            settings.database_url,
            """SELECT event_id, type, payload, published_at FROM ops.batch_events
               WHERE batch_id = $1 ORDER BY created_at""",
            batch_id,
        )
    )
    assert [e["type"] for e in events] == ["batch.received", "batch.received"]
    replayed = json.loads(events[1]["payload"])
    assert str(events[1]["event_id"]) == body["event_id"] == replayed["event_id"] != str(received.event_id)
    assert events[1]["published_at"] is not None
    original = received.model_dump(mode="json")
    assert {k: v for k, v in replayed.items() if k not in ("event_id", "occurred_at")} == {
        k: v for k, v in original.items() if k not in ("event_id", "occurred_at")
    }
    stages = asyncio.run(
        _fetch(settings.database_url, "SELECT stage, interruptions FROM ops.batch_stages WHERE batch_id = $1", batch_id)
    )
    assert {s["stage"]: s["interruptions"] for s in stages} == {"ingest": 0, "transform": 0}
    [audit] = asyncio.run(
        _fetch(
            settings.database_url,
            "SELECT audit_id, actor, action, details FROM ops.audit_log WHERE target = $1",
            str(batch_id),
        )
    )
    assert (audit["audit_id"], audit["actor"], audit["action"]) == (
        body["audit_id"],
        "api-key:replayer",
        "batch.replay",
    )
    details = json.loads(audit["details"])
    assert (details["reason"], details["previous_status"], details["attempt"]) == ("rules fixed", status, 2)


def test_an_idempotency_key_answers_with_its_replay_once_it_finished(
    api: str, admin: httpx.Client, settings: PlatformSettings
) -> None:
    batch_id, _ = asyncio.run(_batch(settings.database_url, "loaded"))
    headers = {"Idempotency-Key": f"replay-{batch_id}"}
    first = admin.post(f"{api}/v1/batches/{batch_id}/replay", headers=headers).raise_for_status().json()
    # The attempt ends (as the warehouse would record it); the same key still answers with it.
    asyncio.run(_fetch(settings.database_url, "UPDATE ops.batches SET status = 'loaded' WHERE batch_id = $1", batch_id))
    repeated = admin.post(f"{api}/v1/batches/{batch_id}/replay", headers=headers)
    assert repeated.status_code == 202, repeated.text
    assert repeated.json()["attempt"] == first["attempt"] == 2 and repeated.json()["replayed"] is False
    assert repeated.json()["status"] == "loaded"
    # Without the key, the finished batch is replayed again: attempt 3.
    third = admin.post(f"{api}/v1/batches/{batch_id}/replay").raise_for_status().json()
    assert (third["attempt"], third["replayed"]) == (3, True)


@pytest.mark.parametrize("status", ["received", "staged", "validated"])
def test_a_batch_on_its_first_run_is_a_409(
    api: str, admin: httpx.Client, settings: PlatformSettings, status: str
) -> None:
    batch_id, _ = asyncio.run(_batch(settings.database_url, status))
    refused = admin.post(f"{api}/v1/batches/{batch_id}/replay")
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "not_terminal"
    assert refused.json()["error"]["details"] == {"status": status}
    assert admin.post(f"{api}/v1/batches/{uuid.uuid4()}/replay").status_code == 404


def test_replay_is_for_admins(api: str, settings: PlatformSettings) -> None:
    batch_id, _ = asyncio.run(_batch(settings.database_url, "loaded"))
    key = asyncio.run(create_key(settings, name="not-admin", scopes=["batches:read", "ingest:write"]))
    refused = httpx.post(f"{api}/v1/batches/{batch_id}/replay", headers={"Authorization": f"Bearer {key}"})
    assert refused.status_code == 403
