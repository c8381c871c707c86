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
from shared.openapi import errors

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
    responses={
        200: {"model": BatchAccepted, "description": "the same content was already accepted"},
        **errors(
            e400="the file cannot be read (`unreadable_file`), or the multipart body is malformed "
            "(`invalid_multipart`)",
            e404="no dataset has that name (`unknown_dataset`)",
            e408="the body stopped arriving (`body_timeout`)",
            e409="the Idempotency-Key was used for other content (`idempotency_key_reused`), or a concurrent "
            "upload conflicted (`conflict`)",
            e413="the file is over the size limit (`too_large`), or inflates past it (`decompression_bomb`)",
            e415="the Content-Type or the file's format is not one accepted (`unsupported_media_type`)",
            e422="the header does not match the dataset's contract (`contract_mismatch`, `duplicate_columns`, "
            "`too_many_columns`, `too_deeply_nested`), or a header is not valid (`invalid_request`)",
        ),
    },
    openapi_extra={
        # The handler reads the body as a stream itself (so it is not declared as a parameter): either form.
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                        "required": ["file"],
                    }
                },
                "text/csv": {
                    "schema": {"type": "string"},
                    "example": "product_id,product_name,category,created_at,updated_at\r\n"
                    "P-1,Desk lamp,home,2025-01-01T00:00:00Z,2025-01-01T00:00:00Z\r\n",
                },
                "application/x-ndjson": {"schema": {"type": "string"}},
                "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
                "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
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
