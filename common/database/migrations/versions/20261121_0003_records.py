"""Records, tags, attachments, the sync counters and the search index.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 21:20:06.556595
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sync_counters",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_counters")),
    )
    op.create_table(
        "records",
        sa.Column("owner_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=True),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("change_seq", sa.BigInteger(), nullable=False),
        sa.Column("is_deleted", sa.Boolean(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("share_slug", sa.String(length=64), nullable=True),
        sa.Column("ai_opt_out", sa.Boolean(), nullable=False),
        sa.Column("ai_status", sa.String(length=16), nullable=False),
        sa.Column("ai_title", sa.String(length=200), nullable=True),
        sa.Column("ai_summary", sa.Text(), nullable=True),
        sa.Column("ai_tags", sa.JSON(), nullable=False),
        sa.Column("ai_error", sa.String(length=200), nullable=True),
        sa.Column("push_fingerprint", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name=op.f("fk_records_owner_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_records")),
        sa.UniqueConstraint("share_slug", name=op.f("uq_records_share_slug")),
    )
    with op.batch_alter_table("records", schema=None) as batch_op:
        batch_op.create_index("ix_records_owner_occurred", ["owner_id", "occurred_at", "id"], unique=False)
        batch_op.create_index("ix_records_owner_seq", ["owner_id", "change_seq"], unique=False)

    op.create_table(
        "attachments",
        sa.Column("owner_id", sa.String(length=36), nullable=False),
        sa.Column("record_id", sa.String(length=36), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=True),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("has_thumbnail", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_attachments_owner_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["record_id"], ["records.id"], name=op.f("fk_attachments_record_id_records"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attachments")),
    )
    with op.batch_alter_table("attachments", schema=None) as batch_op:
        batch_op.create_index("ix_attachments_owner_sha", ["owner_id", "sha256"], unique=False)
        batch_op.create_index(batch_op.f("ix_attachments_record_id"), ["record_id"], unique=False)

    op.create_table(
        "record_tags",
        sa.Column("record_id", sa.String(length=36), nullable=False),
        sa.Column("owner_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["record_id"], ["records.id"], name=op.f("fk_record_tags_record_id_records"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_record_tags")),
    )
    with op.batch_alter_table("record_tags", schema=None) as batch_op:
        batch_op.create_index("ix_record_tags_owner_name", ["owner_id", "name"], unique=False)
        batch_op.create_index(batch_op.f("ix_record_tags_record_id"), ["record_id"], unique=False)

    create_search_index()


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS record_search_rowids")
    op.execute("DROP TABLE IF EXISTS record_search")
    with op.batch_alter_table("record_tags", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_record_tags_record_id"))
        batch_op.drop_index("ix_record_tags_owner_name")

    op.drop_table("record_tags")
    with op.batch_alter_table("attachments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_attachments_record_id"))
        batch_op.drop_index("ix_attachments_owner_sha")

    op.drop_table("attachments")
    with op.batch_alter_table("records", schema=None) as batch_op:
        batch_op.drop_index("ix_records_owner_seq")
        batch_op.drop_index("ix_records_owner_occurred")

    op.drop_table("records")
    op.drop_table("sync_counters")


def create_search_index() -> None:
    """The full-text index over jieba-segmented text: FTS5 on SQLite, tsvector + GIN on
    PostgreSQL (see common/records/search.py)."""
    if op.get_bind().dialect.name == "sqlite":
        # `owner_id` holds a token naming the owner, indexed, so a query is limited to one
        # user's rows inside FTS5 and can be ranked and cut there.
        op.execute(
            "CREATE VIRTUAL TABLE record_search USING fts5("
            "record_id UNINDEXED, owner_id, title, body, tokenize = 'unicode61 remove_diacritics 2')"
        )
        # FTS5 cannot look a row up by an UNINDEXED column: this maps a record to its FTS row,
        # so re-indexing one record deletes by rowid instead of scanning the whole index.
        op.execute(
            "CREATE TABLE record_search_rowids ("
            " record_id VARCHAR(36) PRIMARY KEY REFERENCES records(id) ON DELETE CASCADE,"
            " fts_rowid INTEGER NOT NULL)"
        )
        return
    op.execute(
        "CREATE TABLE record_search ("
        " record_id VARCHAR(36) PRIMARY KEY REFERENCES records(id) ON DELETE CASCADE,"
        " owner_id VARCHAR(36) NOT NULL,"
        " title TEXT NOT NULL DEFAULT '',"
        " body TEXT NOT NULL DEFAULT '',"
        " document TSVECTOR GENERATED ALWAYS AS ("
        "  setweight(to_tsvector('simple', title), 'A') || setweight(to_tsvector('simple', body), 'B')) STORED)"
    )
    op.execute("CREATE INDEX ix_record_search_document ON record_search USING GIN (document)")
    op.execute("CREATE INDEX ix_record_search_owner ON record_search (owner_id)")
