"""The ingest HTTP service. Start: ``uvicorn services.ingest.app:create_app --factory --port 8001``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import FastAPI, Header, Request
from prometheus_client import CollectorRegistry, Counter, Histogram
from pydantic import BaseModel

from services.ingest.connector_routes import router as connector_router
from services.ingest.formats import FileFormat
from services.ingest.multipart import open_file_part
from services.ingest.schemas import BatchAccepted, accepted_response
from services.ingest.service import Accepted, IngestService, Upload, parse_dataset, safe_file_name
from services.ingest.settings import IngestSettings
from shared.bus import EventBus
from shared.datasets import CONTRACTS, json_schema
from shared.db import create_engine
from shared.http import ApiError, Authenticated, IngestWriter, install_error_handlers, install_metrics
from shared.logs import configure_logging, get_logger
from shared.memory import keep_stream_buffers_in_heap
from shared.objectstore import all_buckets, create_object_store

log = get_logger(__name__)


class UploadMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.uploads = Counter("sdp_ingest_uploads_total", "Files accepted", ["dataset", "outcome"], registry=registry)
        self.bytes = Counter("sdp_ingest_bytes_total", "Bytes of new batches", ["dataset"], registry=registry)
        self.rejected = Counter("sdp_ingest_rejections_total", "Uploads refused", ["code"], registry=registry)
        self.seconds = Histogram(
            "sdp_ingest_upload_seconds",
            "Time to accept a file",
            ["dataset"],
            buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 1800),
            registry=registry,
        )


class ColumnOut(BaseModel):
    name: str
    type: str
    required: bool


class DatasetOut(BaseModel):
    name: str
    key: str
    columns: list[ColumnOut]
    formats: list[str]
    json_schema: dict[str, Any]


class DatasetList(BaseModel):
    datasets: list[DatasetOut]


def create_app(settings: IngestSettings | None = None) -> FastAPI:
    settings = settings or IngestSettings()
    configure_logging("ingest", level=settings.log_level, json=settings.log_json)
    # Uploads pass through this process in 256 KiB reads: see shared/memory.py for what that costs otherwise.
    if not keep_stream_buffers_in_heap():
        log.info("ingest.heap_settings_unavailable")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings)
        store = create_object_store(settings)
        store.ensure_buckets(all_buckets(settings))
        bus = EventBus(settings)
        try:
            await asyncio.to_thread(bus.warm_up)
        except Exception as exc:
            # Accepting files does not need the broker: the outbox holds events until it is back.
            log.warning("ingest.broker_unavailable", error=str(exc))
        app.state.engine = engine
        app.state.service = IngestService(settings, engine, store, bus)
        yield
        bus.close()
        await engine.dispose()

    app = FastAPI(title="Sales data platform — ingest", version="1", lifespan=lifespan)
    install_error_handlers(app)
    metrics = UploadMetrics(install_metrics(app, "ingest"))
    app.include_router(connector_router)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/datasets", response_model=DatasetList)
    async def list_datasets(_: Authenticated) -> Any:
        """The datasets accepted, each with its contract: columns, types, which are required."""
        return {
            "datasets": [
                {
                    "name": contract.dataset.value,
                    "key": contract.key,
                    "columns": [{"name": c.name, "type": c.type, "required": c.required} for c in contract.columns],
                    "formats": sorted(f.value for f in FileFormat),
                    "json_schema": json_schema(contract),
                }
                for contract in CONTRACTS.values()
            ]
        }

    @app.post(
        "/v1/datasets/{dataset}/files",
        status_code=202,
        response_model=BatchAccepted,
        responses={200: {"model": BatchAccepted, "description": "the same content was already accepted"}},
    )
    async def upload_file(
        dataset: str,
        request: Request,
        _: IngestWriter,
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> Any:
        """Accept a file (multipart field ``file`` or a raw body) as a new batch of ``dataset``."""
        started = time.perf_counter()
        try:
            accepted = await _accept(dataset, request, idempotency_key)
        except ApiError as exc:
            metrics.rejected.labels(exc.code).inc()
            raise
        metrics.uploads.labels(accepted.dataset.value, "created" if accepted.created else "duplicate").inc()
        metrics.bytes.labels(accepted.dataset.value).inc(accepted.size_bytes if accepted.created else 0)
        metrics.seconds.labels(accepted.dataset.value).observe(time.perf_counter() - started)
        return accepted_response(accepted, api_public_url=settings.api_public_url)

    async def _accept(dataset: str, request: Request, idempotency_key: str | None) -> Accepted:
        ds = parse_dataset(dataset)
        service: IngestService = request.app.state.service
        content_type = request.headers.get("content-type", "")
        if content_type.lower().startswith("multipart/form-data"):
            part = await open_file_part(content_type, request.stream())
            upload = Upload(
                dataset=ds,
                file_name=safe_file_name(part.file_name),
                content_type=part.content_type,
                chunks=part.chunks,
                idempotency_key=idempotency_key,
                content_encoding=request.headers.get("content-encoding", ""),
            )
            return await service.accept(upload)
        name = request.headers.get("x-file-name") or request.query_params.get("filename")
        upload = Upload(
            dataset=ds,
            file_name=safe_file_name(name),
            content_type=content_type,
            chunks=request.stream(),
            idempotency_key=idempotency_key,
            content_encoding=request.headers.get("content-encoding", ""),
        )
        return await service.accept(upload)

    return app
