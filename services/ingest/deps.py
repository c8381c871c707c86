"""What the ingest handlers take from their app, as ``Annotated`` aliases (the API keys' scopes: shared.http)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.ingest.metrics import UploadMetrics
from services.ingest.service import IngestService


# Coroutines: FastAPI runs a plain function dependency in a worker thread, a hand-off on every request.
async def _service(request: Request) -> IngestService:
    service: IngestService = request.app.state.service
    return service


async def _upload_metrics(request: Request) -> UploadMetrics:
    metrics: UploadMetrics = request.app.state.upload_metrics
    return metrics


Service = Annotated[IngestService, Depends(_service)]
Metrics = Annotated[UploadMetrics, Depends(_upload_metrics)]
