"""The pipeline's status at a glance."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from services.api import pipeline
from services.api.deps import Bus, Settings
from services.api.schemas import PipelineStatusOut
from shared.http import BatchReader, DbConnection

router = APIRouter(prefix="/v1/pipeline")


@router.get("/status", response_model=PipelineStatusOut)
async def pipeline_status(_: BatchReader, conn: DbConnection, bus: Bus, settings: Settings) -> Any:
    return await pipeline.status(conn, bus, settings)
