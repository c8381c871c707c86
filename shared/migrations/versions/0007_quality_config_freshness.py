"""Declarative quality: the config versions that ran, scheduled freshness, and the API's admin actions.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29

- ``ops.quality_configs``: each config version the quality worker ran (declared version + content hash),
  with its document, so a batch's results can be shown beside the rules that produced them.
- ``ops.batches.max_event_ts``: the newest event time of a batch's staged rows (the dataset's freshness
  column), written by the quality stage; the scheduled freshness evaluation reads it from loaded batches.
- ``ops.freshness``: the latest scheduled evaluation of each dataset's freshness SLA (the reconciler).
- Grants, where the roles exist (see 0005): the quality worker reads the dimensions for referential
  checks and records config versions; the API releases and re-runs quarantined batches (it moves the
  batch, records the event and the audit entry) and reads configs and freshness; the reconciler writes
  freshness.
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

UPGRADE = [
    "ALTER TABLE ops.batches ADD COLUMN max_event_ts timestamptz",
    "CREATE INDEX batches_dataset_received_at ON ops.batches (dataset, received_at DESC)",
    """
    CREATE TABLE ops.quality_configs (
        config_version text PRIMARY KEY,
        declared_version text NOT NULL,
        document jsonb NOT NULL,
        first_used_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    """
    CREATE TABLE ops.freshness (
        dataset text PRIMARY KEY CHECK (dataset IN ('customers', 'products', 'sales')),
        evaluated_at timestamptz NOT NULL,
        status text NOT NULL CHECK (status IN ('fresh', 'warn', 'fail', 'no_data')),
        severity text NOT NULL CHECK (severity IN ('warn', 'error')),
        config_version text NOT NULL,
        last_loaded_at timestamptz,
        max_event_ts timestamptz,
        load_lag_seconds double precision,
        event_lag_seconds double precision,
        max_load_lag_seconds double precision,
        max_event_lag_seconds double precision,
        breaches text[] NOT NULL DEFAULT '{}'
    )
    """,
]

DOWNGRADE = [
    "DROP TABLE ops.freshness",
    "DROP TABLE ops.quality_configs",
    "DROP INDEX ops.batches_dataset_received_at",
    "ALTER TABLE ops.batches DROP COLUMN max_event_ts",
]

GRANTS: dict[str, list[tuple[str, str]]] = {
    "sdp_quality": [
        ("SELECT", "processed.dim_customers"),
        ("SELECT", "processed.dim_products"),
        ("SELECT, INSERT", "ops.quality_configs"),
    ],
    "sdp_api": [
        ("UPDATE", "ops.batches"),
        ("INSERT, UPDATE", "ops.batch_events"),
        ("INSERT, UPDATE", "ops.batch_stages"),
        ("SELECT, INSERT", "ops.audit_log"),
        ("SELECT", "ops.quality_configs"),
        ("SELECT", "ops.freshness"),
    ],
    "sdp_reconciler": [("SELECT, INSERT, UPDATE", "ops.freshness")],
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
    for role, grants in GRANTS.items():
        op.execute(_if_role_exists(role, [f"GRANT {p} ON {t} TO {role}" for p, t in grants]))


def downgrade() -> None:
    for role, grants in GRANTS.items():
        op.execute(_if_role_exists(role, [f"REVOKE {p} ON {t} FROM {role}" for p, t in grants]))
    for statement in DOWNGRADE:
        op.execute(statement)
