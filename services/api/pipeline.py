"""The pipeline's status: freshness per dataset, the services' queue lengths in Redis, the workers that answer,
the batches by status and the quality config's version."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from services.api import repository
from services.api.quality import config_version
from services.api.settings import ApiSettings
from shared.bus import SERVICES, EventBus
from shared.logs import get_logger

log = get_logger(__name__)

# Kombu's Redis transport keeps a queue's messages of priority 0 under the queue's name and the other
# priority steps under the name plus this separator and the step.
KOMBU_PRIORITY_SEP = "\x06\x16"
KOMBU_PRIORITY_STEPS = (3, 6, 9)

# How long the status waits for workers to answer (Celery's broadcast has no "all answered" signal).
WORKER_REPLY_SECONDS = 1.0


def queue_lengths(bus: EventBus, settings: ApiSettings) -> list[dict[str, Any]]:
    queues = [(service, settings.queue(service)) for service in SERVICES]
    try:
        with bus.redis.pipeline(transaction=False) as pipe:
            for _, queue in queues:
                pipe.llen(queue)
                for step in KOMBU_PRIORITY_STEPS:
                    pipe.llen(f"{queue}{KOMBU_PRIORITY_SEP}{step}")
            lengths = pipe.execute()
    except Exception as exc:
        log.warning("pipeline.queues_unreachable", error=str(exc))
        return [{"service": service, "queue": queue, "length": None} for service, queue in queues]
    per_queue = 1 + len(KOMBU_PRIORITY_STEPS)
    return [
        {"service": service, "queue": queue, "length": sum(lengths[i * per_queue : (i + 1) * per_queue])}
        for i, (service, queue) in enumerate(queues)
    ]


def _workers(bus: EventBus, settings: ApiSettings) -> list[dict[str, Any]] | None:
    """The workers that answered, with the platform services whose queues each consumes; None when the
    broker cannot be reached. Workers of other deployments sharing the broker consume other queues and are
    left out."""
    services_of = {settings.queue(service): service for service in SERVICES}
    try:
        replies = bus.celery.control.inspect(timeout=WORKER_REPLY_SECONDS).active_queues() or {}
    except Exception as exc:
        log.warning("pipeline.workers_unreachable", error=str(exc))
        return None
    workers = []
    for name, consumed in sorted(replies.items()):
        services = sorted({services_of[q["name"]] for q in consumed or [] if q.get("name") in services_of})
        if services:
            workers.append({"name": name, "services": services})
    return workers


async def status(conn: AsyncConnection, bus: EventBus, settings: ApiSettings) -> dict[str, Any]:
    freshness = await repository.freshness(conn)
    by_status = await repository.batches_by_status(conn)
    # Redis and Celery's broadcast block: they run in threads, side by side.
    queues, workers = await asyncio.gather(
        asyncio.to_thread(queue_lengths, bus, settings),
        asyncio.to_thread(_workers, bus, settings),
    )
    return {
        "freshness": freshness,
        "queues": queues,
        "workers": workers,
        "batches_by_status": by_status,
        "quality_config_version": config_version(settings.quality_config),
    }
