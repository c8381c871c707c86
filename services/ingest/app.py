"""The ingest HTTP service. Start: ``uvicorn services.ingest.app:create_app --factory --port 8001``.

uvicorn (0.55) has no timeout for reading a request's headers: a client slow to send them holds a socket
and a parser, but no task, thread or database connection, which the app takes only once they are complete.
The body is bounded here: ``SDP_INGEST_BODY_IDLE_TIMEOUT_SECONDS``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.ingest.examples import EXAMPLES
from services.ingest.metrics import UploadMetrics
from services.ingest.routers import connectors, datasets, files
from services.ingest.service import IngestService
from services.ingest.settings import IngestSettings
from shared.apidocs import install_docs
from shared.bus import EventBus
from shared.db import create_engine
from shared.http import install_error_handlers, install_metrics
from shared.logs import configure_logging, get_logger
from shared.memory import keep_stream_buffers_in_heap
from shared.objectstore import all_buckets, create_object_store
from shared.openapi import install_openapi

log = get_logger(__name__)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: IngestSettings = app.state.settings
    engine = create_engine(settings)
    store = create_object_store(settings)
    store.ensure_buckets(all_buckets(settings))
    bus = EventBus(settings)
    try:
        await asyncio.to_thread(bus.warm_up)
    except Exception as exc:
        # Accepting files does not need the broker: the outbox holds events until it is back.
        log.warning("ingest.broker_unavailable", error=str(exc))
    upload_pool = ThreadPoolExecutor(settings.ingest_upload_threads, thread_name_prefix="ingest-upload")
    app.state.engine = engine
    app.state.service = IngestService(settings, engine, store, bus, upload_pool)
    yield
    upload_pool.shutdown()
    bus.close()
    await engine.dispose()


def create_app(settings: IngestSettings | None = None) -> FastAPI:
    settings = settings or IngestSettings()
    configure_logging("ingest", level=settings.log_level, json=settings.log_json)
    # Uploads pass through this process in 256 KiB reads: see shared/memory.py for what that costs otherwise.
    if not keep_stream_buffers_in_heap():
        log.info("ingest.heap_settings_unavailable")

    app = FastAPI(title="Sales data platform — ingest", version="1", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.settings = settings
    install_error_handlers(app)
    install_docs(app)
    app.state.upload_metrics = UploadMetrics(install_metrics(app, "ingest"))
    for router in (connectors.router, datasets.router, files.router):
        app.include_router(router)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    install_openapi(app, EXAMPLES)
    return app
