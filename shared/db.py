"""PostgreSQL access: one async engine per process, COPY through asyncpg's raw connection."""

from __future__ import annotations

import socket
from typing import Any

import asyncpg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from shared.settings import PlatformSettings

# PostgreSQL's largest bigint (e.g. ``source_line``): a larger integer is refused by the driver.
BIGINT_MAX = 2**63 - 1

# What asyncpg raises when the server is down, starting, shutting down, out of connection slots or gone
# mid-statement; a connect that fails on the socket raises the OS's error instead.
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
    ConnectionError,
    TimeoutError,
    socket.gaierror,
)


def create_engine(settings: PlatformSettings) -> AsyncEngine:
    return create_async_engine(
        settings.async_database_url,
        pool_size=settings.db_pool_size,
        max_overflow=2,
        pool_pre_ping=True,
    )


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot be reached now (a retry later may succeed), rather than
    that a statement is wrong. SQLAlchemy wraps asyncpg's errors: the cause chain holds the original."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, UNAVAILABLE_ERRORS):
            return True
        seen = seen.__cause__
    return False


async def raw_connection(conn: AsyncConnection) -> asyncpg.Connection:
    """The asyncpg connection under a SQLAlchemy connection, inside the same transaction (for COPY)."""
    raw: Any = await conn.get_raw_connection()
    driver: asyncpg.Connection = raw.driver_connection
    return driver
