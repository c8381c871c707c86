"""Replay, backfill and the API key lifecycle.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04

- ``ops.batches.attempt``: the run of a batch through the stages, 1 for its first; a replay
  (``POST /v1/batches/{id}/replay``) starts the next from the raw object.
- ``ops.api_keys.expires_at``: when a rotated key stops being accepted (the rotation's grace period);
  ``replaced_by``: the key its rotation created.
- The api role creates, revokes and rotates keys, records a replay's event, and rewrites the analytics rows a
  backfill finds differing from their recomputation from ``processed.fact_sales``.
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

UPGRADE = [
    "ALTER TABLE ops.batches ADD COLUMN attempt int NOT NULL DEFAULT 1 CHECK (attempt >= 1)",
    "ALTER TABLE ops.api_keys ADD COLUMN expires_at timestamptz",
    "ALTER TABLE ops.api_keys ADD COLUMN replaced_by uuid REFERENCES ops.api_keys (key_id)",
    "COMMENT ON COLUMN ops.batches.attempt IS 'run of the batch through the stages: 1, then one more per replay'",
    "COMMENT ON COLUMN ops.api_keys.expires_at IS 'a rotated key is refused from then on'",
    "COMMENT ON COLUMN ops.api_keys.replaced_by IS 'the key that rotating this one created'",
]

DOWNGRADE = [
    "ALTER TABLE ops.api_keys DROP COLUMN replaced_by",
    "ALTER TABLE ops.api_keys DROP COLUMN expires_at",
    "ALTER TABLE ops.batches DROP COLUMN attempt",
]

ANALYTICS_TABLES = [
    "analytics.daily_sales",
    "analytics.daily_category_sales",
    "analytics.daily_payment_method_sales",
    "analytics.daily_region_sales",
    "analytics.daily_product_sales",
    "analytics.customer_summary",
    "analytics.daily_customer_activity",
]
GRANTS = [("INSERT", "ops.api_keys"), *(("INSERT, UPDATE, DELETE", table) for table in ANALYTICS_TABLES)]


def _if_api_exists(statements: list[str]) -> str:
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
    for statement in UPGRADE:
        op.execute(statement)
    op.execute(_if_api_exists([f"GRANT {p} ON {t} TO sdp_api" for p, t in GRANTS]))


def downgrade() -> None:
    op.execute(_if_api_exists([f"REVOKE {p} ON {t} FROM sdp_api" for p, t in GRANTS]))
    for statement in DOWNGRADE:
        op.execute(statement)
