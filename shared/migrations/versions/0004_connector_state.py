"""Where the ingest connectors keep their progress: the watermark of each incremental SQL source.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The watermark is the source's own text for the highest value pulled (PostgreSQL's ::text of the
    # watermark column), cast back to the column's type when compared: exact for timestamps and numbers.
    # A connector's row is written only after its batch was accepted; deleting it re-pulls from the start.
    op.execute(
        """
        CREATE TABLE ops.connector_state (
            connector text PRIMARY KEY,
            watermark text,
            updated_at timestamptz NOT NULL DEFAULT now(),
            last_batch_id uuid REFERENCES ops.batches (batch_id) ON DELETE SET NULL
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE ops.connector_state")
