"""extraction: what Jilu read out of attachments and link records

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 01:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("records", "attachments")


def _columns() -> list[sa.Column[object]]:
    return [
        sa.Column("extraction_status", sa.String(length=16), nullable=True),
        sa.Column("extraction_engine", sa.String(length=64), nullable=True),
        sa.Column("extraction_error", sa.String(length=200), nullable=True),
        sa.Column("extraction_details", sa.JSON(), nullable=False, server_default="{}"),
        sa.Column("extracted_text", sa.Text(), nullable=False, server_default=""),
        sa.Column("extracted_index", sa.Text(), nullable=False, server_default=""),
        sa.Column("extraction_requested_at", sa.DateTime(timezone=True), nullable=True),
    ]


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column in _columns():
                batch_op.add_column(column)
            batch_op.create_index(f"ix_{table}_extraction_status", ["extraction_status"], unique=False)
    # Files stored before extraction existed are read too: the workers' sweep queues them.
    op.execute(
        "UPDATE attachments SET extraction_status = 'pending', extraction_requested_at = created_at"
        " WHERE content_type LIKE 'image/%' OR content_type LIKE 'audio/%' OR content_type LIKE 'text/%'"
        " OR content_type = 'application/pdf'"
    )
    op.execute(
        "UPDATE records SET extraction_status = 'pending', extraction_requested_at = updated_at"
        " WHERE kind = 'link' AND NOT is_deleted"
    )


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(f"ix_{table}_extraction_status")
            for column in _columns():
                batch_op.drop_column(column.name)
