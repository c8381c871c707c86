"""The reconciler: no batch stays stuck after a crash or a lost message.

Every few seconds it (1) publishes outbox events that were committed but never published (the
publisher died between commit and publish), (2) resumes a stage whose lease lapsed (its worker died:
shared/leases.py), queueing it again (at once after its first death, after a back-off after a later one)
or, once it has died ``stage_max_attempts`` times, ending the batch ``failed``, and (3) re-publishes the
latest event of a batch that waits for a stage although neither a queue nor a worker holds its message
(Redis restarted and lost it). Consumers are idempotent on (batch_id, stage), so a re-published event
never runs a stage twice.
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
from shared import leases
from shared.batches import publish_committed, record_event, unpublished_events
from shared.bus import EventBus, task_id
from shared.db import create_engine
from shared.events import BatchFailed, Event, parse_event
from shared.logs import configure_logging, get_logger
from shared.quality_config import load_quality_config
from shared.settings import PlatformSettings

log = get_logger(__name__)


class ReconcilerSettings(PlatformSettings):
    reconcile_interval_seconds: float = 5.0
    # An outbox event older than this and still unpublished lost its publisher.
    reconcile_unpublished_after_seconds: float = 10.0
    # A batch with no progress for this long, no stage running and its message in no queue lost it.
    reconcile_stuck_after_seconds: float = 15.0
    # Seconds between evaluations of the freshness SLAs of the quality config.
    freshness_interval_seconds: float = 60.0


@dataclass(frozen=True)
class Report:
    published: int
    resumed: int
    failed: int
    republished: int


LATEST_EVENT = "SELECT payload FROM ops.batch_events WHERE batch_id = :batch_id ORDER BY created_at DESC LIMIT 1"

# Batches waiting for a stage that no worker runs, with their newest event if it was published.
WAITING_BATCHES = """
SELECT e.payload
FROM ops.batches b
JOIN LATERAL (
    SELECT payload, published_at FROM ops.batch_events WHERE batch_id = b.batch_id ORDER BY created_at DESC LIMIT 1
) e ON true
WHERE b.status IN ('received', 'staged', 'validated')
  AND b.updated_at < clock_timestamp() - make_interval(secs => :stuck_after)
  AND e.published_at IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM ops.batch_stages s WHERE s.batch_id = b.batch_id AND s.status = 'running')
  AND NOT EXISTS (
      SELECT 1 FROM ops.batch_stages s
      WHERE s.batch_id = b.batch_id AND s.status = 'interrupted' AND s.interruptions >= 2
        AND s.finished_at > clock_timestamp() - make_interval(secs => :backoff * power(2, s.interruptions - 2))
  )
ORDER BY b.updated_at
LIMIT 500
"""

TOUCH = "UPDATE ops.batches SET updated_at = clock_timestamp() WHERE batch_id = :batch_id"


def _event(payload: object) -> Event:
    return parse_event(payload if isinstance(payload, dict) else json.loads(str(payload)))


async def resume_dead_stages(engine: AsyncEngine, bus: EventBus, settings: ReconcilerSettings) -> tuple[int, int]:
    """Queue again each stage whose lease lapsed, or fail its batch once the stage died too often;
    returns (resumed, failed)."""
    again: list[Event] = []
    failed: list[Event] = []
    async with engine.begin() as conn:
        for dead in await leases.dead_stages(conn, settings.stage_lease_seconds):
            interruptions = await leases.interrupt(conn, dead.batch_id, dead.stage)
            log.warning(
                "reconcile.stage_died",
                batch_id=str(dead.batch_id),
                stage=dead.stage,
                worker=dead.worker,
                interruptions=interruptions,
            )
            if interruptions >= settings.stage_max_attempts:
                reason = leases.poison_reason(dead.stage, interruptions, dead.worker)
                poisoned = BatchFailed(batch_id=dead.batch_id, dataset=dead.dataset, stage=dead.stage, reason=reason)
                fields = {"failed_stage": dead.stage, "error": reason}
                await record_event(conn, poisoned, stage=dead.stage, fields=fields)
                failed.append(poisoned)
            elif interruptions >= 2:
                # Queued again by the stuck-batch pass once its back-off is over (WAITING_BATCHES).
                log.warning("reconcile.stage_backoff", batch_id=str(dead.batch_id), stage=dead.stage)
            else:
                latest = (await conn.execute(text(LATEST_EVENT), {"batch_id": dead.batch_id})).scalar_one()
                await conn.execute(text(TOUCH), {"batch_id": dead.batch_id})
                again.append(_event(latest))
    await publish_committed(engine, bus, failed)
    for resumed in again:
        await asyncio.to_thread(bus.publish, resumed)
    return len(again), len(failed)


async def stuck_batches(engine: AsyncEngine, bus: EventBus, settings: ReconcilerSettings) -> list[Event]:
    """The newest event of each batch that waits for a stage whose message no queue or worker holds."""
    async with engine.connect() as conn:
        params = {
            "stuck_after": settings.reconcile_stuck_after_seconds,
            "backoff": settings.stage_retry_backoff_seconds,
        }
        rows = await conn.execute(text(WAITING_BATCHES), params)
        waiting = [_event(row[0]) for row in rows]
    if not waiting:
        return []
    queued = await asyncio.to_thread(bus.waiting_task_ids, delivered_within=settings.reconcile_stuck_after_seconds)
    return [event for event in waiting if task_id(event) not in queued]


async def reconcile_once(engine: AsyncEngine, bus: EventBus, settings: ReconcilerSettings) -> Report:
    pending = await unpublished_events(engine, older_than_seconds=settings.reconcile_unpublished_after_seconds)
    for event in pending:
        log.warning("reconcile.publish_unpublished", batch_id=str(event.batch_id), event_type=event.type)
    await publish_committed(engine, bus, pending)

    resumed, failed = await resume_dead_stages(engine, bus, settings)

    stuck = await stuck_batches(engine, bus, settings)
    for event in stuck:
        log.warning("reconcile.republish_stuck", batch_id=str(event.batch_id), event_type=event.type)
        await asyncio.to_thread(bus.publish, event)
        # Waits another full period before it re-publishes the same batch again.
        async with engine.begin() as conn:
            await conn.execute(text(TOUCH), {"batch_id": event.batch_id})
    return Report(published=len(pending), resumed=resumed, failed=failed, republished=len(stuck))


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
