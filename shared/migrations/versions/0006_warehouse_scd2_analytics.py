"""Warehouse: the source records SCD2 history is built from, and the analytics Metabase and the API read.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01

``processed.customer_records`` / ``product_records`` keep every customers/products record the warehouse
loaded, one per (key, updated_at): a dimension's versions are a function of them, so batches arriving in
any order that respects their effective times give the same history. The analytics tables are per date
(refreshed for the dates a load affects); the views summarise them.
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# table -> {column: comment}, for Metabase's data model.
COMMENTS: dict[str, dict[str, str]] = {
    "analytics.daily_sales": {
        "date": "UTC date of the transactions",
        "date_key": "processed.dim_date key (yyyymmdd)",
        "orders": "completed transactions",
        "revenue": "sum of total_amount over completed transactions",
        "units": "sum of quantity over completed transactions",
        "avg_order_value": "revenue / orders, rounded to cents (0 without orders)",
        "distinct_customers": "distinct customers (natural customer_id) with a completed transaction",
        "cancelled": "cancelled transactions",
        "refunded": "refunded transactions",
        "transactions": "all transactions, any status",
        "batch_id": "the batch whose load last refreshed the row",
        "refreshed_at": "when the row was last refreshed",
    },
    "analytics.daily_category_sales": {
        "date": "UTC date of the transactions",
        "category": "product category as of the sale (the product version valid then); empty when unknown",
        "orders": "completed transactions",
        "revenue": "sum of total_amount over completed transactions",
        "units": "sum of quantity over completed transactions",
        "transactions": "all transactions, any status",
        "batch_id": "the batch whose load last refreshed the row",
        "refreshed_at": "when the row was last refreshed",
    },
    "analytics.daily_payment_method_sales": {
        "date": "UTC date of the transactions",
        "payment_method": "payment method of the transaction; empty when not given",
        "orders": "completed transactions",
        "revenue": "sum of total_amount over completed transactions",
        "units": "sum of quantity over completed transactions",
        "cancelled": "cancelled transactions",
        "refunded": "refunded transactions",
        "transactions": "all transactions, any status",
        "batch_id": "the batch whose load last refreshed the row",
        "refreshed_at": "when the row was last refreshed",
    },
    "analytics.daily_region_sales": {
        "date": "UTC date of the transactions",
        "country": "customer country code as of the sale (the customer version valid then); empty when unknown",
        "state": "customer state code as of the sale; empty when unknown",
        "orders": "completed transactions",
        "revenue": "sum of total_amount over completed transactions",
        "units": "sum of quantity over completed transactions",
        "distinct_customers": "distinct customers with a completed transaction",
        "transactions": "all transactions, any status",
        "batch_id": "the batch whose load last refreshed the row",
        "refreshed_at": "when the row was last refreshed",
    },
    "analytics.daily_product_sales": {
        "date": "UTC date of the transactions",
        "product_id": "natural product id",
        "orders": "completed transactions",
        "revenue": "sum of total_amount over completed transactions",
        "units": "sum of quantity over completed transactions",
        "cancelled": "cancelled transactions",
        "refunded": "refunded transactions",
        "transactions": "all transactions, any status",
        "batch_id": "the batch whose load last refreshed the row",
        "refreshed_at": "when the row was last refreshed",
    },
    "analytics.customer_summary": {
        "customer_id": "natural customer id (customers with at least one completed transaction)",
        "first_order_date": "UTC date of the customer's first completed transaction",
        "last_order_date": "UTC date of the customer's latest completed transaction",
        "orders": "completed transactions",
        "revenue": "sum of total_amount over completed transactions",
        "units": "sum of quantity over completed transactions",
        "batch_id": "the batch whose load last refreshed the row",
        "refreshed_at": "when the row was last refreshed",
    },
    "analytics.daily_customer_activity": {
        "date": "UTC date of the transactions",
        "customers": "distinct customers with a completed transaction that day",
        "new_customers": "of those, customers whose first completed transaction ever is that day",
        "returning_customers": "of those, customers who had a completed transaction on an earlier day",
        "new_customer_orders": "completed transactions of new customers",
        "returning_customer_orders": "completed transactions of returning customers",
        "new_customer_revenue": "revenue of new customers",
        "returning_customer_revenue": "revenue of returning customers",
        "batch_id": "the batch whose load last refreshed the row",
        "refreshed_at": "when the row was last refreshed",
    },
    "analytics.product_performance": {
        "product_id": "natural product id",
        "product_name": "current product name",
        "category": "current product category",
        "orders": "completed transactions, all time",
        "revenue": "sum of total_amount over completed transactions, all time",
        "units": "sum of quantity over completed transactions, all time",
        "cancelled": "cancelled transactions, all time",
        "refunded": "refunded transactions, all time",
        "first_sale_date": "UTC date of the first transaction",
        "last_sale_date": "UTC date of the latest transaction",
        "revenue_rank": "rank by revenue (1 = highest)",
    },
    "analytics.kpi": {
        "first_date": "first UTC date with a transaction",
        "last_date": "latest UTC date with a transaction",
        "orders": "completed transactions",
        "revenue": "sum of total_amount over completed transactions",
        "units": "sum of quantity over completed transactions",
        "avg_order_value": "revenue / orders, rounded to cents",
        "customers": "distinct customers with a completed transaction",
        "transactions": "all transactions, any status",
        "cancelled": "cancelled transactions",
        "refunded": "refunded transactions",
        "cancellation_rate": "cancelled / transactions",
        "refund_rate": "refunded / transactions",
        "refreshed_at": "latest refresh of the daily figures",
    },
}

DAILY = """
    revenue numeric(16, 2) NOT NULL,
    units bigint NOT NULL,
    transactions bigint NOT NULL,
    batch_id uuid NOT NULL,
    refreshed_at timestamptz NOT NULL DEFAULT now()"""

UPGRADE = [
    # --- processed: source records of the SCD2 dimensions -------------------------------------------
    """
    CREATE TABLE processed.customer_records (
        customer_id text NOT NULL,
        updated_at timestamptz NOT NULL,
        customer_name text,
        email text,
        city text,
        state text,
        country text,
        is_active boolean,
        batch_id uuid NOT NULL,
        PRIMARY KEY (customer_id, updated_at)
    )
    """,
    """
    CREATE TABLE processed.product_records (
        product_id text NOT NULL,
        updated_at timestamptz NOT NULL,
        product_name text,
        category text,
        created_at timestamptz,
        batch_id uuid NOT NULL,
        PRIMARY KEY (product_id, updated_at)
    )
    """,
    "COMMENT ON TABLE processed.customer_records IS 'every customers record loaded, one per (customer_id, "
    "updated_at); dim_customers versions are built from them'",
    "COMMENT ON TABLE processed.product_records IS 'every products record loaded, one per (product_id, "
    "updated_at); dim_products versions are built from them'",
    # Point-in-time lookups and re-pointing go by natural key and start of validity.
    "CREATE INDEX dim_customers_key_from ON processed.dim_customers (customer_id, valid_from)",
    "CREATE INDEX dim_products_key_from ON processed.dim_products (product_id, valid_from)",
    # --- analytics ------------------------------------------------------------------------------------
    f"""
    CREATE TABLE analytics.daily_category_sales (
        date date NOT NULL,
        category text,
        orders bigint NOT NULL,{DAILY},
        CONSTRAINT daily_category_sales_key UNIQUE NULLS NOT DISTINCT (date, category)
    )
    """,
    f"""
    CREATE TABLE analytics.daily_payment_method_sales (
        date date NOT NULL,
        payment_method text,
        orders bigint NOT NULL,
        cancelled bigint NOT NULL,
        refunded bigint NOT NULL,{DAILY},
        CONSTRAINT daily_payment_method_sales_key UNIQUE NULLS NOT DISTINCT (date, payment_method)
    )
    """,
    f"""
    CREATE TABLE analytics.daily_region_sales (
        date date NOT NULL,
        country text,
        state text,
        orders bigint NOT NULL,
        distinct_customers bigint NOT NULL,{DAILY},
        CONSTRAINT daily_region_sales_key UNIQUE NULLS NOT DISTINCT (date, country, state)
    )
    """,
    f"""
    CREATE TABLE analytics.daily_product_sales (
        date date NOT NULL,
        product_id text,
        orders bigint NOT NULL,
        cancelled bigint NOT NULL,
        refunded bigint NOT NULL,{DAILY},
        CONSTRAINT daily_product_sales_key UNIQUE NULLS NOT DISTINCT (date, product_id)
    )
    """,
    "CREATE INDEX daily_product_sales_product ON analytics.daily_product_sales (product_id)",
    """
    CREATE TABLE analytics.customer_summary (
        customer_id text PRIMARY KEY,
        first_order_date date NOT NULL,
        last_order_date date NOT NULL,
        orders bigint NOT NULL,
        revenue numeric(16, 2) NOT NULL,
        units bigint NOT NULL,
        batch_id uuid NOT NULL,
        refreshed_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    "CREATE INDEX customer_summary_first_order ON analytics.customer_summary (first_order_date)",
    """
    CREATE TABLE analytics.daily_customer_activity (
        date date PRIMARY KEY,
        customers bigint NOT NULL,
        new_customers bigint NOT NULL,
        returning_customers bigint NOT NULL,
        new_customer_orders bigint NOT NULL,
        returning_customer_orders bigint NOT NULL,
        new_customer_revenue numeric(16, 2) NOT NULL,
        returning_customer_revenue numeric(16, 2) NOT NULL,
        batch_id uuid NOT NULL,
        refreshed_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    """
    CREATE VIEW analytics.product_performance AS
    SELECT s.product_id, p.product_name, p.category, s.orders, s.revenue, s.units, s.cancelled, s.refunded,
           s.first_sale_date, s.last_sale_date, rank() OVER (ORDER BY s.revenue DESC) AS revenue_rank
    FROM (SELECT product_id, sum(orders) AS orders, sum(revenue) AS revenue, sum(units) AS units,
                 sum(cancelled) AS cancelled, sum(refunded) AS refunded,
                 min(date) AS first_sale_date, max(date) AS last_sale_date
          FROM analytics.daily_product_sales WHERE product_id IS NOT NULL GROUP BY product_id) s
    LEFT JOIN processed.dim_products p ON p.product_id = s.product_id AND p.is_current
    """,
    """
    CREATE VIEW analytics.kpi AS
    SELECT min(d.date) AS first_date, max(d.date) AS last_date,
           coalesce(sum(d.orders), 0) AS orders, coalesce(sum(d.revenue), 0) AS revenue,
           coalesce(sum(d.units), 0) AS units,
           coalesce(round(sum(d.revenue) / nullif(sum(d.orders), 0), 2), 0) AS avg_order_value,
           (SELECT count(*) FROM analytics.customer_summary) AS customers,
           coalesce(sum(d.transactions), 0) AS transactions,
           coalesce(sum(d.cancelled), 0) AS cancelled, coalesce(sum(d.refunded), 0) AS refunded,
           coalesce(round(sum(d.cancelled)::numeric / nullif(sum(d.transactions), 0), 4), 0) AS cancellation_rate,
           coalesce(round(sum(d.refunded)::numeric / nullif(sum(d.transactions), 0), 4), 0) AS refund_rate,
           max(d.refreshed_at) AS refreshed_at
    FROM analytics.daily_sales d
    """,
]

ANALYTICS_TABLES = [
    "analytics.daily_category_sales",
    "analytics.daily_payment_method_sales",
    "analytics.daily_region_sales",
    "analytics.daily_product_sales",
    "analytics.customer_summary",
    "analytics.daily_customer_activity",
]
ANALYTICS_VIEWS = ["analytics.product_performance", "analytics.kpi"]
RECORD_TABLES = ["processed.customer_records", "processed.product_records"]

# 0002/0005 made these the schemas' default privileges; said again here so the grants hold wherever a role
# was created after those migrations ran.
GRANTS = {
    "analytics_reader": [f"GRANT SELECT ON {t} TO analytics_reader" for t in ANALYTICS_TABLES + ANALYTICS_VIEWS],
    "sdp_api": [f"GRANT SELECT ON {t} TO sdp_api" for t in ANALYTICS_TABLES + ANALYTICS_VIEWS],
    "sdp_warehouse": [
        *(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {t} TO sdp_warehouse" for t in ANALYTICS_TABLES + RECORD_TABLES),
        *(f"GRANT SELECT ON {t} TO sdp_warehouse" for t in ANALYTICS_VIEWS),
    ],
}


def _if_role_exists(role: str, statements: list[str]) -> str:
    body = "\n".join(f"        EXECUTE {s!r};" for s in statements)
    return f"""
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN
{body}
    END IF;
END
$$"""


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)
    for table, columns in COMMENTS.items():
        for column, comment in columns.items():
            quoted = comment.replace("'", "''")
            op.execute(f"COMMENT ON COLUMN {table}.{column} IS '{quoted}'")
    for role, statements in GRANTS.items():
        op.execute(_if_role_exists(role, statements))


def downgrade() -> None:
    for view in reversed(ANALYTICS_VIEWS):
        op.execute(f"DROP VIEW {view}")
    for table in [*ANALYTICS_TABLES, *RECORD_TABLES]:
        op.execute(f"DROP TABLE {table}")
    op.execute("DROP INDEX processed.dim_products_key_from")
    op.execute("DROP INDEX processed.dim_customers_key_from")
    for column in COMMENTS["analytics.daily_sales"]:
        op.execute(f"COMMENT ON COLUMN analytics.daily_sales.{column} IS NULL")
