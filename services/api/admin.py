"""Admin actions on batches: release a quarantined one (load it anyway), re-run its quality checks, replay a
terminal one from its raw object.

Each one moves the batch, records the event in the outbox and an audit entry in one transaction, under
the batch row's lock, then publishes the event after the commit (shared/batches.py). The reconciler
re-publishes the event if the publish is lost, and the next stage runs only from the status it expects,
so a released batch is loaded once.

The backfill (services/api/backfill.py) is no batch's: it rewrites analytics rows and its audit entry in one
transaction, and only announces itself on the live stream after the commit.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.api import repository
from services.api.backfill import rebuild
from services.api.batches import UnknownBatch
from shared.auth import Principal
from shared.batches import BatchNotFound, BatchRow, lock_batch, publish_committed, record_event
from shared.bus import EventBus
from shared.datasets import Dataset
from shared.events import (
    TERMINAL_STATUSES,
    AnalyticsBackfilled,
    BatchReceived,
    BatchStaged,
    BatchValidated,
    Event,
    parse_event,
)
from shared.http import ApiError
from shared.logs import get_logger

log = get_logger(__name__)


async def _locked(conn: AsyncConnection, batch_id: uuid.UUID) -> tuple[BatchRow, str | None]:
    try:
        batch = await lock_batch(conn, batch_id)
    except BatchNotFound as exc:
        raise UnknownBatch(batch_id) from exc
    return batch, await repository.failed_stage(conn, batch_id)


async def _audit(
    conn: AsyncConnection, principal: Principal, action: str, batch_id: uuid.UUID, details: dict[str, Any]
) -> int:
    return await repository.insert_audit(
        conn,
        actor=f"api-key:{principal.name}",
        action=action,
        target=str(batch_id),
        details={**details, "key_id": str(principal.key_id)},
    )


async def release(
    engine: AsyncEngine, bus: EventBus, *, batch_id: uuid.UUID, principal: Principal, reason: str
) -> dict[str, Any]:
    """A quarantined batch goes on to the warehouse as validated, its failed checks carried as warnings."""
    async with engine.begin() as conn:
        batch, _ = await _locked(conn, batch_id)
        if batch.status != "quarantined":
            raise ApiError(409, "not_quarantined", f"batch {batch_id} is {batch.status}, not quarantined")
        failed = await repository.failed_checks(conn, batch_id)
        event: Event = BatchValidated(
            batch_id=batch_id, dataset=Dataset(batch.dataset), outcome="warn", warnings=failed
        )
        await record_event(conn, event, stage="quality", fields={"error": None})
        audit_id = await _audit(conn, principal, "batch.release", batch_id, {"reason": reason, "failed_checks": failed})
    await publish_committed(engine, bus, [event])
    log.info("batch.released", batch_id=str(batch_id), actor=principal.name, failed_checks=failed)
    return {
        "batch_id": batch_id,
        "action": "release",
        "status": "validated",
        "event_id": event.event_id,
        "audit_id": audit_id,
    }


async def rerun_quality(
    engine: AsyncEngine, bus: EventBus, *, batch_id: uuid.UUID, principal: Principal, reason: str
) -> dict[str, Any]:
    """A quarantined batch (or one whose quality stage failed) is checked again, with the config in effect now:
    its ``batch.staged`` event is recorded again and the quality worker picks it up."""
    async with engine.begin() as conn:
        batch, failed_stage = await _locked(conn, batch_id)
        if not (batch.status == "quarantined" or (batch.status == "failed" and failed_stage == "quality")):
            raise ApiError(
                409,
                "not_rerunnable",
                f"batch {batch_id} is {batch.status}; only a quarantined batch or one failed in quality re-runs",
            )
        payload = await repository.last_staged_event(conn, batch_id)
        if payload is None:
            raise ApiError(409, "not_rerunnable", f"batch {batch_id} was never staged")
        staged = parse_event(payload)
        assert isinstance(staged, BatchStaged)
        event: Event = staged.model_copy(update={"event_id": uuid.uuid4(), "occurred_at": datetime.now(UTC)})
        await record_event(conn, event, stage="quality", fields={"error": None, "failed_stage": None})
        audit_id = await _audit(
            conn, principal, "batch.rerun_quality", batch_id, {"reason": reason, "previous_status": batch.status}
        )
    await publish_committed(engine, bus, [event])
    log.info("batch.quality_rerun", batch_id=str(batch_id), actor=principal.name)
    return {
        "batch_id": batch_id,
        "action": "rerun-quality",
        "status": "staged",
        "event_id": event.event_id,
        "audit_id": audit_id,
    }


def _replay_answer(
    batch_id: uuid.UUID, status: str, audit_id: int, details: dict[str, Any], *, replayed: bool
) -> dict[str, Any]:
    return {
        "batch_id": batch_id,
        "action": "replay",
        "attempt": details["attempt"],
        "status": status,
        "event_id": details["event_id"],
        "audit_id": audit_id,
        "replayed": replayed,
    }


async def replay(
    engine: AsyncEngine,
    bus: EventBus,
    *,
    batch_id: uuid.UUID,
    principal: Principal,
    reason: str,
    idempotency_key: str | None,
) -> dict[str, Any]:
    """Run a terminal batch again from its raw object through every stage, as its next attempt.

    Its first ``batch.received`` is recorded again under a new event id, so the transform, quality and
    warehouse stages run as they did (each replaces what its earlier attempt wrote; the warehouse rewrites
    only facts whose record differs). A batch being replayed answers with that attempt instead of starting
    another, as does a request repeating an earlier one's ``Idempotency-Key``; a batch still on its first
    run is a 409.
    """
    async with engine.begin() as conn:
        batch, _ = await _locked(conn, batch_id)
        if idempotency_key is not None:
            earlier = await repository.last_replay_audit(conn, batch_id, idempotency_key=idempotency_key)
            if earlier is not None:
                return _replay_answer(batch_id, batch.status, *earlier, replayed=False)
        if batch.status not in TERMINAL_STATUSES:
            running = await repository.last_replay_audit(conn, batch_id)
            if running is not None and running[1]["attempt"] == await repository.batch_attempt(conn, batch_id):
                return _replay_answer(batch_id, batch.status, *running, replayed=False)
            raise ApiError(
                409,
                "not_terminal",
                f"batch {batch_id} is {batch.status}; only a loaded, quarantined or failed batch is replayed",
                {"status": batch.status},
            )
        payload = await repository.first_received_event(conn, batch_id)
        if payload is None:
            raise ApiError(409, "not_replayable", f"batch {batch_id} has no batch.received event to start from")
        received = parse_event(payload)
        assert isinstance(received, BatchReceived)
        event: Event = received.model_copy(update={"event_id": uuid.uuid4(), "occurred_at": datetime.now(UTC)})
        attempt = await repository.start_attempt(conn, batch_id, event)
        details = {
            "reason": reason,
            "attempt": attempt,
            "previous_status": batch.status,
            "event_id": str(event.event_id),
            "idempotency_key": idempotency_key,
        }
        audit_id = await _audit(conn, principal, "batch.replay", batch_id, details)
    await publish_committed(engine, bus, [event])
    log.info("batch.replayed", batch_id=str(batch_id), actor=principal.name, attempt=attempt)
    return _replay_answer(batch_id, "received", audit_id, details, replayed=True)


async def backfill(
    engine: AsyncEngine, bus: EventBus, *, start: date, end: date, principal: Principal, reason: str
) -> dict[str, Any]:
    """Rebuild the range's analytics from fact_sales (services/api/backfill.py), audit what changed in the same
    transaction, then broadcast ``analytics.backfilled`` on the live stream."""
    async with engine.begin() as conn:
        facts, changes = await rebuild(conn, start, end)
        tables = {c.table: {"changed": c.changed, "inserted": c.inserted, "deleted": c.deleted} for c in changes}
        changed = any(any(counts.values()) for counts in tables.values())
        audit_id = await repository.insert_audit(
            conn,
            actor=f"api-key:{principal.name}",
            action="analytics.backfill",
            target=f"{start.isoformat()}/{end.isoformat()}",
            details={
                "reason": reason,
                "facts": facts,
                "changed": changed,
                "tables": tables,
                "key_id": str(principal.key_id),
            },
        )
    event = AnalyticsBackfilled(date_from=start, date_to=end, changed=changed, tables=tables, audit_id=audit_id)
    try:
        await asyncio.to_thread(bus.broadcast, event)
    except Exception as exc:
        # The backfill is committed and audited; a broker that is down costs only the live notice.
        log.warning("event.broadcast_failed", event_type=event.type, error=str(exc))
    log.info("analytics.backfilled", start=str(start), end=str(end), facts=facts, changed=changed, actor=principal.name)
    return {
        "from": start,
        "to": end,
        "facts": facts,
        "tables": [{"table": name, **counts} for name, counts in tables.items()],
        "changed": changed,
        "audit_id": audit_id,
        "event_id": event.event_id,
    }
