"""KPI answers cached in Redis, keyed by endpoint, normalized parameters and the load generation.

The warehouse's ``batch.loaded`` moves the generation (``shared.bus.kpi_generation_key``) after its commit;
the key of every answer carries the generation it was computed under, so a load makes every older answer
unreachable at once, with no subscriber and no deletes (they expire after the TTL). The generation is read
before the database: an answer computed from data older than a load is stored under the old generation,
never under the new one. Redis being down is not the caller's failure: the answer is computed, uncached.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import redis.asyncio as aioredis
from fastapi import Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, Counter
from pydantic import BaseModel
from redis.exceptions import RedisError

from services.api.settings import ApiSettings
from shared.bus import kpi_generation_key
from shared.logs import get_logger

log = get_logger(__name__)

# A cache that cannot answer this fast is skipped: a KPI request never waits on a stuck Redis for long.
REDIS_TIMEOUT_SECONDS = 0.5
CACHE_HEADER = "X-Cache"


class KpiCache:
    def __init__(self, settings: ApiSettings, registry: CollectorRegistry) -> None:
        self.ttl = settings.api_kpi_cache_ttl_seconds
        self.namespace = settings.kpi_cache_namespace
        self.generation_key = kpi_generation_key(settings)
        self.redis = aioredis.Redis.from_url(
            settings.redis_url,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        )
        self.lookups = Counter(
            "sdp_api_kpi_cache_requests_total",
            "KPI JSON answers by cache outcome (hit, miss, bypass: cache off or Redis unreachable)",
            ["endpoint", "result"],
            registry=registry,
        )

    def key(self, endpoint: str, params: Mapping[str, Any], generation: int) -> str:
        normalized = json.dumps({k: str(v) for k, v in sorted(params.items())}, separators=(",", ":"))
        digest = hashlib.sha256(normalized.encode()).hexdigest()[:32]
        return f"{self.namespace}{generation}:{endpoint}:{digest}"

    async def answer(
        self,
        endpoint: str,
        params: Mapping[str, Any],
        model: type[BaseModel],
        compute: Callable[[], Awaitable[dict[str, Any]]],
    ) -> Response:
        """The JSON answer of ``endpoint`` for ``params``: from the cache, or computed and stored."""
        key = None
        if self.ttl > 0:
            try:
                generation = int(await self.redis.get(self.generation_key) or 0)
                key = self.key(endpoint, params, generation)
                cached = await self.redis.get(key)
            except (RedisError, OSError) as exc:
                log.warning("kpi_cache.unavailable", error=f"{type(exc).__name__}: {exc}")
                key = None
            else:
                if cached is not None:
                    self.lookups.labels(endpoint, "hit").inc()
                    return _json(cached if isinstance(cached, bytes) else cached.encode(), "hit")
        body = model.model_validate(await compute()).model_dump_json(by_alias=True).encode()
        if key is None:
            self.lookups.labels(endpoint, "bypass").inc()
            return _json(body, "bypass")
        self.lookups.labels(endpoint, "miss").inc()
        try:
            await self.redis.set(key, body, ex=self.ttl)
        except (RedisError, OSError) as exc:
            log.warning("kpi_cache.unavailable", error=f"{type(exc).__name__}: {exc}")
        return _json(body, "miss")

    async def close(self) -> None:
        await self.redis.aclose()


def _json(body: bytes, result: str) -> Response:
    # A returned Response drops the headers dependencies set: the KPI routes answer JSON or a file by
    # Accept (services/api/exports.py), so HTTP caches must keep them apart.
    return Response(body, media_type="application/json", headers={CACHE_HEADER: result, "Vary": "Accept"})


# async, as services/api/deps.py says why.
async def kpi_cache(request: Request) -> KpiCache:
    cache: KpiCache = request.app.state.kpi_cache
    return cache
