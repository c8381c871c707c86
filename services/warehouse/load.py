"""The warehouse loads: the steps of one batch's load, in order (their statements are sql/). A load's input is
the batch id alone; each load runs inside the caller's transaction and never commits."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from services.warehouse import analytics, delta, dimensions
from services.warehouse.bulk import BulkPolicy, estimated_rows
from services.warehouse.sql import statement
from shared.datasets import WAREHOUSE_LOCK_KEYS as LOCK_KEYS

# A dimension load writing at least this many versions, and this share of the rows the planner knows of,
# refreshes the dimension's statistics.
ANALYZE_AFTER_VERSIONS = 1_000
ANALYZE_AFTER_SHARE = 0.2


@dataclass(frozen=True)
class LoadResult:
    facts: int  # facts inserted or updated (a dimension load: facts re-bound to another version)
    dates: int  # dates whose analytics were refreshed
    versions: int = 0  # dimension versions inserted or whose attributes changed
    removed: int = 0  # dimension versions merged away


async def analyze(conn: AsyncConnection, table: str) -> None:
    """Fresh planner statistics of a table a load changed much of."""
    await conn.execute(statement("load/analyze_table"), {"table": table})


async def begin(conn: AsyncConnection, *datasets: str) -> None:
    """What every load starts with: the locks of ``datasets``, its memory, the temporary tables its steps share."""
    for dataset in sorted(datasets, key=list(LOCK_KEYS).index):
        await conn.execute(statement("load/01_lock"), {"key": LOCK_KEYS[dataset]})
    await conn.execute(statement("load/02_work_mem"))
    await delta.create(conn)


async def load_sales(conn: AsyncConnection, batch_id: uuid.UUID, bulk: BulkPolicy) -> LoadResult:
    """dim_date, inferred members, facts and the analytics of the dates they are on, for one sales batch."""
    params = {"batch_id": batch_id}
    await begin(conn, "customers", "products", "sales")
    for name in (
        "sales/01_dim_date",
        "sales/02_inferred_customers",
        "sales/03_inferred_products",
        "sales/04_old_facts",
        "sales/05_affected_dates",
    ):
        await conn.execute(statement(name), params)
    rows = (await conn.execute(statement("sales/06_staged_rows"), params)).scalar_one()
    async with bulk.indexes(conn, "processed.fact_sales", rows) as rebuilt:
        await conn.execute(statement("sales/07_bind_batch"), params)
        await conn.execute(statement("sales/08_analyze_batch"))
        facts = (await conn.execute(statement("sales/09_update_facts"))).rowcount
        facts += (await conn.execute(statement("sales/10_insert_facts"))).rowcount
        await conn.execute(statement("sales/11_new_facts_delta"))
        await conn.execute(statement("sales/12_drop_batch"))
    if rebuilt:
        await analyze(conn, "processed.fact_sales")
    await conn.execute(statement("sales/13_unchanged_facts"))
    await analytics.refresh_customer_summary(conn, batch_id)
    dates = await analytics.refresh(conn, batch_id, bulk)
    await delta.drop(conn)
    return LoadResult(facts=int(facts), dates=dates)


async def load_dimension(conn: AsyncConnection, dataset: str, batch_id: uuid.UUID, bulk: BulkPolicy) -> LoadResult:
    """SCD2 merge of one customers or products batch, facts re-bound, analytics of the dates that moved."""
    await begin(conn, dataset, "sales")
    merged = await dimensions.merge(conn, dataset, batch_id)
    table = dimensions.DIMENSIONS[dataset].table
    if merged.versions_written >= max(ANALYZE_AFTER_VERSIONS, ANALYZE_AFTER_SHARE * await estimated_rows(conn, table)):
        # The sales load that follows binds its facts to these versions: the planner should know them.
        await analyze(conn, table)
    dates = await analytics.refresh(conn, batch_id, bulk)
    await delta.drop(conn)
    return LoadResult(
        facts=merged.facts_rebound, dates=dates, versions=merged.versions_written, removed=merged.versions_removed
    )


async def load(conn: AsyncConnection, dataset: str, batch_id: uuid.UUID, bulk: BulkPolicy) -> LoadResult:
    if dataset == "sales":
        return await load_sales(conn, batch_id, bulk)
    return await load_dimension(conn, dataset, batch_id, bulk)
