"""Idempotency keys in a table of their own: a batch may be reached by several keys.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04

A key sent with bytes that already form a batch (answered 200 by content) is bound to that batch too, so the
same key with other bytes is a 409. One column on ``ops.batches`` could hold only the key the batch was
created with; the keys move to ``ops.batch_idempotency_keys``.
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

TABLE = "ops.batch_idempotency_keys"


def _if_ingest_role_exists(statement: str) -> str:
    return f"""
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sdp_ingest') THEN
        EXECUTE {statement!r};
    END IF;
END
$$"""


def upgrade() -> None:
    op.execute(
        f"""
        CREATE TABLE {TABLE} (
            dataset text NOT NULL,
            idempotency_key text NOT NULL,
            batch_id uuid NOT NULL REFERENCES ops.batches (batch_id) ON DELETE CASCADE,
            bound_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (dataset, idempotency_key)
        )
        """
    )
    op.execute(f"CREATE INDEX batch_idempotency_keys_batch_id ON {TABLE} (batch_id)")
    op.execute(
        f"""INSERT INTO {TABLE} (dataset, idempotency_key, batch_id, bound_at)
            SELECT dataset, idempotency_key, batch_id, received_at FROM ops.batches
            WHERE idempotency_key IS NOT NULL"""
    )
    op.execute("DROP INDEX ops.batches_idempotency_key")
    op.execute("ALTER TABLE ops.batches DROP COLUMN idempotency_key")
    op.execute(_if_ingest_role_exists(f"GRANT SELECT, INSERT ON {TABLE} TO sdp_ingest"))


def downgrade() -> None:
    op.execute("ALTER TABLE ops.batches ADD COLUMN idempotency_key text")
    # The column holds one key per batch: the first one bound.
    op.execute(
        f"""UPDATE ops.batches b SET idempotency_key = k.idempotency_key
            FROM (SELECT DISTINCT ON (batch_id) batch_id, idempotency_key FROM {TABLE}
                  ORDER BY batch_id, bound_at, idempotency_key) k
            WHERE b.batch_id = k.batch_id"""
    )
    op.execute(
        """CREATE UNIQUE INDEX batches_idempotency_key ON ops.batches (dataset, idempotency_key)
           WHERE idempotency_key IS NOT NULL"""
    )
    op.execute(f"DROP TABLE {TABLE}")
