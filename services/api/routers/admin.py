"""Admin actions on batches. Each owns its transaction (services/api/admin.py): the event it
records leaves only after the commit, so these take the engine rather than a read connection."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header

from services.api import admin
from services.api.deps import Bus, DbEngine
from services.api.schemas import AdminActionIn, AdminActionOut, ReplayOut
from shared.http import Admin
from shared.openapi import errors

router = APIRouter(prefix="/v1/batches", responses=errors(e404="no batch has that id (`batch_not_found`)"))

Reason = Annotated[AdminActionIn | None, Body()]


@router.post(
    "/{batch_id}/release",
    response_model=AdminActionOut,
    responses=errors(e409="the batch is not quarantined (`not_quarantined`)"),
)
async def release_batch(batch_id: uuid.UUID, principal: Admin, engine: DbEngine, bus: Bus, body: Reason = None) -> Any:
    """Load a quarantined batch anyway: it goes on as validated, its failed checks kept as warnings (audited)."""
    return await admin.release(engine, bus, batch_id=batch_id, principal=principal, reason=body.reason if body else "")


@router.post(
    "/{batch_id}/rerun-quality",
    response_model=AdminActionOut,
    status_code=202,
    responses=errors(e409="the batch is neither quarantined nor failed in quality (`not_rerunnable`)"),
)
async def rerun_quality(batch_id: uuid.UUID, principal: Admin, engine: DbEngine, bus: Bus, body: Reason = None) -> Any:
    """Check a quarantined batch again with the quality config in effect now (audited)."""
    return await admin.rerun_quality(
        engine, bus, batch_id=batch_id, principal=principal, reason=body.reason if body else ""
    )


@router.post(
    "/{batch_id}/replay",
    response_model=ReplayOut,
    status_code=202,
    responses=errors(
        e409="the batch is on its first run still (`not_terminal`), or has nothing to start from (`not_replayable`)"
    ),
)
async def replay_batch(
    batch_id: uuid.UUID,
    principal: Admin,
    engine: DbEngine,
    bus: Bus,
    body: Reason = None,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> Any:
    """Run a loaded, quarantined or failed batch again from its raw object through every stage, as its next
    attempt (audited). A batch being replayed, or a repeated ``Idempotency-Key``, answers with that attempt
    (``replayed`` false); a batch on its first run is a 409 ``not_terminal``."""
    return await admin.replay(
        engine,
        bus,
        batch_id=batch_id,
        principal=principal,
        reason=body.reason if body else "",
        idempotency_key=idempotency_key,
    )
