"""The questions of the "Sales overview" dashboard: native SQL over the analytics schema's tables and views
(migrations 0006, 0011), which is all analytics_reader may read, and where each sits on the dashboard."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DASHBOARD = "Sales overview"
DASHBOARD_DESCRIPTION = "Headline KPIs, daily revenue and the breakdowns of the sales data platform's analytics schema"


@dataclass(frozen=True)
class Place:
    """A position on Metabase's dashboard grid (24 columns wide)."""

    row: int
    col: int
    size_x: int
    size_y: int


@dataclass(frozen=True)
class Card:
    name: str
    description: str
    display: str
    sql: str
    place: Place
    visualization_settings: dict[str, Any] = field(default_factory=dict)


def _percent(column: str) -> dict[str, Any]:
    return {"column_settings": {f'["name","{column}"]': {"number_style": "percent", "decimals": 2}}}


def _kpi(name: str, column: str, description: str, col: int, settings: dict[str, Any] | None = None) -> Card:
    return Card(
        name=name,
        description=description,
        display="scalar",
        sql=f"SELECT {column} FROM analytics.kpi",
        place=Place(row=0, col=col, size_x=4, size_y=3),
        visualization_settings=settings or {},
    )


CARDS: list[Card] = [
    _kpi("Orders", "orders", "Completed transactions over every date loaded", 0),
    _kpi("Revenue", "revenue", "Sum of total_amount over completed transactions", 4),
    _kpi("Average order value", "avg_order_value", "Revenue / orders", 8),
    _kpi("Distinct customers", "customers", "Customers with at least one completed transaction", 12),
    _kpi("Cancellation rate", "cancellation_rate", "Cancelled / all transactions", 16, _percent("cancellation_rate")),
    _kpi("Refund rate", "refund_rate", "Refunded / all transactions", 20, _percent("refund_rate")),
    Card(
        name="Daily revenue",
        description="Revenue of completed transactions per UTC date",
        display="line",
        sql="SELECT date, revenue, orders FROM analytics.daily_sales ORDER BY date",
        place=Place(row=3, col=0, size_x=24, size_y=6),
        visualization_settings={"graph.dimensions": ["date"], "graph.metrics": ["revenue"]},
    ),
    Card(
        name="Revenue by category",
        description="Revenue and orders per product category (as of the sale)",
        display="bar",
        sql="""SELECT coalesce(nullif(category, ''), '(unknown)') AS category, sum(revenue) AS revenue,
       sum(orders) AS orders
FROM analytics.daily_category_sales
GROUP BY 1
ORDER BY revenue DESC""",
        place=Place(row=9, col=0, size_x=12, size_y=6),
        visualization_settings={"graph.dimensions": ["category"], "graph.metrics": ["revenue"]},
    ),
    Card(
        name="Revenue by payment method",
        description="Revenue and orders per payment method",
        display="pie",
        sql="""SELECT coalesce(nullif(payment_method, ''), '(unknown)') AS payment_method, sum(revenue) AS revenue,
       sum(orders) AS orders
FROM analytics.daily_payment_method_sales
GROUP BY 1
ORDER BY revenue DESC""",
        place=Place(row=9, col=12, size_x=12, size_y=6),
        visualization_settings={"pie.dimension": "payment_method", "pie.metric": "revenue"},
    ),
    Card(
        name="Revenue by state",
        description="Revenue, orders and distinct customers per customer state (as of the sale)",
        display="row",
        sql="""SELECT coalesce(nullif(state, ''), '(unknown)') AS state, sum(revenue) AS revenue,
       sum(orders) AS orders
FROM analytics.daily_region_sales
GROUP BY 1
ORDER BY revenue DESC""",
        place=Place(row=15, col=0, size_x=12, size_y=7),
        visualization_settings={"graph.dimensions": ["state"], "graph.metrics": ["revenue"]},
    ),
    Card(
        name="Top products",
        description="The ten products with the highest revenue over all time",
        display="table",
        sql="""SELECT revenue_rank, product_id, product_name, category, orders, units, revenue
FROM analytics.product_performance
ORDER BY revenue_rank, product_id
LIMIT 10""",
        place=Place(row=15, col=12, size_x=12, size_y=7),
    ),
]
