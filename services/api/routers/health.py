"""Liveness and readiness probes, left out of the OpenAPI document."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from services.api.deps import DbEngine
from shared.http import ServiceUnavailable

router = APIRouter(include_in_schema=False)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(engine: DbEngine) -> dict[str, str]:
    # Connects here rather than through DbConnection: a failed connect is the answer, not an error.
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1 FROM ops.batches LIMIT 1"))
    except Exception as exc:
        raise ServiceUnavailable("not_ready", "the database is not reachable or not migrated") from exc
    return {"status": "ready"}
