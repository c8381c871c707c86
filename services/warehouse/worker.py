"""Celery worker of the warehouse service. Start: ``celery -A services.warehouse.worker:app worker -Q warehouse``."""

from __future__ import annotations

from typing import Any

from services.warehouse import service
from services.warehouse.settings import WarehouseSettings
from shared.events import BatchValidated, parse_event
from shared.worker import WorkerRuntime

settings = WarehouseSettings()
runtime = WorkerRuntime("warehouse", settings)
app = runtime.celery


@app.task(name="warehouse.load_batch")
def load_batch(payload: dict[str, Any]) -> None:
    event = parse_event(payload)
    if not isinstance(event, BatchValidated):
        raise TypeError(f"warehouse.load_batch takes batch.validated, not {event.type}")
    runtime.run(lambda resources: service.load_batch(resources, event))
