"""The API's dependencies besides the read connection (``shared.http.DbConnection``) and the scopes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.settings import ApiSettings
from shared.bus import EventBus
from shared.http import engine_of


# The getters are ``async def``: FastAPI runs a plain ``def`` dependency in its thread pool, a thread hop per
# request for a field read (bench/kpi_api.py measured ~0.4 ms of CPU a cached KPI answer for three of them).
async def _settings(request: Request) -> ApiSettings:
    settings: ApiSettings = request.app.state.settings
    return settings


async def _bus(request: Request) -> EventBus:
    bus: EventBus = request.app.state.bus
    return bus


Settings = Annotated[ApiSettings, Depends(_settings)]
# Admin actions publish the events they record; the pipeline status reads queue lengths and workers.
Bus = Annotated[EventBus, Depends(_bus)]
# For the admin actions, which own their transaction so that their event leaves only after its commit
# (shared/batches.py), and for the readiness probe, which reports a failed connect itself.
DbEngine = Annotated[AsyncEngine, Depends(engine_of)]
