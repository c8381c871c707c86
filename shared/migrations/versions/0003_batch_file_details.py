"""How a batch's file is to be read: compression and CSV delimiter, found by the ingest service.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """ALTER TABLE ops.batches
           ADD COLUMN compression text NOT NULL DEFAULT 'none' CHECK (compression IN ('none', 'gzip')),
           ADD COLUMN csv_delimiter text CHECK (csv_delimiter IN (',', ';')),
           ADD CONSTRAINT batches_file_format CHECK (file_format IN ('csv', 'json', 'ndjson', 'parquet'))"""
    )


def downgrade() -> None:
    op.execute(
        """ALTER TABLE ops.batches
           DROP CONSTRAINT batches_file_format, DROP COLUMN csv_delimiter, DROP COLUMN compression"""
    )
