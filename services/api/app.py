"""The API service: batches and KPIs from PostgreSQL. Start: ``uvicorn services.api.app:create_app --factory``."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from typing import Annotated, Any

from fastapi import Body, FastAPI, Header, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import text

from services.api import admin, repository
from services.api.events import live_events
from services.api.schemas import (
    AdminActionIn,
    AdminActionOut,
    BatchListOut,
    BatchOut,
    CategoriesOut,
    DailyKpisOut,
    KpiSummaryOut,
    PaymentMethodsOut,
    PipelineStatusOut,
    QualityChecksOut,
    RejectsOut,
    StatesOut,
    TopProductsOut,
)
from services.api.settings import ApiSettings
from shared.bus import SERVICES, EventBus
from shared.db import create_engine
from shared.http import Admin, ApiError, BatchReader, KpiReader, engine_of, install_error_handlers, install_metrics
from shared.logs import configure_logging, get_logger
from shared.quality_config import CHECK_TYPES, LoadedConfig, load_quality_config

log = get_logger(__name__)

MAX_RANGE_DAYS = 3660


From = Annotated[date, Query(alias="from")]
To = Annotated[date, Query(alias="to")]


def _check_range(start: date, end: date) -> None:
    if end < start:
        raise ApiError(400, "invalid_range", "'to' is before 'from'")
    if (end - start).days > MAX_RANGE_DAYS:
        raise ApiError(400, "invalid_range", f"a range spans at most {MAX_RANGE_DAYS} days")


async def _breakdown(request: Request, name: str, start: date, end: date) -> list[dict[str, Any]]:
    _check_range(start, end)
    async with engine_of(request).connect() as conn:
        return await repository.breakdown(conn, name, start=start, end=end)


def _counts(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row.pop(k) for k in ("rows_in", "rows_valid", "rows_rejected", "rows_duplicate")}


# Kombu's Redis transport keeps a queue's messages of priority 0 under the queue's name and the other
# priority steps under the name plus this separator and the step.
KOMBU_PRIORITY_SEP = "\x06\x16"
KOMBU_PRIORITY_STEPS = (3, 6, 9)


def _quality_config(settings: ApiSettings) -> LoadedConfig:
    try:
        return load_quality_config(settings.quality_config)
    except (OSError, ValueError) as exc:
        raise ApiError(503, "quality_config_invalid", f"the quality config cannot be read: {exc}") from exc


def _queue_lengths(bus: EventBus, settings: ApiSettings) -> list[dict[str, Any]]:
    queues = [(service, settings.queue(service)) for service in SERVICES]
    try:
        with bus.redis.pipeline(transaction=False) as pipe:
            for _, queue in queues:
                pipe.llen(queue)
                for step in KOMBU_PRIORITY_STEPS:
                    pipe.llen(f"{queue}{KOMBU_PRIORITY_SEP}{step}")
            lengths = pipe.execute()
    except Exception as exc:
        log.warning("pipeline.queues_unreachable", error=str(exc))
        return [{"service": service, "queue": queue, "length": None} for service, queue in queues]
    per_queue = 1 + len(KOMBU_PRIORITY_STEPS)
    return [
        {"service": service, "queue": queue, "length": sum(lengths[i * per_queue : (i + 1) * per_queue])}
        for i, (service, queue) in enumerate(queues)
    ]


# How long the status waits for workers to answer (Celery's broadcast has no "all answered" signal).
WORKER_REPLY_SECONDS = 1.0


def _workers(bus: EventBus, settings: ApiSettings) -> list[dict[str, Any]] | None:
    """The workers that answered, with the platform services whose queues each consumes; None when the
    broker cannot be reached. Workers of other deployments sharing the broker consume other queues and are
    left out."""
    services_of = {settings.queue(service): service for service in SERVICES}
    try:
        replies = bus.celery.control.inspect(timeout=WORKER_REPLY_SECONDS).active_queues() or {}
    except Exception as exc:
        log.warning("pipeline.workers_unreachable", error=str(exc))
        return None
    workers = []
    for name, consumed in sorted(replies.items()):
        services = sorted({services_of[q["name"]] for q in consumed or [] if q.get("name") in services_of})
        if services:
            workers.append({"name": name, "services": services})
    return workers


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    settings = settings or ApiSettings()
    configure_logging("api", level=settings.log_level, json=settings.log_json)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.engine = create_engine(settings)
        # Admin actions publish the events they record; the pipeline status reads queue lengths.
        app.state.bus = EventBus(settings)
        yield
        app.state.bus.close()
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
            config = await repository.quality_config_of(conn, batch_id, row["dataset"])
        return {**row, "counts": _counts(row), "stages": stages, "quality": quality, "quality_config": config}

    @app.get("/v1/batches/{batch_id}/rejects", response_model=RejectsOut)
    async def get_rejects(
        batch_id: uuid.UUID,
        request: Request,
        _: BatchReader,
        after_line: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Any:
        """The batch's rejected rows in file order, each with its reason codes and original text, a page at a
        time: pass the previous page's ``next_after_line`` as ``after_line``."""
        async with engine_of(request).connect() as conn:
            row = await repository.get_batch(conn, batch_id)
            if row is None:
                raise ApiError(404, "batch_not_found", f"no batch {batch_id}")
            page = await repository.rejects(conn, batch_id, row["dataset"], after_line=after_line, limit=limit)
        return {
            "batch_id": batch_id,
            "dataset": row["dataset"],
            "rows_rejected": row["rows_rejected"],
            "rejects": page,
            "next_after_line": page[-1]["source_line"] if len(page) == limit else None,
        }

    @app.post("/v1/batches/{batch_id}/release", response_model=AdminActionOut)
    async def release_batch(
        batch_id: uuid.UUID, request: Request, principal: Admin, body: Annotated[AdminActionIn | None, Body()] = None
    ) -> Any:
        """Load a quarantined batch anyway: it goes on as validated, its failed checks kept as warnings (audited)."""
        return await admin.release(
            engine_of(request),
            request.app.state.bus,
            batch_id=batch_id,
            principal=principal,
            reason=body.reason if body else "",
        )

    @app.post("/v1/batches/{batch_id}/rerun-quality", response_model=AdminActionOut, status_code=202)
    async def rerun_quality(
        batch_id: uuid.UUID, request: Request, principal: Admin, body: Annotated[AdminActionIn | None, Body()] = None
    ) -> Any:
        """Check a quarantined batch again with the quality config in effect now (audited)."""
        return await admin.rerun_quality(
            engine_of(request),
            request.app.state.bus,
            batch_id=batch_id,
            principal=principal,
            reason=body.reason if body else "",
        )

    @app.get("/v1/quality/checks", response_model=QualityChecksOut)
    async def quality_checks(_: BatchReader) -> Any:
        loaded = _quality_config(settings)
        document = loaded.config.model_dump(mode="json", by_alias=True)
        return {
            "version": loaded.version,
            "declared_version": loaded.config.version,
            "check_types": list(CHECK_TYPES),
            "datasets": document["datasets"],
        }

    @app.get("/v1/pipeline/status", response_model=PipelineStatusOut)
    async def pipeline_status(request: Request, _: BatchReader) -> Any:
        async with engine_of(request).connect() as conn:
            freshness = await repository.freshness(conn)
            by_status = await repository.batches_by_status(conn)
        queues, workers = await asyncio.gather(
            asyncio.to_thread(_queue_lengths, request.app.state.bus, settings),
            asyncio.to_thread(_workers, request.app.state.bus, settings),
        )
        try:
            version: str | None = load_quality_config(settings.quality_config).version
        except (OSError, ValueError):
            version = None
        return {
            "freshness": freshness,
            "queues": queues,
            "workers": workers,
            "batches_by_status": by_status,
            "quality_config_version": version,
        }

    @app.get("/v1/kpis/daily", response_model=DailyKpisOut)
    async def daily_kpis(request: Request, _: KpiReader, start: From, end: To) -> Any:
        _check_range(start, end)
        async with engine_of(request).connect() as conn:
            days = await repository.daily_kpis(conn, start=start, end=end)
        return {"from": start, "to": end, "days": days}

    @app.get("/v1/kpis/summary", response_model=KpiSummaryOut)
    async def kpi_summary(request: Request, _: KpiReader, start: From, end: To) -> Any:
        """The range's headline figures (DESIGN §5): sums of the daily ones, distinct customers counted once."""
        _check_range(start, end)
        async with engine_of(request).connect() as conn:
            summary = await repository.kpi_summary(conn, start=start, end=end)
        return {"from": start, "to": end, **summary}

    @app.get("/v1/kpis/categories", response_model=CategoriesOut)
    async def kpis_by_category(request: Request, _: KpiReader, start: From, end: To) -> Any:
        return {"from": start, "to": end, "categories": await _breakdown(request, "categories", start, end)}

    @app.get("/v1/kpis/payment-methods", response_model=PaymentMethodsOut)
    async def kpis_by_payment_method(request: Request, _: KpiReader, start: From, end: To) -> Any:
        return {"from": start, "to": end, "payment_methods": await _breakdown(request, "payment_methods", start, end)}

    @app.get("/v1/kpis/states", response_model=StatesOut)
    async def kpis_by_state(request: Request, _: KpiReader, start: From, end: To) -> Any:
        return {"from": start, "to": end, "states": await _breakdown(request, "states", start, end)}

    @app.get("/v1/kpis/top-products", response_model=TopProductsOut)
    async def top_products(
        request: Request, _: KpiReader, start: From, end: To, limit: Annotated[int, Query(ge=1, le=1000)] = 10
    ) -> Any:
        _check_range(start, end)
        async with engine_of(request).connect() as conn:
            products = await repository.top_products(conn, start=start, end=end, limit=limit)
        return {"from": start, "to": end, "products": products}

    @app.get(
        "/v1/events",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}, "description": "server-sent batch events"}},
    )
    async def events(
        request: Request,
        _: BatchReader,
        batch_id: uuid.UUID | None = None,
        last_event_id: Annotated[uuid.UUID | None, Header()] = None,
    ) -> StreamingResponse:
        """Every batch event as it is published (``event:`` its type, ``data:`` the event, ``id:`` its
        event_id); optionally one batch's only. A client reconnecting with ``Last-Event-ID`` first gets what
        was recorded after that event."""
        stream = live_events(request, settings, batch_id=batch_id, last_event_id=last_event_id)
        return StreamingResponse(
            stream, media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )

    return app
