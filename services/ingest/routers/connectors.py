"""HTTP endpoints of the connectors (the scheduler's pulls): parse, authorize, call one connector, answer.

202 when a new batch was created, 200 otherwise.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from services.ingest.connectors.http import pull_http
from services.ingest.connectors.landing import LANDING_ROOT, SweepResult, sweep_landing
from services.ingest.connectors.sql import pull_sql
from services.ingest.deps import Service
from services.ingest.schemas import BatchAccepted, accepted_response
from shared.http import Admin, IngestWriter
from shared.openapi import errors

router = APIRouter(prefix="/v1/connectors", tags=["connectors"])


class HttpPullRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(max_length=100)
    url: str = Field(min_length=1, max_length=4096)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)


class SweepRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prefix: str = Field(default=LANDING_ROOT, max_length=1024)


class NoNewRows(BaseModel):
    batch: None = None


class SweptObject(BaseModel):
    key: str
    dataset: str | None
    outcome: str = Field(description="ingested | duplicate | rejected | gone")
    moved_to: str | None
    batch: BatchAccepted | None
    error: dict[str, Any] | None


def _swept(result: SweepResult, api_public_url: str) -> SweptObject:
    batch = BatchAccepted.of(result.batch, api_public_url=api_public_url) if result.batch is not None else None
    return SweptObject(
        key=result.key,
        dataset=result.dataset,
        outcome=result.outcome,
        moved_to=result.moved_to,
        batch=batch,
        error=result.error,
    )


@router.post(
    "/http",
    status_code=202,
    response_model=BatchAccepted,
    responses={
        200: {"model": BatchAccepted, "description": "the same content was already accepted"},
        **errors(
            e400="the URL is not an allowed http(s) source (`invalid_source`), or its file cannot be read "
            "(`unreadable_file`)",
            e404="no dataset has that name (`unknown_dataset`)",
            e409="the Idempotency-Key was used for other content (`idempotency_key_reused`)",
            e413="the file is over the size limit (`too_large`)",
            e415="the file's format is not one accepted (`unsupported_media_type`)",
            e422="the file does not match the dataset's contract (`contract_mismatch`), or the body is not valid "
            "(`invalid_request`)",
            e502="the source failed or did not answer in time (`source_error`)",
        ),
    },
)
async def pull_from_http(body: HttpPullRequest, _: IngestWriter, service: Service) -> JSONResponse:
    """Download ``url`` (http or https) and accept it as a file of ``dataset``."""
    accepted = await pull_http(service, dataset=body.dataset, url=body.url, idempotency_key=body.idempotency_key)
    return accepted_response(accepted, api_public_url=service.settings.api_public_url)


@router.post(
    "/sql/{source_name}",
    status_code=202,
    response_model=BatchAccepted,
    responses={
        200: {
            "model": BatchAccepted | NoNewRows,
            "description": "the rows were already a batch, or there were no new rows (batch: null)",
        },
        **errors(
            e404="no SQL source has that name (`unknown_source`)",
            e409="a pull of the source is running (`pull_in_progress`)",
            e500="the source's query lacks its watermark column (`source_misconfigured`)",
            e502="the source could not be read (`source_error`)",
        ),
    },
)
async def pull_from_sql(source_name: str, _: Admin, service: Service) -> JSONResponse:
    """Pull the rows of the configured SQL source past its watermark as one batch."""
    accepted = await pull_sql(service, source_name=source_name)
    if accepted is None:
        return JSONResponse(status_code=200, content=NoNewRows().model_dump())
    return accepted_response(accepted, api_public_url=service.settings.api_public_url)


@router.post(
    "/landing/sweep",
    status_code=202,
    response_model=list[SweptObject],
    responses={
        200: {"model": list[SweptObject], "description": "no new batch was created"},
        **errors(
            e400="the prefix is not under the landing root (`invalid_prefix`)",
            e409="a sweep is running (`sweep_in_progress`)",
        ),
    },
)
async def sweep(_: IngestWriter, service: Service, body: SweepRequest | None = None) -> JSONResponse:
    """Ingest every object under the landing prefix and move it to ``_done`` or ``_rejected``."""
    results = await sweep_landing(service, prefix=(body or SweepRequest()).prefix)
    created = any(r.batch is not None and r.batch.created for r in results)
    return JSONResponse(
        status_code=202 if created else 200,
        content=[_swept(r, service.settings.api_public_url).model_dump() for r in results],
    )
