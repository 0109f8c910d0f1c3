"""Every table of Jilu, imported in one place so Alembic and tests see the whole schema.

Domain packages in `common/` define their models on `Base`; import them here as they come.
"""

from common.ai.models import ChatMessage, Conversation, Digest, LlmConfig, Memory
from common.database.base import Base
from common.records.models import Attachment, Record, RecordTag, SyncCounter
from common.users.models import ApiToken, User

metadata = Base.metadata

__all__ = [
    "ApiToken",
    "Attachment",
    "Base",
    "ChatMessage",
    "Conversation",
    "Digest",
    "LlmConfig",
    "Memory",
    "Record",
    "RecordTag",
    "SyncCounter",
    "User",
    "metadata",
]
