"""Read-only access to the analytics schema for the BI role, where the deployment created it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# The role is created with its password by the deployment (compose/postgres/initdb), not here: a
# migration holds no secrets. Where it does not exist (a developer machine) there is nothing to grant.
UPGRADE = """
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'analytics_reader') THEN
        GRANT USAGE ON SCHEMA analytics TO analytics_reader;
        GRANT SELECT ON ALL TABLES IN SCHEMA analytics TO analytics_reader;
        ALTER DEFAULT PRIVILEGES IN SCHEMA analytics GRANT SELECT ON TABLES TO analytics_reader;
    END IF;
END
$$
"""

DOWNGRADE = """
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'analytics_reader') THEN
        ALTER DEFAULT PRIVILEGES IN SCHEMA analytics REVOKE SELECT ON TABLES FROM analytics_reader;
        REVOKE SELECT ON ALL TABLES IN SCHEMA analytics FROM analytics_reader;
        REVOKE USAGE ON SCHEMA analytics FROM analytics_reader;
    END IF;
END
$$
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
