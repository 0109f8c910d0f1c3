"""llm_service's settings: the shared ones, read from the root `.env` then `llm_service/.env`."""

from functools import lru_cache
from pathlib import Path

from pydantic import field_validator

from common.config import JiluSettings, service_settings_config

SERVICE_DIR = Path(__file__).resolve().parent.parent


class LlmSettings(JiluSettings):
    model_config = service_settings_config(SERVICE_DIR)

    # The analysis queue: workers per process, attempts per job, first retry delay.
    analysis_workers: int = 4
    analysis_max_attempts: int = 4
    analysis_retry_seconds: float = 2.0
    # Per-user daily budgets for remote providers (the offline one is free); 0 = unlimited.
    llm_daily_requests: int = 500
    llm_daily_tokens: int = 200_000
    # Memories: how long a short-term one lives; the daily decay of extracted long-term ones
    # (importance × factor per day without reinforcement, forgotten below the floor).
    memory_short_term_days: int = 7
    memory_decay_factor: float = 0.97
    memory_decay_floor: float = 0.05
    # The digest and memory scheduler: seconds between runs (0 = off in this process), and
    # how long its Redis lock lasts if the holder dies mid-run.
    scheduler_interval_seconds: float = 300.0
    scheduler_lock_seconds: int = 600

    @field_validator("analysis_workers", "analysis_max_attempts", "memory_short_term_days", "scheduler_lock_seconds")
    @classmethod
    def _at_least_one(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be at least 1")
        return value

    @field_validator("memory_decay_factor", "memory_decay_floor")
    @classmethod
    def _fraction(cls, value: float) -> float:
        if not 0 <= value <= 1:
            raise ValueError("must be between 0 and 1")
        return value

    @field_validator("scheduler_interval_seconds")
    @classmethod
    def _not_negative_seconds(cls, value: float) -> float:
        if value < 0:
            raise ValueError("must be 0 (off) or more")
        return value

    @field_validator("llm_daily_requests", "llm_daily_tokens")
    @classmethod
    def _not_negative(cls, value: int) -> int:
        if value < 0:
            raise ValueError("must be 0 (unlimited) or more")
        return value

    @field_validator("analysis_retry_seconds")
    @classmethod
    def _positive_seconds(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be greater than 0")
        return value


@lru_cache
def get_settings() -> LlmSettings:
    return LlmSettings()
