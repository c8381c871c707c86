"""Backfill (admin): a date range's analytics rebuilt from processed.fact_sales, with what it changed."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from services.api import admin
from services.api.deps import Bus, DbEngine
from services.api.routers.kpis import check_range
from services.api.schemas import BackfillIn, BackfillOut
from shared.http import Admin
from shared.openapi import errors

router = APIRouter(
    prefix="/v1/backfill",
    responses=errors(e400="`to` before `from`, or a range over 3660 days (`invalid_range`)"),
)


@router.post("", response_model=BackfillOut, response_model_by_alias=True)
async def backfill(body: BackfillIn, principal: Admin, engine: DbEngine, bus: Bus) -> Any:
    """Recompute every analytics table's rows of ``from``..``to`` (UTC dates, inclusive) from the facts and
    write those that differ; reports rows changed, inserted and deleted per table (audited). A backfill of
    analytics that agree with the facts changes nothing. ``to`` before ``from`` or a range over 3660 days is
    a 400 ``invalid_range``, a malformed date a 422."""
    check_range(body.from_, body.to)
    return await admin.backfill(engine, bus, start=body.from_, end=body.to, principal=principal, reason=body.reason)
