"""KPIs over a date range: the days, the summary, the breakdowns and the top products."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy.ext.asyncio import AsyncConnection

from services.api import repository
from services.api.schemas import (
    CategoriesOut,
    DailyKpisOut,
    KpiSummaryOut,
    PaymentMethodsOut,
    StatesOut,
    TopProductsOut,
)
from shared.http import ApiError, DbConnection, KpiReader

router = APIRouter(prefix="/v1/kpis")

MAX_RANGE_DAYS = 3660

From = Annotated[date, Query(alias="from")]
To = Annotated[date, Query(alias="to")]


def _check_range(start: date, end: date) -> None:
    if end < start:
        raise ApiError(400, "invalid_range", "'to' is before 'from'")
    if (end - start).days > MAX_RANGE_DAYS:
        raise ApiError(400, "invalid_range", f"a range spans at most {MAX_RANGE_DAYS} days")


async def _breakdown(conn: AsyncConnection, name: str, start: date, end: date) -> dict[str, Any]:
    _check_range(start, end)
    return {"from": start, "to": end, name: await repository.breakdown(conn, name, start=start, end=end)}


@router.get("/daily", response_model=DailyKpisOut)
async def daily_kpis(_: KpiReader, conn: DbConnection, start: From, end: To) -> Any:
    _check_range(start, end)
    return {"from": start, "to": end, "days": await repository.daily_kpis(conn, start=start, end=end)}


@router.get("/summary", response_model=KpiSummaryOut)
async def kpi_summary(_: KpiReader, conn: DbConnection, start: From, end: To) -> Any:
    """The range's headline figures (DESIGN §5): sums of the daily ones, distinct customers counted once."""
    _check_range(start, end)
    return {"from": start, "to": end, **await repository.kpi_summary(conn, start=start, end=end)}


@router.get("/categories", response_model=CategoriesOut)
async def kpis_by_category(_: KpiReader, conn: DbConnection, start: From, end: To) -> Any:
    return await _breakdown(conn, "categories", start, end)


@router.get("/payment-methods", response_model=PaymentMethodsOut)
async def kpis_by_payment_method(_: KpiReader, conn: DbConnection, start: From, end: To) -> Any:
    return await _breakdown(conn, "payment_methods", start, end)


@router.get("/states", response_model=StatesOut)
async def kpis_by_state(_: KpiReader, conn: DbConnection, start: From, end: To) -> Any:
    return await _breakdown(conn, "states", start, end)


@router.get("/top-products", response_model=TopProductsOut)
async def top_products(
    _: KpiReader, conn: DbConnection, start: From, end: To, limit: Annotated[int, Query(ge=1, le=1000)] = 10
) -> Any:
    _check_range(start, end)
    return {
        "from": start,
        "to": end,
        "products": await repository.top_products(conn, start=start, end=end, limit=limit),
    }
