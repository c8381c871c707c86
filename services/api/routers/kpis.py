"""KPIs over a date range: the days, the summary, the breakdowns and the top products; each as JSON, or as
a CSV or Parquet file streamed from a cursor (services/api/exports.py)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncConnection

from services.api import repository
from services.api.cache import KpiCache, kpi_cache
from services.api.exports import RESPONSES, Export, ExportAs, single_row
from services.api.schemas import (
    CategoriesOut,
    CategoryOut,
    DailyKpisOut,
    DayKpisOut,
    Grain,
    KpiSummaryOut,
    PaymentMethodOut,
    PaymentMethodsOut,
    StateOut,
    StatesOut,
    TopProductOut,
    TopProductsOut,
)
from shared.http import ApiError, DbConnection, KpiReader

router = APIRouter(prefix="/v1/kpis", responses=RESPONSES)

MAX_RANGE_DAYS = 3660

From = Annotated[date, Query(alias="from")]
To = Annotated[date, Query(alias="to")]
# JSON answers come from the KPI cache (services/api/cache.py); exports are streamed, never cached.
Cache = Annotated[KpiCache, Depends(kpi_cache)]

# breakdown -> its row's model, for the types of an export's columns
BREAKDOWN_ROWS: dict[str, type[BaseModel]] = {
    "categories": CategoryOut,
    "payment_methods": PaymentMethodOut,
    "states": StateOut,
}


def check_range(start: date, end: date) -> None:
    if end < start:
        raise ApiError(400, "invalid_range", "'to' is before 'from'")
    if (end - start).days > MAX_RANGE_DAYS:
        raise ApiError(400, "invalid_range", f"a range spans at most {MAX_RANGE_DAYS} days")


BREAKDOWN_ANSWERS: dict[str, type[BaseModel]] = {
    "categories": CategoriesOut,
    "payment_methods": PaymentMethodsOut,
    "states": StatesOut,
}


async def _breakdown(
    conn: AsyncConnection, cache: KpiCache, export: Export | None, name: str, start: date, end: date
) -> Any:
    check_range(start, end)
    if export:
        rows = await repository.stream_breakdown(conn, name, start=start, end=end, chunk_rows=export.chunk_rows)
        return export.response(name.replace("_", "-"), start, end, BREAKDOWN_ROWS[name], rows)

    async def compute() -> dict[str, Any]:
        return {"from": start, "to": end, name: await repository.breakdown(conn, name, start=start, end=end)}

    return await cache.answer(name, {"from": start, "to": end}, BREAKDOWN_ANSWERS[name], compute)


@router.get("/daily", response_model=DailyKpisOut)
async def daily_kpis(
    _: KpiReader,
    export: ExportAs,
    conn: DbConnection,
    cache: Cache,
    start: From,
    end: To,
    grain: Annotated[
        Grain,
        Query(
            description="day (the default), week (ISO weeks, Monday first) or month (calendar months): the "
            "range's days summed into periods, each named by its first day (`date`) and holding only the range's "
            "days; sums are exact, average order value is the period's revenue / orders and distinct customers "
            "are counted from the facts, each customer once per period"
        ),
    ] = "day",
) -> Any:
    """The days of the range, oldest first; with ``grain`` its weeks or months. Days without sales are absent."""
    check_range(start, end)
    if export:
        rows = await repository.stream_daily_kpis(conn, start=start, end=end, grain=grain, chunk_rows=export.chunk_rows)
        return export.response("daily" if grain == "day" else f"{grain}ly", start, end, DayKpisOut, rows)

    async def compute() -> dict[str, Any]:
        days = await repository.daily_kpis(conn, start=start, end=end, grain=grain)
        return {"from": start, "to": end, "grain": grain, "days": days}

    return await cache.answer("daily", {"from": start, "to": end, "grain": grain}, DailyKpisOut, compute)


@router.get("/summary", response_model=KpiSummaryOut)
async def kpi_summary(_: KpiReader, export: ExportAs, conn: DbConnection, cache: Cache, start: From, end: To) -> Any:
    """The range's headline figures (DESIGN §5): sums of the daily ones, distinct customers counted once.
    As a file: one row, the range in its first two columns."""
    check_range(start, end)

    async def compute() -> dict[str, Any]:
        return {"from": start, "to": end, **await repository.kpi_summary(conn, start=start, end=end)}

    if export:
        return export.response("summary", start, end, KpiSummaryOut, single_row(await compute()))
    return await cache.answer("summary", {"from": start, "to": end}, KpiSummaryOut, compute)


@router.get("/categories", response_model=CategoriesOut)
async def kpis_by_category(
    _: KpiReader, export: ExportAs, conn: DbConnection, cache: Cache, start: From, end: To
) -> Any:
    return await _breakdown(conn, cache, export, "categories", start, end)


@router.get("/payment-methods", response_model=PaymentMethodsOut)
async def kpis_by_payment_method(
    _: KpiReader, export: ExportAs, conn: DbConnection, cache: Cache, start: From, end: To
) -> Any:
    return await _breakdown(conn, cache, export, "payment_methods", start, end)


@router.get("/states", response_model=StatesOut)
async def kpis_by_state(_: KpiReader, export: ExportAs, conn: DbConnection, cache: Cache, start: From, end: To) -> Any:
    return await _breakdown(conn, cache, export, "states", start, end)


@router.get("/top-products", response_model=TopProductsOut)
async def top_products(
    _: KpiReader,
    export: ExportAs,
    conn: DbConnection,
    cache: Cache,
    start: From,
    end: To,
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
) -> Any:
    check_range(start, end)
    if export:
        rows = await repository.stream_top_products(
            conn, start=start, end=end, limit=limit, chunk_rows=export.chunk_rows
        )
        return export.response("top-products", start, end, TopProductOut, rows)

    async def compute() -> dict[str, Any]:
        products = await repository.top_products(conn, start=start, end=end, limit=limit)
        return {"from": start, "to": end, "products": products}

    return await cache.answer("top_products", {"from": start, "to": end, "limit": limit}, TopProductsOut, compute)
