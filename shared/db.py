"""PostgreSQL access: one async engine per process, COPY through asyncpg's raw connection."""

from __future__ import annotations

from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from shared.settings import PlatformSettings

# PostgreSQL's largest bigint (e.g. ``source_line``): a larger integer is refused by the driver.
BIGINT_MAX = 2**63 - 1


def create_engine(settings: PlatformSettings) -> AsyncEngine:
    return create_async_engine(
        settings.async_database_url,
        pool_size=settings.db_pool_size,
        max_overflow=2,
        pool_pre_ping=True,
    )


async def raw_connection(conn: AsyncConnection) -> asyncpg.Connection:
    """The asyncpg connection under a SQLAlchemy connection, inside the same transaction (for COPY)."""
    raw: Any = await conn.get_raw_connection()
    driver: asyncpg.Connection = raw.driver_connection
    return driver
