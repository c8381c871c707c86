"""The event bus: Celery on Redis, one queue per service, tasks addressed by explicit dotted names.

Publishing an event sends it to the consumer's task by name (no service imports another's code) and
broadcasts it on a Redis pub/sub channel for the API's live stream.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import cast

import redis
from celery import Celery
from pydantic import BaseModel

from shared.events import Event
from shared.settings import PlatformSettings


@dataclass(frozen=True)
class Route:
    task: str
    service: str


# Which task consumes which event; terminal events have no consumer beyond the live stream.
ROUTES: dict[str, Route] = {
    "batch.received": Route("transform.stage_batch", "transform"),
    "batch.staged": Route("quality.check_batch", "quality"),
    "batch.validated": Route("warehouse.load_batch", "warehouse"),
}
SERVICES = ("transform", "quality", "warehouse")
# Events after which the KPIs may read differently: publishing one moves the KPI cache to a new generation.
KPI_CHANGING_EVENTS = frozenset({"batch.loaded", "analytics.backfilled"})
# Kombu's Redis transport keeps a queue's messages of priority p > 0 in a list of their own, named so.
PRIORITY_STEPS = (3, 6, 9)
PRIORITY_SEPARATOR = "\x06\x16"


def task_id(event: Event) -> str:
    """The id of the task that delivers ``event``: the same for every publication of one event."""
    return f"{event.type}:{event.batch_id}:{event.event_id}"


def create_celery(settings: PlatformSettings, name: str) -> Celery:
    app = Celery(name, broker=settings.redis_url, set_as_current=True)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        # The process's stderr stays the file it was started with: redirected into a logger, the stream
        # shared.logs writes to would feed records back into logging, and Celery drops those silently.
        worker_redirect_stdouts=False,
        task_default_queue=settings.queue("default"),
        task_routes={route.task: {"queue": settings.queue(route.service)} for route in ROUTES.values()},
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": settings.broker_visibility_timeout,
            # Every sweep scans (throttle 1), so the interval alone says how often.
            "unacked_restore_interval": settings.broker_unacked_restore_interval,
            "unacked_restore_throttle": 1,
            # The bookkeeping of delivered, unacknowledged tasks is one hash for every queue of a Redis
            # database; the queue prefix gives each run its own, so one run never re-delivers another's.
            "unacked_key": _unacked_keys(settings)[0],
            "unacked_index_key": _unacked_keys(settings)[1],
            "unacked_mutex_key": f"{settings.queue_prefix}unacked_mutex",
        },
        worker_send_task_events=True,
        task_send_sent_event=True,
    )
    return app


class EventBus:
    """Sends events to their consumers; used only after the transaction that made them true commits."""

    def __init__(self, settings: PlatformSettings, celery: Celery | None = None) -> None:
        self.settings = settings
        self.celery = celery or create_celery(settings, "salesdp-publisher")
        self.redis = redis.Redis.from_url(settings.redis_url)

    def publish(self, event: Event) -> None:
        payload = event.model_dump(mode="json")
        route = ROUTES.get(event.type)
        if route is not None:
            self.celery.send_task(
                route.task,
                args=[payload],
                queue=self.settings.queue(route.service),
                task_id=task_id(event),
            )
        with self.redis.pipeline(transaction=True) as pipe:
            # In one MULTI with the live stream's copy: a published load is never without its new generation.
            if event.type in KPI_CHANGING_EVENTS:
                pipe.incr(kpi_generation_key(self.settings))
            pipe.publish(self.settings.events_channel, event.model_dump_json())
            pipe.execute()

    def broadcast(self, message: BaseModel) -> None:
        """Send a message no stage consumes (an operation's, such as a backfill) to the live stream alone."""
        with self.redis.pipeline(transaction=True) as pipe:
            if getattr(message, "type", None) in KPI_CHANGING_EVENTS:
                pipe.incr(kpi_generation_key(self.settings))
            pipe.publish(self.settings.events_channel, message.model_dump_json())
            pipe.execute()

    def warm_up(self) -> None:
        """Load the broker's transport, the result backend and the task sender, and connect, now: the first
        event then costs what every later one does (lazily, the first upload paid about half a second)."""
        _ = self.celery.backend
        _ = self.celery.amqp.send_task_message
        with self.celery.producer_or_acquire() as producer:
            producer.connection.ensure_connection(max_retries=1)
            for route in ROUTES.values():
                producer.maybe_declare(self.celery.amqp.queues[self.settings.queue(route.service)])
        self.redis.ping()

    def waiting_task_ids(self, *, delivered_within: float) -> set[str]:
        """The tasks waiting in the services' queues, and those delivered less than ``delivered_within``
        seconds ago and not yet acknowledged (a worker has them). A published event whose task is in
        neither was lost: Redis restarted, or the worker it was delivered to died before it began."""
        ids: set[str] = set()
        for service in SERVICES:
            queue = self.settings.queue(service)
            for key in [queue, *(f"{queue}{PRIORITY_SEPARATOR}{p}" for p in PRIORITY_STEPS)]:
                ids.update(_task_id_of(_loads(raw)) for raw in self.redis.lrange(key, 0, -1))
        unacked_key, unacked_index_key = _unacked_keys(self.settings)
        recent = cast(list[bytes], self.redis.zrangebyscore(unacked_index_key, time.time() - delivered_within, "+inf"))
        for raw in self.redis.hmget(unacked_key, recent) if recent else []:
            # An unacknowledged delivery is kept as [message, exchange, routing key].
            entry = _loads(raw)
            ids.add(_task_id_of(entry[0] if isinstance(entry, list) and entry else None))
        ids.discard("")
        return ids

    def close(self) -> None:
        self.redis.close()


def kpi_generation_key(settings: PlatformSettings) -> str:
    """The counter the API's KPI cache keys carry: bumped when a load is published (after its commit), so
    a request that reads the new value reads the loaded data, and no cached answer of before is found."""
    return f"{settings.kpi_cache_namespace}generation"


def _unacked_keys(settings: PlatformSettings) -> tuple[str, str]:
    return f"{settings.queue_prefix}unacked", f"{settings.queue_prefix}unacked_index"


def _loads(raw: bytes | str | None) -> object:
    try:
        return json.loads(raw) if raw is not None else None
    except ValueError:
        return None


def _task_id_of(message: object) -> str:
    headers = message.get("headers") if isinstance(message, dict) else None
    return str(headers.get("id", "")) if isinstance(headers, dict) else ""
