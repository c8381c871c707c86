"""The temporary tables a load's steps hand each other, declared here once (sql/delta/).

- ``affected_dates``: the dates whose analytics the load moves;
- ``fact_delta``: every fact version the load removes (sign -1) or writes (sign +1), with what the analytics
  group it by, which the analytics add up (analytics.py);
- ``first_order_moves``: the customers whose first-order date a sales load moves.

A load creates them first, its steps fill them (sql/sales/, sql/dimensions/), the analytics read them, and the
load drops them last. Tables a single module works with (``batch_facts``, ``scd_*``, the analytics' own) are
created, filled and dropped by that module's statements alone.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from services.warehouse.sql import statement


async def create(conn: AsyncConnection) -> None:
    for name in ("delta/01_affected_dates", "delta/02_fact_delta", "delta/03_first_order_moves"):
        await conn.execute(statement(name))


async def drop(conn: AsyncConnection) -> None:
    await conn.execute(statement("delta/04_drop"))
