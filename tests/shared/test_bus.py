"""The event bus against the machine's Redis: what warming it up leaves ready."""

from __future__ import annotations

import uuid

import pytest
import redis
from kombu.exceptions import OperationalError

from shared.bus import ROUTES, EventBus
from shared.settings import PlatformSettings


def test_warm_up_connects_and_declares_every_consumer_queue(base_settings: PlatformSettings) -> None:
    """After warm_up the first publish has nothing left to set up: each route's queue is bound already."""
    prefix = f"test-warm-{uuid.uuid4().hex[:8]}-"
    settings = base_settings.model_copy(update={"queue_prefix": prefix})
    client = redis.Redis.from_url(settings.redis_url)
    bus = EventBus(settings)
    try:
        bus.warm_up()
        bound = {key.decode() for key in client.scan_iter(match=f"_kombu.binding.{prefix}*")}
        assert bound == {f"_kombu.binding.{settings.queue(route.service)}" for route in ROUTES.values()}
    finally:
        bus.close()
        for key in client.scan_iter(match=f"*{prefix}*"):
            client.delete(key)
        client.close()


def test_warm_up_raises_when_the_broker_is_unreachable(base_settings: PlatformSettings) -> None:
    """The ingest service logs this and starts anyway (its outbox holds events until the broker is back)."""
    settings = base_settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    bus = EventBus(settings)
    try:
        with pytest.raises(OperationalError):
            bus.warm_up()
    finally:
        bus.close()
