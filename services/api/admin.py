"""Admin actions on quarantined batches: release (load it anyway) and re-run the quality checks.

Each one moves the batch, records the event in the outbox and an audit entry in one transaction, under
the batch row's lock, then publishes the event after the commit (shared/batches.py). The reconciler
re-publishes the event if the publish is lost, and the next stage runs only from the status it expects,
so a released batch is loaded once.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

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
    failed_stage = (
        await conn.execute(text("SELECT failed_stage FROM ops.batches WHERE batch_id = :b"), {"b": batch_id})
    ).scalar_one()
    return batch, failed_stage


async def _audit(
    conn: AsyncConnection, principal: Principal, action: str, batch_id: uuid.UUID, details: dict[str, Any]
) -> int:
    audit_id = (
        await conn.execute(
            text(
                """INSERT INTO ops.audit_log (actor, action, target, details)
                   VALUES (:actor, :action, :target, CAST(:details AS jsonb)) RETURNING audit_id"""
            ),
            {
                "actor": f"api-key:{principal.name}",
                "action": action,
                "target": str(batch_id),
                "details": json.dumps({**details, "key_id": str(principal.key_id)}),
            },
        )
    ).scalar_one()
    return int(audit_id)


async def _failed_checks(conn: AsyncConnection, batch_id: uuid.UUID) -> list[str]:
    rows = await conn.execute(
        text("SELECT check_name FROM ops.quality_results WHERE batch_id = :b AND status = 'fail' ORDER BY result_id"),
        {"b": batch_id},
    )
    return [r[0] for r in rows]


async def release(
    engine: AsyncEngine, bus: EventBus, *, batch_id: uuid.UUID, principal: Principal, reason: str
) -> dict[str, Any]:
    """A quarantined batch goes on to the warehouse as validated, its failed checks carried as warnings."""
    async with engine.begin() as conn:
        batch, _ = await _locked(conn, batch_id)
        if batch.status != "quarantined":
            raise ApiError(409, "not_quarantined", f"batch {batch_id} is {batch.status}, not quarantined")
        failed = await _failed_checks(conn, batch_id)
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
        payload = (
            await conn.execute(
                text(
                    """SELECT payload FROM ops.batch_events WHERE batch_id = :b AND type = 'batch.staged'
                       ORDER BY created_at DESC LIMIT 1"""
                ),
                {"b": batch_id},
            )
        ).scalar_one_or_none()
        if payload is None:
            raise ApiError(409, "not_rerunnable", f"batch {batch_id} was never staged")
        staged = parse_event(payload if isinstance(payload, dict) else json.loads(payload))
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
