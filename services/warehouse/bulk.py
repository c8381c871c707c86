"""When a load rebuilds a table's indexes instead of maintaining them row by row.

Adding a row to a B-tree costs a descent and, once the index outgrows shared buffers, a page written out of
order; building the index again sorts the whole table once. So a load that adds many rows to a table it
would double drops the table's indexes (``ops.suspend_indexes``, migration 0010) and builds them again
afterwards (``ops.restore_indexes``), both inside its transaction: readers of that table wait for the
load's commit, and a load that fails leaves the indexes as they were. Rebuilding costs in proportion to the
whole table and maintaining in proportion to the rows added, which breaks even near a fifth of the table.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from services.warehouse.sql import statement


async def estimated_rows(conn: AsyncConnection, table: str) -> float:
    """The rows the planner believes ``table`` holds (0 for one never analyzed)."""
    return float((await conn.execute(statement("bulk/01_estimated_rows"), {"table": table})).scalar_one())


@dataclass(frozen=True)
class BulkPolicy:
    """A load adding ``rows`` to a table rebuilds its indexes when ``rows`` is at least ``min_rows`` and at
    least ``min_share`` of the rows the table holds (the planner's estimate)."""

    min_rows: int = 50_000
    min_share: float = 0.25

    async def applies(self, conn: AsyncConnection, table: str, rows: int) -> bool:
        if rows < self.min_rows:
            return False
        return rows >= self.min_share * await estimated_rows(conn, table)

    @asynccontextmanager
    async def indexes(self, conn: AsyncConnection, table: str, rows: int) -> AsyncIterator[bool]:
        """Around the statements adding ``rows`` to ``table``; yields whether its indexes are suspended."""
        bulk = await self.applies(conn, table, rows)
        if bulk:
            await conn.execute(statement("bulk/02_suspend_indexes"), {"table": table})
        yield bulk
        if bulk:
            await conn.execute(statement("bulk/03_restore_indexes"), {"table": table})
