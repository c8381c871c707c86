"""The HTTP(S) connector: a GET whose response body streams into the service as a file."""

from __future__ import annotations

import posixpath
from collections.abc import Awaitable, Callable, Sequence

import httpx

from services.ingest.service import Accepted, IngestService, Upload, parse_dataset, safe_file_name
from shared.http import ApiError
from shared.logs import get_logger
from shared.objectstore import CHUNK_SIZE

log = get_logger(__name__)


def _source_url(url: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise ApiError(400, "invalid_source", f"not a valid URL: {exc}") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ApiError(
            400, "invalid_source", "only http and https URLs can be pulled", {"scheme": parsed.scheme or None}
        )
    return parsed


def host_allowed(host: str, allowed: Sequence[str]) -> bool:
    """``host`` is one of ``allowed`` (names, or ``*.example.com`` for any name below example.com)."""
    host = host.lower().rstrip(".")
    for pattern in (p.lower().rstrip(".") for p in allowed):
        if host == pattern or (pattern.startswith("*.") and host.endswith(pattern[1:])):
            return True
    return False


def _host_check(allowed: Sequence[str] | None) -> Callable[[httpx.Request], Awaitable[None]]:
    """An httpx request hook: every request of a pull, redirects included, goes to an allowed host."""

    async def check(request: httpx.Request) -> None:
        if allowed is not None and not host_allowed(request.url.host, allowed):
            raise ApiError(400, "invalid_source", "the host is not an allowed source", {"host": request.url.host})

    return check


def _redacted(url: httpx.URL) -> str:
    """The URL without credentials or query string (either may hold a secret)."""
    port = f":{url.port}" if url.port else ""
    return f"{url.scheme}://{url.host}{port}{url.path}"


async def pull_http(
    service: IngestService,
    *,
    dataset: str,
    url: str,
    idempotency_key: str | None = None,
) -> Accepted:
    """GET ``url`` and stream the response body into :meth:`IngestService.accept` as a file of ``dataset``.

    The file name is the URL path's last segment; Content-Type and Content-Encoding come from the response
    (a gzip body is stored as it came, compressed). A non-2xx answer, a connection error or a timeout
    (``ingest_http_timeout_seconds`` between bytes) is a 502 ``source_error``.
    Redirects are followed. When ``ingest_http_allowed_hosts`` is set, every request (each redirect too) must
    go to one of those hosts: unset, a client with ``ingest:write`` can make the service fetch any URL it can
    reach, internal ones included.
    """
    ds = parse_dataset(dataset)
    source = _source_url(url)
    where = _redacted(source)
    request_headers = httpx.Headers({"Accept-Encoding": "gzip, identity"})
    try:
        async with (
            httpx.AsyncClient(
                timeout=service.settings.ingest_http_timeout_seconds,
                follow_redirects=True,
                event_hooks={"request": [_host_check(service.settings.ingest_http_allowed_hosts)]},
            ) as client,
            client.stream("GET", source, headers=request_headers) as response,
        ):
            if not response.is_success:
                raise ApiError(
                    502,
                    "source_error",
                    f"the source answered HTTP {response.status_code}",
                    {"upstream_status": response.status_code, "url": where},
                )
            encoding = response.headers.get("content-encoding", "").strip().lower()
            if encoding in ("", "identity", "gzip", "x-gzip"):
                # The bytes as sent: a gzip body is checked (and stored) as gzip by the service.
                chunks = response.aiter_raw(CHUNK_SIZE)
            else:
                # Another coding (deflate, br) is undone here: the service reads only gzip.
                chunks, encoding = response.aiter_bytes(CHUNK_SIZE), ""
            upload = Upload(
                dataset=ds,
                file_name=safe_file_name(posixpath.basename(source.path)),  # httpx decodes the path
                content_type=response.headers.get("content-type", ""),
                chunks=chunks,
                idempotency_key=idempotency_key,
                content_encoding="" if encoding == "identity" else encoding,
            )
            accepted = await service.accept(upload)
    except httpx.TimeoutException as exc:
        raise ApiError(
            502, "source_error", "the source did not answer in time", {"url": where, "reason": "timeout"}
        ) from exc
    except httpx.HTTPError as exc:
        raise ApiError(
            502,
            "source_error",
            f"the source could not be read: {type(exc).__name__}",
            {"url": where, "reason": type(exc).__name__},
        ) from exc
    log.info("connector.http.pulled", dataset=ds.value, url=where, batch_id=str(accepted.batch_id))
    return accepted
