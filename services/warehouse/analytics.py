"""Refresh of the analytics tables for the dates a load affected (KPI definitions of DESIGN §5).

The additive measures (counts and sums) are maintained by difference: a load writes the facts it changes
into the ``fact_delta`` temp table, each old version with sign -1 and each new one with sign +1 (a sales
load: the facts it replaced and their new records; a dimension load: the facts whose version, or its
category or region, moved), and adds the signed sums to ``daily_sales``, ``daily_category_sales``,
``daily_payment_method_sales`` and ``daily_product_sales``; a group left without transactions loses its
row.

What is not additive (distinct customers, the region table that carries them, new vs returning customers)
is handled per date. A date the delta changed a good share of (``BulkPolicy.min_share`` of its
transactions, in a load of at least ``min_rows``: a batch of new days) is rebuilt from one scan of its
facts bound to their point-in-time customer versions. On every other date the figures move by the
customers that start or stop counting there: a customer counts on a day while it has a completed
transaction that day, so only the (date, customer) pairs the delta touches, and the old and new first-order
dates of customers whose first order moved (new vs returning changes there and nowhere else), are read
from the facts. A load that re-sends a few transactions of every past day thus reads a few thousand facts,
not the year.

``customer_summary`` is moved by difference too for a sales load's customers that only gained completed
orders, and recounted from the facts for those that lost one.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.warehouse.bulk import BulkPolicy
from services.warehouse.sql import source, statement

# sql/analytics/25_product_rebuilt_insert's order while daily_product_sales's indexes are maintained.
KEY_ORDER = "ORDER BY date, product_id"


async def run(conn: AsyncConnection, *names: str, batch_id: uuid.UUID | None = None) -> None:
    """The statements ``names`` of sql/analytics/ in order; those that write a table take ``batch_id``."""
    for name in names:
        await conn.execute(statement(f"analytics/{name}"), {} if batch_id is None else {"batch_id": batch_id})


async def count(conn: AsyncConnection, name: str) -> int:
    return int((await conn.execute(statement(f"analytics/{name}"))).scalar_one())


async def refresh_customer_summary(conn: AsyncConnection, batch_id: uuid.UUID) -> None:
    """Move the summaries of the customers whose completed facts changed (``fact_delta``); a moved first-order
    date goes to ``first_order_moves`` and its old and new dates become affected."""
    await run(conn, "01_summary_delta", "02_first_orders_before")
    await run(
        conn,
        "03_summary_add",
        "04_summary_insert",
        "05_summary_recount_delete",
        "06_summary_recount_insert",
        batch_id=batch_id,
    )
    await run(
        conn,
        "07_first_orders_after",
        "08_first_orders_unmoved",
        "09_first_orders_affected_dates",
        "10_drop_summary_delta",
    )


async def read_rebuilt_facts(conn: AsyncConnection) -> None:
    """``refresh_facts``: every fact of the rebuilt dates, from the delta where it holds all of a date's facts."""
    await run(conn, "18_refresh_facts", "19_partial_dates")
    if await count(conn, "20_partial_dates_count"):
        await run(conn, "21_refresh_other_facts")
    await run(conn, "22_analyze_refresh_facts")


@asynccontextmanager
async def grouped_by_sorting(conn: AsyncConnection) -> AsyncIterator[None]:
    """Around statements that group facts into about as many groups as there are facts (a product or a
    customer per day): sorting and then grouping is cheaper there than a hash table of a million groups."""
    before = (await conn.execute(statement("analytics/hashagg_setting"))).scalar_one()
    await run(conn, "hashagg_off")
    # No finally: the setting is local to the transaction, and a statement that fails aborts it, which undoes
    # the setting (a statement sent to an aborted transaction would only hide the error).
    yield
    await conn.execute(statement("analytics/hashagg_restore"), {"before": before})


async def refresh_products(conn: AsyncConnection, batch_id: uuid.UUID, bulk: BulkPolicy) -> None:
    """daily_product_sales: the rebuilt dates recomputed from their facts (``refresh_facts``), with the table's
    indexes rebuilt when that is most of it (bulk.py); the delta added on the other dates."""
    rows = await count(conn, "23_refresh_facts_count")
    async with bulk.indexes(conn, "analytics.daily_product_sales", rows) as suspended:
        await run(conn, "24_product_rebuilt_delete")
        order_by = "" if suspended else KEY_ORDER
        async with grouped_by_sorting(conn):
            rebuilt = source("analytics/25_product_rebuilt_insert").format(order_by=order_by)
            await conn.execute(text(rebuilt), {"batch_id": batch_id})
    await run(conn, "26_daily_product_sales_delta", batch_id=batch_id)


async def move_customer_days(conn: AsyncConnection, batch_id: uuid.UUID) -> None:
    """The distinct-customer figures of the dates not rebuilt, moved by the customers that start or stop
    counting; the region table's additive measures with them."""
    await run(
        conn,
        "31_customer_day_delta",
        "32_activity_pairs",
        "33_customer_days",
        "34_analyze_customer_day_delta",
        "35_analyze_activity_pairs",
        "36_analyze_customer_days",
        "37_customer_day_now",
        "38_analyze_customer_day_now",
    )
    await run(conn, "39_region_delta", batch_id=batch_id)
    await run(conn, "40_activity_delta")
    await run(
        conn,
        "41_region_empty",
        "42_activity_add",
        "43_activity_empty",
        "44_daily_sales_customers",
        "45_daily_sales_average",
        batch_id=batch_id,
    )
    await run(conn, "46_drop_moved")


async def rebuild_dates(conn: AsyncConnection, batch_id: uuid.UUID) -> None:
    """The figures that are not additive, recomputed for the rebuilt dates from their facts (``refresh_facts``)."""
    await run(conn, "47_region_rebuilt_delete", "48_activity_rebuilt_delete")
    async with grouped_by_sorting(conn):
        await run(conn, "49_daily_sales_rebuilt", "50_region_rebuilt", "51_activity_rebuilt", batch_id=batch_id)


async def refresh(conn: AsyncConnection, batch_id: uuid.UUID, bulk: BulkPolicy) -> int:
    """Add the fact delta to the analytics; dates the delta changed a good share of are rebuilt instead where
    the measure is per product or not additive. Returns how many dates were affected."""
    await run(conn, "11_analyze_delta", "12_delta_dates")
    rows = await count(conn, "13_delta_rows")
    await conn.execute(
        statement("analytics/14_rebuilt_dates"), {"large": rows >= bulk.min_rows, "share": bulk.min_share}
    )
    await run(
        conn,
        "15_daily_sales_delta",
        "16_daily_category_sales_delta",
        "17_daily_payment_method_sales_delta",
        batch_id=batch_id,
    )
    await read_rebuilt_facts(conn)
    await refresh_products(conn, batch_id, bulk)
    await run(
        conn,
        "27_daily_sales_empty",
        "28_daily_category_sales_empty",
        "29_daily_payment_method_sales_empty",
        "30_daily_product_sales_empty",
    )
    await move_customer_days(conn, batch_id)
    await rebuild_dates(conn, batch_id)
    dates = await count(conn, "52_affected_dates_count")
    await run(conn, "53_drop")
    return dates
