"""A masked view of customers for the BI role (DESIGN §4: "masked customer view").

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29

``analytics.customers_masked``: each customer's current version with its name and email masked, and its order
figures from ``customer_summary``. Metabase's role reads the analytics schema and nothing in ``processed``; the
view reads ``processed.dim_customers`` with its owner's rights, so the BI role sees customers' places and
figures without their personal data.
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

VIEW = "analytics.customers_masked"

# Every word of a name keeps its first letter ("Ana Souza" → "A*** S***"); an email keeps the first character of
# its local part and its domain ("ana@example.com" → "a***@example.com").
CREATE = f"""
CREATE VIEW {VIEW} WITH (security_barrier) AS
SELECT c.customer_id,
       regexp_replace(c.customer_name, '(\\w)\\w*', '\\1***', 'g') AS customer_name_masked,
       CASE WHEN c.email IS NOT NULL
            THEN left(c.email, 1) || '***@' || split_part(c.email, '@', 2) END AS email_masked,
       c.city, c.state, c.country, c.is_active, c.is_inferred, c.valid_from AS current_since,
       s.first_order_date, s.last_order_date,
       coalesce(s.orders, 0) AS orders, coalesce(s.revenue, 0) AS revenue, coalesce(s.units, 0) AS units
FROM processed.dim_customers c
LEFT JOIN analytics.customer_summary s ON s.customer_id = c.customer_id
WHERE c.is_current
"""

COMMENTS = {
    "customer_id": "natural customer id",
    "customer_name_masked": "customer name, each word reduced to its first letter",
    "email_masked": "email, the local part reduced to its first character; the domain kept",
    "city": "city of the current version",
    "state": "state code of the current version",
    "country": "country code of the current version",
    "is_active": "active flag of the current version",
    "is_inferred": "true while only sales have named the customer (no customers record yet)",
    "current_since": "when the current version became true in the source (its updated_at)",
    "first_order_date": "UTC date of the first completed transaction; empty without one",
    "last_order_date": "UTC date of the last completed transaction; empty without one",
    "orders": "completed transactions",
    "revenue": "sum of total_amount over completed transactions",
    "units": "sum of quantity over completed transactions",
}

# Metabase's role, where the deployment created it (compose/postgres/initdb); elsewhere there is nothing to grant.
GRANT = f"""
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'analytics_reader') THEN
        GRANT SELECT ON {VIEW} TO analytics_reader;
    END IF;
END
$$"""


def upgrade() -> None:
    op.execute(CREATE)
    op.execute(f"COMMENT ON VIEW {VIEW} IS 'current customers with name and email masked, and their order figures'")
    for column, comment in COMMENTS.items():
        op.execute(f"COMMENT ON COLUMN {VIEW}.{column} IS '{comment}'")
    op.execute(GRANT)


def downgrade() -> None:
    op.execute(f"DROP VIEW {VIEW}")
