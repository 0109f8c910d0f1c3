"""Provider settings, conversations and their messages, memories, digests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from common.database.base import Base, TimestampMixin, UTCDateTime


class LlmConfig(TimestampMixin, Base):
    """A provider setting: the instance's (owner_id NULL, set by an admin) or one user's own."""

    __tablename__ = "llm_configs"

    owner_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    provider: Mapped[str] = mapped_column(String(32))
    base_url: Mapped[str] = mapped_column(String(500), default="")
    model: Mapped[str] = mapped_column(String(200), default="")
    # Encrypted with a key derived from the instance secret; never returned, never logged.
    api_key_encrypted: Mapped[str | None] = mapped_column(Text, default=None)


class Conversation(TimestampMixin, Base):
    """A kept conversation (ephemeral ones live only in Redis)."""

    __tablename__ = "conversations"
    __table_args__ = (Index("ix_conversations_owner_updated", "owner_id", "updated_at", "id"),)

    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200), default="")


class ChatMessage(Base):
    __tablename__ = "chat_messages"
    __table_args__ = (Index("ix_chat_messages_conversation", "conversation_id", "created_at", "id"),)

    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    owner_id: Mapped[str] = mapped_column(String(36))
    role: Mapped[str] = mapped_column(String(16))  # user | assistant
    content: Mapped[str] = mapped_column(Text)
    citations: Mapped[list[Any]] = mapped_column(JSON, default=list)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Memory(TimestampMixin, Base):
    """A fact the assistant keeps about its user."""

    __tablename__ = "memories"
    __table_args__ = (
        UniqueConstraint("owner_id", "content_key", name="uq_memories_owner_content"),
        Index("ix_memories_owner_updated", "owner_id", "updated_at", "id"),
    )

    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    content: Mapped[str] = mapped_column(String(500))
    # Normalised content, so the same fact found twice is one memory (reinforced).
    content_key: Mapped[str] = mapped_column(String(64))
    importance: Mapped[float] = mapped_column(Float, default=0.5)
    long_term: Mapped[bool] = mapped_column(Boolean, default=True)
    source: Mapped[str] = mapped_column(String(16), default="user")  # user | record | chat
    source_id: Mapped[str | None] = mapped_column(String(36), default=None)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)  # short-term ones
    reinforced_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class Digest(TimestampMixin, Base):
    __tablename__ = "digests"
    __table_args__ = (
        UniqueConstraint("owner_id", "period", "period_start", name="uq_digests_owner_period"),
        Index("ix_digests_owner_created", "owner_id", "created_at", "id"),
    )

    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    period: Mapped[str] = mapped_column(String(8))  # day | week
    period_start: Mapped[datetime] = mapped_column(UTCDateTime())
    period_end: Mapped[datetime] = mapped_column(UTCDateTime())
    content: Mapped[str] = mapped_column(Text)
    record_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    provider: Mapped[str] = mapped_column(String(32), default="local")
    is_read: Mapped[bool] = mapped_column(Boolean, default=False)
    is_pinned: Mapped[bool] = mapped_column(Boolean, default=False)
