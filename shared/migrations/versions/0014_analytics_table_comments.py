"""A description on every analytics table and view, as Metabase shows it beside the table's name.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04

Columns were described in 0006 and 0011; the objects themselves were not, except
``analytics.customers_masked`` (0011), which keeps its own.
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

# object -> (kind, comment)
COMMENTS: dict[str, tuple[str, str]] = {
    "analytics.daily_sales": (
        "TABLE",
        "one row per UTC date: orders, revenue, units, average order value, distinct customers and the "
        "cancelled and refunded transactions of that day",
    ),
    "analytics.daily_category_sales": (
        "TABLE",
        "one row per UTC date and product category (as of the sale): orders, revenue, units, transactions",
    ),
    "analytics.daily_payment_method_sales": (
        "TABLE",
        "one row per UTC date and payment method: orders, revenue, units, cancelled and refunded transactions",
    ),
    "analytics.daily_region_sales": (
        "TABLE",
        "one row per UTC date, customer country and state (as of the sale): orders, revenue, units, distinct customers",
    ),
    "analytics.daily_product_sales": (
        "TABLE",
        "one row per UTC date and product: orders, revenue, units, cancelled and refunded transactions",
    ),
    "analytics.customer_summary": (
        "TABLE",
        "one row per customer with a completed transaction: first and last order dates, orders, revenue, units",
    ),
    "analytics.daily_customer_activity": (
        "TABLE",
        "one row per UTC date: customers with a completed transaction that day, split into new and returning, "
        "with their orders and revenue",
    ),
    "analytics.product_performance": (
        "VIEW",
        "one row per product over all time: current name and category, orders, revenue, units, cancellations, "
        "refunds, first and last sale dates and rank by revenue",
    ),
    "analytics.kpi": (
        "VIEW",
        "one row: the headline KPIs over every date loaded (orders, revenue, units, average order value, "
        "customers, cancellation and refund rates)",
    ),
}


def upgrade() -> None:
    for name, (kind, comment) in COMMENTS.items():
        quoted = comment.replace("'", "''")
        op.execute(f"COMMENT ON {kind} {name} IS '{quoted}'")


def downgrade() -> None:
    for name, (kind, _) in COMMENTS.items():
        op.execute(f"COMMENT ON {kind} {name} IS NULL")
