"""The reconciler: no batch stays stuck after a crash or a lost message.

Every few seconds it (1) publishes outbox events that were committed but never published (the
publisher died between commit and publish) and (2) re-publishes the latest event of a batch that has
made no progress for a while although nothing is working on it (Redis lost the queued message).
Consumers are idempotent on (batch_id, stage), so a re-published event never runs a stage twice.
Every ``freshness_interval_seconds`` it also evaluates the datasets' freshness SLAs (ops/freshness.py),
so a dataset that stops arriving is noticed without a batch arriving.

Run: ``python -m ops.reconciler``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ops.freshness import evaluate_and_store
from shared.batches import publish_committed, unpublished_events
from shared.bus import EventBus
from shared.db import create_engine
from shared.events import Event, parse_event
from shared.logs import configure_logging, get_logger
from shared.quality_config import load_quality_config
from shared.settings import PlatformSettings

log = get_logger(__name__)


class ReconcilerSettings(PlatformSettings):
    reconcile_interval_seconds: float = 5.0
    # An outbox event older than this and still unpublished lost its publisher.
    reconcile_unpublished_after_seconds: float = 10.0
    # A batch with no progress for this long, and no stage running, lost its message.
    reconcile_stuck_after_seconds: float = 120.0
    # Seconds between evaluations of the freshness SLAs of the quality config.
    freshness_interval_seconds: float = 60.0


@dataclass(frozen=True)
class Report:
    published: int
    republished: int


# The newest event of each stuck batch. A stage counts as running only for as long as the broker would
# wait before delivering its task again; past that, the worker that ran it is gone.
STUCK_BATCHES = """
SELECT e.payload
FROM ops.batches b
JOIN LATERAL (
    SELECT payload FROM ops.batch_events WHERE batch_id = b.batch_id ORDER BY created_at DESC LIMIT 1
) e ON true
WHERE b.status IN ('received', 'staged', 'validated')
  AND b.updated_at < clock_timestamp() - make_interval(secs => :stuck_after)
  AND NOT EXISTS (
      SELECT 1 FROM ops.batch_stages s
      WHERE s.batch_id = b.batch_id AND s.status = 'running'
        AND s.started_at > clock_timestamp() - make_interval(secs => :visibility_timeout))
ORDER BY b.updated_at
LIMIT 100
"""

TOUCH = "UPDATE ops.batches SET updated_at = clock_timestamp() WHERE batch_id = :batch_id"


async def stuck_batches(engine: AsyncEngine, settings: ReconcilerSettings) -> list[Event]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(STUCK_BATCHES),
            {
                "stuck_after": settings.reconcile_stuck_after_seconds,
                "visibility_timeout": settings.broker_visibility_timeout,
            },
        )
        return [parse_event(r[0] if isinstance(r[0], dict) else json.loads(r[0])) for r in rows]


async def reconcile_once(engine: AsyncEngine, bus: EventBus, settings: ReconcilerSettings) -> Report:
    pending = await unpublished_events(engine, older_than_seconds=settings.reconcile_unpublished_after_seconds)
    for event in pending:
        log.warning("reconcile.publish_unpublished", batch_id=str(event.batch_id), event_type=event.type)
    await publish_committed(engine, bus, pending)

    stuck = await stuck_batches(engine, settings)
    for event in stuck:
        log.warning("reconcile.republish_stuck", batch_id=str(event.batch_id), event_type=event.type)
        bus.publish(event)
        # Waits another full period before it re-publishes the same batch again.
        async with engine.begin() as conn:
            await conn.execute(text(TOUCH), {"batch_id": event.batch_id})
    return Report(published=len(pending), republished=len(stuck))


async def run(settings: ReconcilerSettings, stop: asyncio.Event) -> None:
    engine = create_engine(settings)
    bus = EventBus(settings)
    freshness_due = 0.0
    try:
        while not stop.is_set():
            try:
                await reconcile_once(engine, bus, settings)
            except Exception:
                log.exception("reconcile.error")
            if time.monotonic() >= freshness_due:
                freshness_due = time.monotonic() + settings.freshness_interval_seconds
                try:
                    await evaluate_and_store(engine, load_quality_config(settings.quality_config))
                except Exception:
                    log.exception("freshness.error")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=settings.reconcile_interval_seconds)
    finally:
        bus.close()
        await engine.dispose()


def main() -> int:
    settings = ReconcilerSettings()
    configure_logging("reconciler", level=settings.log_level, json=settings.log_json)

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        log.info("reconciler.started", interval=settings.reconcile_interval_seconds)
        await run(settings, stop)

    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
