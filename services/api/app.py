"""The API service: batches and KPIs from PostgreSQL. Start: ``uvicorn services.api.app:create_app --factory``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from services.api import metrics
from services.api.cache import KpiCache
from services.api.examples import EXAMPLES
from services.api.routers import admin, backfill, batches, dashboard, events, health, keys, kpis, pipeline, quality
from services.api.settings import ApiSettings
from shared.apidocs import install_docs
from shared.bus import EventBus
from shared.db import create_engine
from shared.http import install_error_handlers, install_metrics
from shared.logs import configure_logging
from shared.openapi import install_openapi


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    settings = settings or ApiSettings()
    configure_logging("api", level=settings.log_level, json=settings.log_json)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.engine = create_engine(settings)
        app.state.bus = EventBus(settings)
        app.state.kpi_cache = KpiCache(settings, registry)
        yield
        await app.state.kpi_cache.close()
        app.state.bus.close()
        await app.state.engine.dispose()

    app = FastAPI(title="Sales data platform — API", version="1", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.settings = settings
    install_error_handlers(app)
    registry = install_metrics(app, "api", metrics.scrape)
    install_docs(app)
    app.mount("/static", StaticFiles(directory=dashboard.STATIC_DIR), name="static")
    app.include_router(health.router)
    app.include_router(batches.router)
    app.include_router(admin.router)
    app.include_router(backfill.router)
    app.include_router(keys.router)
    app.include_router(quality.router)
    app.include_router(pipeline.router)
    app.include_router(kpis.router)
    app.include_router(events.router)
    app.include_router(dashboard.router)
    install_openapi(app, EXAMPLES)
    return app
