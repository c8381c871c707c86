"""The quality checks in effect."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from services.api.deps import Settings
from services.api.quality import configured_checks
from services.api.schemas import QualityChecksOut
from shared.http import BatchReader

router = APIRouter(prefix="/v1/quality")


@router.get("/checks", response_model=QualityChecksOut)
async def quality_checks(_: BatchReader, settings: Settings) -> Any:
    return configured_checks(settings.quality_config)
