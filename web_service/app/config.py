"""web_service's settings: the shared ones, read from the root `.env` then `web_service/.env`."""

from functools import lru_cache
from pathlib import Path

from pydantic import Field

from common.config import JiluSettings, service_settings_config

SERVICE_DIR = Path(__file__).resolve().parent.parent


class WebSettings(JiluSettings):
    model_config = service_settings_config(SERVICE_DIR)

    # Seconds between two `: ping` lines of `GET /api/v1/events`; the caller's session is
    # checked at each one (a logged-out stream ends within this long).
    events_heartbeat_seconds: float = Field(default=15.0, gt=0, le=300)


@lru_cache
def get_settings() -> WebSettings:
    return WebSettings()
