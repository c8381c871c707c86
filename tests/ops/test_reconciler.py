"""The reconciler's rule for a batch whose stage was left ``running`` by a worker that died."""

from __future__ import annotations

import asyncio
import hashlib
import uuid

import asyncpg

from ops.reconciler import ReconcilerSettings, stuck_batches
from shared.db import create_engine
from shared.events import BatchReceived, ObjectRef
from tests.conftest import settings_from

VISIBILITY_TIMEOUT = 60


async def scenario(settings: ReconcilerSettings) -> None:
    batch_id = uuid.uuid4()
    received = BatchReceived(
        batch_id=batch_id,
        dataset="sales",
        object=ObjectRef(bucket="raw-data", key=f"sales/{batch_id}/sales.csv"),
        sha256=hashlib.sha256(batch_id.bytes).hexdigest(),
        size_bytes=1,
        file_format="csv",
    )
    conn = await asyncpg.connect(settings.database_url)
    engine = create_engine(settings)

    async def stuck() -> bool:
        return batch_id in {event.batch_id for event in await stuck_batches(engine, settings)}

    try:
        await conn.execute(
            """INSERT INTO ops.batches (batch_id, dataset, status, file_name, file_format, object_bucket,
                                        object_key, sha256, size_bytes, updated_at)
               VALUES ($1, 'sales', 'received', 'sales.csv', 'csv', 'raw-data', $2, $3, 1,
                       now() - interval '1 hour')""",
            batch_id,
            received.object.key,
            received.sha256,
        )
        await conn.execute(
            """INSERT INTO ops.batch_events (event_id, batch_id, type, payload, published_at)
               VALUES ($1, $2, $3, $4, now())""",
            received.event_id,
            batch_id,
            received.type,
            received.model_dump_json(),
        )
        # The transform started 30 s ago: the broker has not given up on its worker yet, nor does the reconciler.
        await conn.execute(
            """INSERT INTO ops.batch_stages (batch_id, stage, status, started_at)
               VALUES ($1, 'transform', 'running', now() - interval '30 seconds')""",
            batch_id,
        )
        assert not await stuck()
        # Past the visibility timeout the worker counts as dead: the batch's latest event is published again.
        await conn.execute(
            "UPDATE ops.batch_stages SET started_at = now() - make_interval(secs => $2) WHERE batch_id = $1",
            batch_id,
            VISIBILITY_TIMEOUT + 1,
        )
        events = [e for e in await stuck_batches(engine, settings) if e.batch_id == batch_id]
        assert events == [received]
    finally:
        await conn.execute("DELETE FROM ops.batches WHERE batch_id = $1", batch_id)
        await conn.close()
        await engine.dispose()


def test_a_stage_running_past_the_visibility_timeout_is_stuck(test_env: dict[str, str]) -> None:
    settings = settings_from(
        test_env,
        ReconcilerSettings,
        broker_visibility_timeout=VISIBILITY_TIMEOUT,
        reconcile_stuck_after_seconds=10,
    )
    asyncio.run(scenario(settings))
