"""Celery worker of the transform service: one process, one warm SparkSession.

Start: ``celery -A services.transform.worker:app worker -Q transform --pool solo``.
"""

from __future__ import annotations

from typing import Any

from celery.signals import worker_ready

from services.transform import service
from services.transform.settings import TransformSettings
from services.transform.spark import get_spark
from shared.events import BatchReceived, parse_event
from shared.worker import WorkerRuntime

settings = TransformSettings()
runtime = WorkerRuntime("transform", settings)
app = runtime.celery


@worker_ready.connect
def _warm_up(**_: Any) -> None:
    """Start the JVM before the first batch arrives, not while it waits."""
    get_spark(settings).range(1).count()


@app.task(name="transform.stage_batch")
def stage_batch(payload: dict[str, Any]) -> None:
    event = parse_event(payload)
    if not isinstance(event, BatchReceived):
        raise TypeError(f"transform.stage_batch takes batch.received, not {event.type}")
    runtime.run(lambda resources: service.stage_batch(resources, event, get_spark(settings)))
