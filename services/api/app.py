"""The API service: batches and KPIs from PostgreSQL. Start: ``uvicorn services.api.app:create_app --factory``."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from sqlalchemy import text

from services.api import repository
from services.api.schemas import BatchListOut, BatchOut, DailyKpisOut
from services.api.settings import ApiSettings
from shared.db import create_engine
from shared.http import ApiError, BatchReader, KpiReader, engine_of, install_error_handlers, install_metrics
from shared.logs import configure_logging

MAX_RANGE_DAYS = 3660


def _counts(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row.pop(k) for k in ("rows_in", "rows_valid", "rows_rejected", "rows_duplicate")}


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    settings = settings or ApiSettings()
    configure_logging("api", level=settings.log_level, json=settings.log_json)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.engine = create_engine(settings)
        yield
        await app.state.engine.dispose()

    app = FastAPI(title="Sales data platform — API", version="1", lifespan=lifespan)
    install_error_handlers(app)
    install_metrics(app, "api")

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> dict[str, str]:
        try:
            async with engine_of(request).connect() as conn:
                await conn.execute(text("SELECT 1 FROM ops.batches LIMIT 1"))
        except Exception as exc:
            raise ApiError(503, "not_ready", "the database is not reachable or not migrated") from exc
        return {"status": "ready"}

    @app.get("/v1/batches", response_model=BatchListOut)
    async def list_batches(
        request: Request,
        _: BatchReader,
        dataset: str | None = None,
        status: str | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> Any:
        async with engine_of(request).connect() as conn:
            rows = await repository.list_batches(conn, dataset=dataset, status=status, limit=limit)
        return {"batches": [{**row, "counts": _counts(row)} for row in rows]}

    @app.get("/v1/batches/{batch_id}", response_model=BatchOut)
    async def get_batch(batch_id: uuid.UUID, request: Request, _: BatchReader) -> Any:
        async with engine_of(request).connect() as conn:
            row = await repository.get_batch(conn, batch_id)
            if row is None:
                raise ApiError(404, "batch_not_found", f"no batch {batch_id}")
            stages = await repository.batch_stages(conn, batch_id)
            quality = await repository.quality_results(conn, batch_id)
        return {**row, "counts": _counts(row), "stages": stages, "quality": quality}

    @app.get("/v1/kpis/daily", response_model=DailyKpisOut)
    async def daily_kpis(
        request: Request,
        _: KpiReader,
        start: Annotated[date, Query(alias="from")],
        end: Annotated[date, Query(alias="to")],
    ) -> Any:
        if end < start:
            raise ApiError(400, "invalid_range", "'to' is before 'from'")
        if (end - start).days > MAX_RANGE_DAYS:
            raise ApiError(400, "invalid_range", f"a range spans at most {MAX_RANGE_DAYS} days")
        async with engine_of(request).connect() as conn:
            days = await repository.daily_kpis(conn, start=start, end=end)
        return {"from": start, "to": end, "days": days}

    return app
