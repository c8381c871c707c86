"""Admin actions on quarantined batches: release (load it anyway) and re-run the quality checks.

Each one moves the batch, records the event in the outbox and an audit entry in one transaction, under
the batch row's lock, then publishes the event after the commit (shared/batches.py). The reconciler
re-publishes the event if the publish is lost, and the next stage runs only from the status it expects,
so a released batch is loaded once.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.api import repository
from services.api.batches import UnknownBatch
from shared.auth import Principal
from shared.batches import BatchNotFound, BatchRow, lock_batch, publish_committed, record_event
from shared.bus import EventBus
from shared.datasets import Dataset
from shared.events import BatchStaged, BatchValidated, Event, parse_event
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
