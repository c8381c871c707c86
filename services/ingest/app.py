"""The ingest HTTP service. Start: ``uvicorn services.ingest.app:create_app --factory --port 8001``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.datastructures import UploadFile

from services.ingest.service import Accepted, IngestService, Upload, parse_dataset, safe_file_name
from services.ingest.settings import IngestSettings
from shared.bus import EventBus
from shared.db import create_engine
from shared.http import ApiError, IngestWriter, install_error_handlers, install_metrics
from shared.logs import configure_logging
from shared.objectstore import CHUNK_SIZE, all_buckets, create_object_store


class BatchAccepted(BaseModel):
    batch_id: str
    dataset: str
    status: str
    sha256: str
    size_bytes: int
    status_url: str


async def _file_chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(CHUNK_SIZE):
        yield chunk


def create_app(settings: IngestSettings | None = None) -> FastAPI:
    settings = settings or IngestSettings()
    configure_logging("ingest", level=settings.log_level, json=settings.log_json)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings)
        store = create_object_store(settings)
        store.ensure_buckets(all_buckets(settings))
        bus = EventBus(settings)
        app.state.engine = engine
        app.state.service = IngestService(settings, engine, store, bus)
        yield
        bus.close()
        await engine.dispose()

    app = FastAPI(title="Sales data platform — ingest", version="1", lifespan=lifespan)
    install_error_handlers(app)
    install_metrics(app, "ingest")

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    def respond(accepted: Accepted) -> JSONResponse:
        body = BatchAccepted(
            batch_id=str(accepted.batch_id),
            dataset=accepted.dataset.value,
            status=accepted.status,
            sha256=accepted.sha256,
            size_bytes=accepted.size_bytes,
            status_url=f"{settings.api_public_url.rstrip('/')}/v1/batches/{accepted.batch_id}",
        )
        return JSONResponse(status_code=202 if accepted.created else 200, content=body.model_dump())

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
        ds = parse_dataset(dataset)
        service: IngestService = request.app.state.service
        content_type = request.headers.get("content-type", "")
        if content_type.lower().startswith("multipart/form-data"):
            form = await request.form(max_files=1, max_fields=10)
            file = form.get("file")
            if not isinstance(file, UploadFile):
                raise ApiError(400, "missing_file", "multipart uploads carry the file in the field 'file'")
            upload = Upload(
                dataset=ds,
                file_name=safe_file_name(file.filename),
                content_type=file.content_type or "",
                chunks=_file_chunks(file),
                idempotency_key=idempotency_key,
                content_encoding=request.headers.get("content-encoding", ""),
            )
            try:
                return respond(await service.accept(upload))
            finally:
                await form.close()
        name = request.headers.get("x-file-name") or request.query_params.get("filename")
        upload = Upload(
            dataset=ds,
            file_name=safe_file_name(name),
            content_type=content_type,
            chunks=request.stream(),
            idempotency_key=idempotency_key,
            content_encoding=request.headers.get("content-encoding", ""),
        )
        return respond(await service.accept(upload))

    return app
