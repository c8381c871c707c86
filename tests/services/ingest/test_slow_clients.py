"""Slow clients over raw sockets: they hold no thread or connection an ordinary upload needs, and a body that
stalls past the idle timeout is cut with 408 and leaves nothing behind."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from ops.admin import create_key
from services.ingest.app import create_app
from services.ingest.formats import HEAD_LIMIT
from services.ingest.settings import IngestSettings
from shared.settings import PlatformSettings
from tests.conftest import settings_from
from tests.http_server import serve
from tests.services.ingest.test_ingest_api import multipart_body, unique_csv

UPLOAD_THREADS = 2
# More than the upload pool, the default executor (which uploads used to share) and the database pool.
SLOW_CLIENTS = max(UPLOAD_THREADS, min(32, (os.cpu_count() or 1) + 4)) + 2
# Far below how long the slow clients stall (until the test ends, the server's idle timeout being 60 s).
PROMPT_SECONDS = 10


@pytest.fixture(scope="module")
def writer_key(settings: PlatformSettings) -> str:
    return asyncio.run(create_key(settings, name="slow-clients-test", scopes=["ingest:write"]))


def open_upload(url: str, key: str, *, content_type: str, length: int, first: bytes) -> socket.socket:
    """A raw-body upload announcing ``length`` bytes of which only ``first`` are sent."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port))
    request = (
        f"POST /v1/datasets/sales/files HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {length}\r\n\r\n"
    )
    sock.sendall(request.encode() + first)
    return sock


def read_response(sock: socket.socket, timeout: float) -> tuple[int, dict[str, str], dict[str, Any]]:
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the connection closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    while len(body) < int(headers["content-length"]):
        chunk = sock.recv(65536)
        assert chunk, "the connection closed inside the response"
        body += chunk
    return int(status_line.split()[1]), headers, json.loads(body)


def closed_by_server(sock: socket.socket, timeout: float) -> bool:
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def past_the_head(tag: str) -> bytes:
    """A valid sales CSV longer than the part the contract check reads before anything is stored."""
    body = unique_csv(tag, rows=HEAD_LIMIT // 40)
    assert len(body) > HEAD_LIMIT + 64 * 1024
    return body


def test_slow_clients_do_not_delay_an_ordinary_upload(test_env: dict[str, str], writer_key: str) -> None:
    """Eight uploads stalled mid-body (past the head, where the store writer used to hold a thread) while
    a 1 KB upload is sent: it is answered as if they were not there. The database pool is smaller than
    their number too: none of them holds a connection while its body arrives."""
    settings = settings_from(
        test_env,
        IngestSettings,
        ingest_upload_threads=UPLOAD_THREADS,
        ingest_body_idle_timeout_seconds=60,
        db_pool_size=1,
    )
    with serve(create_app(settings)) as url, ExitStack() as slow:
        for i in range(SLOW_CLIENTS):
            body = past_the_head(f"slow-{i}-{time.time_ns()}")
            sock = open_upload(url, writer_key, content_type="text/csv", length=len(body), first=body[: -32 * 1024])
            slow.callback(sock.close)
        time.sleep(1)  # the server has read what they sent and waits for the rest

        ordinary = unique_csv(f"ordinary-{time.time_ns()}", rows=10)
        assert 900 < len(ordinary) < 1200
        started = time.monotonic()
        response = httpx.post(
            f"{url}/v1/datasets/sales/files",
            content=ordinary,
            headers={"Authorization": f"Bearer {writer_key}", "Content-Type": "text/csv"},
            timeout=PROMPT_SECONDS + 5,
        )
        elapsed = time.monotonic() - started
    assert response.status_code == 202, response.text
    assert elapsed < PROMPT_SECONDS, f"the ordinary upload took {elapsed:.1f} s"


@pytest.fixture
def idle_ingest(test_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An ingest whose idle timeout is 1 s, on a local store of its own: a partial object would be a file."""
    objects = tmp_path / "objects"
    env = {**test_env, "SDP_OBJECT_STORE_URL": f"file://{objects}"}
    settings = settings_from(env, IngestSettings, ingest_body_idle_timeout_seconds=1)
    with serve(create_app(settings)) as url:
        yield url, objects / settings.bucket_raw


@pytest.mark.parametrize("where", ["in-the-head", "past-the-head", "multipart-past-the-head"])
def test_a_body_that_stalls_is_cut_with_408_and_stores_nothing(
    idle_ingest: tuple[str, Path], writer_key: str, where: str
) -> None:
    url, raw_bucket = idle_ingest
    data = past_the_head(f"stall-{where}-{time.time_ns()}")
    content_type = "text/csv"
    body = data
    if where.startswith("multipart"):
        content_type = "multipart/form-data; boundary=stall"
        body = multipart_body("stall", [("file", "s.csv", "text/csv", data)])
    sent = 100 if where == "in-the-head" else len(body) - 32 * 1024

    started = time.monotonic()
    with open_upload(url, writer_key, content_type=content_type, length=len(body), first=body[:sent]) as sock:
        status, headers, error = read_response(sock, timeout=30)
        waited = time.monotonic() - started
        assert closed_by_server(sock, timeout=10), "the connection stayed open after the 408"
    assert status == 408, error
    assert error["error"]["code"] == "body_timeout"
    assert error["error"]["details"] == {"idle_timeout_seconds": 1}
    assert headers["connection"] == "close"
    assert 1 <= waited < 10
    assert [p for p in raw_bucket.rglob("*") if p.is_file()] == [], "a partial object was left"

    again = httpx.post(
        f"{url}/v1/datasets/sales/files",
        content=body,
        headers={"Authorization": f"Bearer {writer_key}", "Content-Type": content_type},
        timeout=30,
    )
    assert again.status_code == 202, again.text
    assert again.json()["size_bytes"] == len(data)


def test_a_body_arriving_slowly_but_steadily_is_not_cut(idle_ingest: tuple[str, Path], writer_key: str) -> None:
    """The timeout is on silence, not on the whole body: bytes every half second keep it alive."""
    url, _ = idle_ingest
    body = unique_csv(f"steady-{time.time_ns()}", rows=6)

    def trickle() -> Iterator[bytes]:
        for offset in range(0, len(body), 100):
            yield body[offset : offset + 100]
            time.sleep(0.5)

    response = httpx.post(
        f"{url}/v1/datasets/sales/files",
        content=trickle(),
        headers={"Authorization": f"Bearer {writer_key}", "Content-Type": "text/csv"},
        timeout=30,
    )
    assert response.status_code == 202, response.text
