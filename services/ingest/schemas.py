"""Response schemas of the ingest service."""

from __future__ import annotations

from fastapi.responses import JSONResponse
from pydantic import BaseModel

from services.ingest.service import Accepted


class BatchAccepted(BaseModel):
    batch_id: str
    dataset: str
    status: str
    sha256: str
    size_bytes: int
    status_url: str

    @classmethod
    def of(cls, accepted: Accepted, *, api_public_url: str) -> BatchAccepted:
        return cls(
            batch_id=str(accepted.batch_id),
            dataset=accepted.dataset.value,
            status=accepted.status,
            sha256=accepted.sha256,
            size_bytes=accepted.size_bytes,
            status_url=f"{api_public_url.rstrip('/')}/v1/batches/{accepted.batch_id}",
        )


def accepted_response(accepted: Accepted, *, api_public_url: str) -> JSONResponse:
    """202 for a new batch, 200 when the content was already accepted."""
    body = BatchAccepted.of(accepted, api_public_url=api_public_url)
    return JSONResponse(status_code=202 if accepted.created else 200, content=body.model_dump())
