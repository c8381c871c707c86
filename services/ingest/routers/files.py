"""Uploads: a file (multipart field ``file`` or a raw body) becomes a batch of its dataset."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse

from services.ingest.deps import Metrics, Service
from services.ingest.multipart import open_file_part
from services.ingest.schemas import BatchAccepted, accepted_response
from services.ingest.service import Upload, parse_dataset, safe_file_name
from services.ingest.settings import IngestSettings
from services.ingest.upload import idle_bounded
from shared.http import ApiError, IngestWriter

router = APIRouter(prefix="/v1/datasets")


async def _upload(dataset: str, request: Request, idempotency_key: str | None, settings: IngestSettings) -> Upload:
    """The upload a request carries; a multipart body is read up to its file part, the rest streams on."""
    ds = parse_dataset(dataset)
    content_type = request.headers.get("content-type", "")
    body = idle_bounded(request.stream(), settings.ingest_body_idle_timeout_seconds)
    if content_type.lower().startswith("multipart/form-data"):
        part = await open_file_part(content_type, body)
        file_name, content_type, chunks = part.file_name, part.content_type, part.chunks
    else:
        file_name = request.headers.get("x-file-name") or request.query_params.get("filename")
        chunks = body
    return Upload(
        dataset=ds,
        file_name=safe_file_name(file_name),
        content_type=content_type,
        chunks=chunks,
        idempotency_key=idempotency_key,
        content_encoding=request.headers.get("content-encoding", ""),
    )


@router.post(
    "/{dataset}/files",
    status_code=202,
    response_model=BatchAccepted,
    responses={200: {"model": BatchAccepted, "description": "the same content was already accepted"}},
)
async def upload_file(
    dataset: str,
    request: Request,
    _: IngestWriter,
    service: Service,
    metrics: Metrics,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> JSONResponse:
    """Accept a file (multipart field ``file`` or a raw body) as a new batch of ``dataset``."""
    # No DbConnection: it would hold a pool connection while a large body arrives; accept opens one once stored.
    started = time.perf_counter()
    try:
        accepted = await service.accept(await _upload(dataset, request, idempotency_key, service.settings))
    except ApiError as exc:
        metrics.rejected.labels(exc.code).inc()
        raise
    metrics.observe(accepted, time.perf_counter() - started)
    return accepted_response(accepted, api_public_url=service.settings.api_public_url)
