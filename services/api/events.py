"""The live stream of batch events (``GET /v1/events``): server-sent events from the bus's Redis channel.

Every event a stage records is also published on ``settings.events_channel`` (shared/bus.py). A client
reconnecting with ``Last-Event-ID`` first gets the events recorded after that one from ``ops.batch_events``
(the outbox every event passes through), then the live ones; an event seen in both is sent once. A comment
line every ``KEEPALIVE_SECONDS`` keeps proxies from closing an idle stream and notices a gone client.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from fastapi import Request
from pydantic import ValidationError
from redis.asyncio.client import PubSub

from services.api import repository
from services.api.settings import ApiSettings
from shared.events import AnalyticsBackfilled, Event, StreamEvent, parse_event, parse_stream_event
from shared.http import engine_of
from shared.logs import get_logger

log = get_logger(__name__)

KEEPALIVE_SECONDS = 15.0
POLL_SECONDS = 1.0
REPLAY_LIMIT = 10_000


def _event(data: str | bytes) -> Event | None:
    try:
        return parse_event(json.loads(data))
    except (ValueError, ValidationError):
        log.warning("events.unreadable_message")
        return None


def _stream_event(data: str | bytes) -> StreamEvent | None:
    try:
        return parse_stream_event(json.loads(data))
    except (ValueError, ValidationError):
        log.warning("events.unreadable_message")
        return None


def _frame(event: StreamEvent) -> str:
    if isinstance(event, AnalyticsBackfilled):
        # No id: it is not in the outbox, so as a client's Last-Event-ID it would find nothing to resume from.
        return f"event: {event.type}\ndata: {event.model_dump_json()}\n\n"
    return f"id: {event.event_id}\nevent: {event.type}\ndata: {event.model_dump_json()}\n\n"


async def open_stream(
    request: Request, settings: ApiSettings, *, batch_id: uuid.UUID | None, last_event_id: uuid.UUID | None
) -> AsyncIterator[str]:
    """The stream's frames. Subscribes and reads the replay before the response starts: Redis or PostgreSQL
    being down is then an error response (503), not a 200 cut short."""
    client = aioredis.Redis.from_url(settings.redis_url)
    pubsub = client.pubsub()
    try:
        # Subscribed before the replay is read: nothing published in between is missed.
        await pubsub.subscribe(settings.events_channel)
        backlog: list[Event] = []
        if last_event_id is not None:
            async with engine_of(request).connect() as conn:
                payloads = await repository.events_after(conn, last_event_id, REPLAY_LIMIT)
            backlog = [e for e in map(_event, payloads) if e is not None and batch_id in (None, e.batch_id)]
    except BaseException:
        await pubsub.aclose()
        await client.aclose()
        raise
    return _frames(request, client, pubsub, batch_id=batch_id, backlog=backlog)


async def _frames(
    request: Request, client: aioredis.Redis, pubsub: PubSub, *, batch_id: uuid.UUID | None, backlog: list[Event]
) -> AsyncIterator[str]:
    try:
        yield ": connected\n\n"
        replayed = {event.event_id for event in backlog}
        for replay in backlog:
            yield _frame(replay)
        idle = 0.0
        while not await request.is_disconnected():
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=POLL_SECONDS)
            if message is None:
                idle += POLL_SECONDS
                if idle >= KEEPALIVE_SECONDS:
                    idle = 0.0
                    yield ": keep-alive\n\n"
                continue
            event = _stream_event(message["data"])
            if event is None or event.event_id in replayed:
                continue
            # An operation's event (a backfill) concerns no one batch: only the unfiltered stream carries it.
            if batch_id is not None and (isinstance(event, AnalyticsBackfilled) or event.batch_id != batch_id):
                continue
            idle = 0.0
            yield _frame(event)
    finally:
        await pubsub.aclose()
        await client.aclose()
