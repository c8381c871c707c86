"""Stage leases: a running stage says it is alive, so a dead one is resumed in seconds, not after the
broker's visibility timeout, and a stage that keeps dying ends its batch.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04

- ``ops.batch_stages.heartbeat_at``: renewed by the worker running the stage every few seconds
  (shared/worker.py); a ``running`` stage whose heartbeat is older than the lease is dead.
- ``ops.batch_stages.worker``: who holds the lease (host and PID), for the reason a person reads.
- ``ops.batch_stages.lease_id``: the attempt holding the lease, so only that attempt renews it.
- ``ops.batch_stages.interruptions``: attempts that died without finishing; past the limit the batch fails.
- Status ``interrupted``: the reconciler found the stage's worker gone and queued the stage again.
- The reconciler fails a batch whose stage keeps dying: it records the event and closes the stage.
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

UPGRADE = [
    "ALTER TABLE ops.batch_stages ADD COLUMN heartbeat_at timestamptz",
    "ALTER TABLE ops.batch_stages ADD COLUMN worker text",
    "ALTER TABLE ops.batch_stages ADD COLUMN lease_id uuid",
    "ALTER TABLE ops.batch_stages ADD COLUMN interruptions int NOT NULL DEFAULT 0",
    "ALTER TABLE ops.batch_stages DROP CONSTRAINT batch_stages_status_check",
    """ALTER TABLE ops.batch_stages ADD CONSTRAINT batch_stages_status_check
       CHECK (status IN ('running', 'interrupted', 'succeeded', 'failed'))""",
    "CREATE INDEX batch_stages_running ON ops.batch_stages (heartbeat_at) WHERE status = 'running'",
]

DOWNGRADE = [
    "DROP INDEX ops.batch_stages_running",
    "UPDATE ops.batch_stages SET status = 'running' WHERE status = 'interrupted'",
    "ALTER TABLE ops.batch_stages DROP CONSTRAINT batch_stages_status_check",
    """ALTER TABLE ops.batch_stages ADD CONSTRAINT batch_stages_status_check
       CHECK (status IN ('running', 'succeeded', 'failed'))""",
    "ALTER TABLE ops.batch_stages DROP COLUMN interruptions",
    "ALTER TABLE ops.batch_stages DROP COLUMN lease_id",
    "ALTER TABLE ops.batch_stages DROP COLUMN worker",
    "ALTER TABLE ops.batch_stages DROP COLUMN heartbeat_at",
]

GRANTS = [("INSERT", "ops.batch_events"), ("INSERT, UPDATE", "ops.batch_stages")]


def _if_reconciler_exists(statements: list[str]) -> str:
    body = "\n".join(f"        EXECUTE {s!r};" for s in statements)
    return f"""
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sdp_reconciler') THEN
{body}
    END IF;
END
$$"""


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)
    op.execute(_if_reconciler_exists([f"GRANT {p} ON {t} TO sdp_reconciler" for p, t in GRANTS]))


def downgrade() -> None:
    op.execute(_if_reconciler_exists([f"REVOKE {p} ON {t} FROM sdp_reconciler" for p, t in GRANTS]))
    for statement in DOWNGRADE:
        op.execute(statement)
