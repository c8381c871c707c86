"""The API reads a batch's rejected rows (``GET /v1/batches/{id}/rejects``).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29

Only the rejects tables: the API role still reads no other staging or raw rows.
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TABLES = ("staging.customers_rejects", "staging.products_rejects", "staging.sales_rejects")


def _if_api_role_exists(statements: list[str]) -> str:
    body = "\n".join(f"        EXECUTE {s!r};" for s in statements)
    return f"""
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sdp_api') THEN
{body}
    END IF;
END
$$"""


def upgrade() -> None:
    op.execute(_if_api_role_exists([f"GRANT SELECT ON {table} TO sdp_api" for table in TABLES]))


def downgrade() -> None:
    op.execute(_if_api_role_exists([f"REVOKE SELECT ON {table} FROM sdp_api" for table in TABLES]))
