"""mobile_service's settings: the shared ones, read from the root `.env` then `mobile_service/.env`."""

from functools import lru_cache
from pathlib import Path

from common.config import JiluSettings, service_settings_config

SERVICE_DIR = Path(__file__).resolve().parent.parent


class MobileSettings(JiluSettings):
    model_config = service_settings_config(SERVICE_DIR)


@lru_cache
def get_settings() -> MobileSettings:
    return MobileSettings()
