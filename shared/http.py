"""What both HTTP services share: the error envelope, request metrics, API-key auth and the read connection.

A dependency that is down (PostgreSQL, or Redis for the live events) is a 503 with ``Retry-After``, on every
route of both services: the error handlers here turn the driver's errors into it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.auth import Principal, authenticate
from shared.db import database_unavailable
from shared.logs import get_logger

log = get_logger(__name__)

# Seconds a client is told to wait before retrying while a dependency is down.
RETRY_AFTER_SECONDS = 5


class ApiError(Exception):
    """An error with its HTTP status, rendered as ``{"error": {"code", "message", "details"}}``."""

    def __init__(
        self, status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details if details is not None else {}
        self.headers = headers


class ServiceUnavailable(ApiError):
    """A 503 for a dependency that is down: the client may retry after ``RETRY_AFTER_SECONDS``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(503, code, message, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        status_code=status,
        content={"error": {"code": code, "message": message, "details": details if details is not None else {}}},
        headers=headers,
    )


def _render(exc: ApiError) -> JSONResponse:
    return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)


def install_error_handlers(app: FastAPI) -> None:
    async def api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return _render(exc)

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return error_response(exc.status_code, "http_error", str(exc.detail))

    async def validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        details = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
        return error_response(422, "invalid_request", "the request is not valid", details)

    async def database_error(request: Request, exc: Exception) -> JSONResponse:
        # Registered for the driver's base classes (a refused connect is the OS's error): any other error of
        # theirs is a defect, answered 500 as before.
        if not database_unavailable(exc):
            raise exc
        log.warning("http.database_unavailable", path=request.url.path, error=f"{type(exc).__name__}: {exc}")
        return _render(ServiceUnavailable("database_unavailable", "the database is not reachable; retry later"))

    async def broker_error(request: Request, exc: Exception) -> JSONResponse:
        log.warning("http.broker_unavailable", path=request.url.path, error=f"{type(exc).__name__}: {exc}")
        return _render(ServiceUnavailable("broker_unavailable", "the message broker is not reachable; retry later"))

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    for driver_error in (DBAPIError, OSError):
        app.add_exception_handler(driver_error, database_error)
    for redis_error in (RedisConnectionError, RedisTimeoutError):
        app.add_exception_handler(redis_error, broker_error)


class RequestMetrics:
    """Counts and times every HTTP request by its route template.

    Plain ASGI rather than ``@app.middleware("http")``: that wrapper adds a task group to every read of
    the request body, which slows large uploads.
    """

    def __init__(self, app: ASGIApp, *, service: str, requests: Counter, latency: Histogram) -> None:
        self.app = app
        self.service = service
        self.requests = requests
        self.latency = latency

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        finally:
            template = getattr(scope.get("route"), "path", "unmatched")
            self.requests.labels(self.service, scope["method"], template, str(status)).inc()
            self.latency.labels(self.service, scope["method"], template).observe(time.perf_counter() - started)


class _Snapshot:
    """A collector of metric families read once, for one scrape."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self.families


# What a service reads at scrape time (its dependencies' state), beside the registry's own metrics.
ScrapeHook = Callable[[Request], Awaitable[Iterable[Metric]]]


def install_metrics(app: FastAPI, service: str, scrape: ScrapeHook | None = None) -> CollectorRegistry:
    """Request counts and latencies per route template, served at ``GET /metrics``, with the families
    ``scrape`` reads for each scrape (asynchronously, so a slow dependency holds no thread)."""
    registry = CollectorRegistry()
    requests = Counter(
        "sdp_http_requests_total", "HTTP requests", ["service", "method", "route", "status"], registry=registry
    )
    latency = Histogram(
        "sdp_http_request_seconds", "HTTP request latency", ["service", "method", "route"], registry=registry
    )
    app.add_middleware(RequestMetrics, service=service, requests=requests, latency=latency)

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        body = generate_latest(registry)
        if scrape is not None:
            scraped = CollectorRegistry(auto_describe=False)
            scraped.register(_Snapshot(await scrape(request)))
            body += generate_latest(scraped)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return registry


def engine_of(request: Request) -> AsyncEngine:
    engine: AsyncEngine = request.app.state.engine
    return engine


async def _connection(request: Request) -> AsyncIterator[AsyncConnection]:
    async with engine_of(request).connect() as conn:
        yield conn


# A handler's database connection for reads: handlers take it rather than opening one. Writes that must
# publish after their commit take the engine and own their transaction (shared/batches.py).
DbConnection = Annotated[AsyncConnection, Depends(_connection)]


# Declared in the OpenAPI documents as the scheme of every operation that takes a key; auto_error is off so
# that a missing key is answered in the platform's error envelope, by ``require_scope``.
BEARER = HTTPBearer(
    auto_error=False,
    description="an API key (`sdp_…`), created with `python -m ops.admin create-key` or `POST /v1/keys`",
)


def _presented_key(request: Request, credentials: HTTPAuthorizationCredentials | None) -> str | None:
    if credentials is not None:
        return credentials.credentials.strip() or None
    return request.headers.get("x-api-key") or None


def require_scope(scope: str | None) -> Callable[..., Awaitable[Principal]]:
    """A dependency that admits a request whose API key carries ``scope`` (or ``admin``); None: any key."""

    async def dependency(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)]
    ) -> Principal:
        presented = _presented_key(request, credentials)
        if presented is None:
            raise ApiError(401, "unauthenticated", "an API key is required (Authorization: Bearer <key>)")
        interval = request.app.state.settings.api_key_last_used_interval_seconds
        async with engine_of(request).begin() as conn:
            principal = await authenticate(conn, presented, last_used_interval_seconds=interval)
        if principal is None:
            raise ApiError(401, "unauthenticated", "the API key is not valid")
        if scope is not None and not principal.allows(scope):
            raise ApiError(403, "forbidden", f"the API key lacks the scope {scope}", {"required_scope": scope})
        return principal

    return dependency


def _scoped(scope: str) -> Any:
    # The scope is declared on the security requirement too, so that the OpenAPI documents name the scope
    # each operation needs (OpenAPI 3.1 allows role names on an http scheme) and that it can answer 403.
    return Security(require_scope(scope), scopes=[scope])


Authenticated = Annotated[Principal, Depends(require_scope(None))]
IngestWriter = Annotated[Principal, _scoped("ingest:write")]
KpiReader = Annotated[Principal, _scoped("kpis:read")]
BatchReader = Annotated[Principal, _scoped("batches:read")]
Admin = Annotated[Principal, _scoped("admin")]
