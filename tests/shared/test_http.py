"""The error handlers both services install: a database that cannot be reached is a 503 with Retry-After,
however the driver said so; any other database error is still a 500."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from shared.http import RETRY_AFTER_SECONDS, DbConnection, install_error_handlers
from shared.settings import PlatformSettings
from tests.conftest import free_port
from tests.http_server import serve

SSL_REQUEST = 80877103


def _app(async_database_url: str) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.engine = create_async_engine(async_database_url, pool_pre_ping=True)
        yield
        await app.state.engine.dispose()

    app = FastAPI(lifespan=lifespan)
    install_error_handlers(app)

    @app.get("/one")
    async def one(conn: DbConnection) -> int:
        return int((await conn.execute(text("SELECT 1"))).scalar_one())

    @app.get("/lost")
    async def lost(conn: DbConnection) -> None:
        await conn.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))

    @app.get("/nul")
    async def nul(conn: DbConnection) -> None:
        await conn.execute(text("SELECT CAST(:v AS text)"), {"v": "a\x00b"})

    return app


def _read(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the client went away")
        data += chunk
    return data


@contextmanager
def refusing_postgres(sqlstate: str, message: str) -> Iterator[int]:
    """A server that speaks PostgreSQL's protocol only to refuse every connection with ``sqlstate``, as a
    server starting up (57P03) or out of connection slots (53300) does; yields its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    fields = b"".join(k + v.encode() + b"\0" for k, v in ((b"S", "FATAL"), (b"C", sqlstate), (b"M", message)))
    error = b"E" + struct.pack("!i", 4 + len(fields) + 1) + fields + b"\0"

    def answer() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                try:
                    length, code = struct.unpack("!ii", _read(conn, 8))
                    if code == SSL_REQUEST:
                        conn.sendall(b"N")
                        (length,) = struct.unpack("!i", _read(conn, 4))
                        _read(conn, length - 4)
                    else:
                        _read(conn, length - 8)
                    conn.sendall(error)
                except ConnectionError:
                    continue

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        # shutdown, not only close, wakes the accept blocked in the other thread.
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        thread.join(timeout=5)


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == str(RETRY_AFTER_SECONDS)
    assert response.json()["error"]["code"] == "database_unavailable"


def test_a_connection_lost_mid_request_is_503_and_the_next_request_reconnects(settings: PlatformSettings) -> None:
    with serve(_app(settings.async_database_url)) as url:
        assert_unavailable(httpx.get(f"{url}/lost"))
        assert httpx.get(f"{url}/one").json() == 1


def test_a_refused_connect_is_503() -> None:
    with serve(_app(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/sdp")) as url:
        assert_unavailable(httpx.get(f"{url}/one"))


@pytest.mark.parametrize(
    ("sqlstate", "message"),
    [("57P03", "the database system is starting up"), ("53300", "sorry, too many clients already")],
)
def test_a_server_that_cannot_take_a_connection_now_is_503(sqlstate: str, message: str) -> None:
    with refusing_postgres(sqlstate, message) as port, serve(_app(f"postgresql+asyncpg://u@127.0.0.1:{port}/d")) as url:
        assert_unavailable(httpx.get(f"{url}/one"))


def test_a_statement_error_is_still_a_500(settings: PlatformSettings) -> None:
    with serve(_app(settings.async_database_url)) as url:
        response = httpx.get(f"{url}/nul")
    assert response.status_code == 500
    assert "retry-after" not in response.headers
