"""Celery worker of the quality service. Start: ``celery -A services.quality.worker:app worker -Q quality``."""

from __future__ import annotations

from typing import Any

from services.quality import service
from services.quality.settings import QualitySettings
from shared.events import BatchStaged, parse_event
from shared.worker import WorkerRuntime

settings = QualitySettings()
runtime = WorkerRuntime("quality", settings)
app = runtime.celery


@app.task(name="quality.check_batch")
def check_batch(payload: dict[str, Any]) -> None:
    event = parse_event(payload)
    if not isinstance(event, BatchStaged):
        raise TypeError(f"quality.check_batch takes batch.staged, not {event.type}")
    runtime.run(lambda resources: service.check_batch(resources, event))
