"""Warehouse load speed: fact_sales without per-row foreign-key checks.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29

The three foreign keys of ``processed.fact_sales`` (date_key, customer_key, product_key) cost a trigger call
per key per inserted or updated fact: two thirds of the fact upsert's time (issue 6). DESIGN §5 asks for
the SCD2 invariants and a fact unique on transaction_id, not for these keys, and the warehouse keeps them
true by construction under its advisory locks: dim_date rows and inferred members are inserted before the
facts, a fact's keys come from joins with the dimensions, and a dimension version is deleted only after
its facts were unbound (services/warehouse). The indexes on the key columns stay (re-binding and the
customer summaries look facts up by them). No new objects, so no grants.
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

FOREIGN_KEYS = {
    "fact_sales_date_key_fkey": "FOREIGN KEY (date_key) REFERENCES processed.dim_date",
    "fact_sales_customer_key_fkey": "FOREIGN KEY (customer_key) REFERENCES processed.dim_customers",
    "fact_sales_product_key_fkey": "FOREIGN KEY (product_key) REFERENCES processed.dim_products",
}


def upgrade() -> None:
    for name in FOREIGN_KEYS:
        op.execute(f"ALTER TABLE processed.fact_sales DROP CONSTRAINT {name}")


def downgrade() -> None:
    for name, definition in FOREIGN_KEYS.items():
        op.execute(f"ALTER TABLE processed.fact_sales ADD CONSTRAINT {name} {definition}")
