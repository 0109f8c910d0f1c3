"""What an administrator may change about a user."""

from pydantic import BaseModel, ConfigDict

from common.wire_types import StrictFlag
from user_service.app.users.schemas import Role


class AdminUserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"is_active": False}]})

    role: Role | None = None
    is_active: StrictFlag | None = None
