"""llm_service's settings: the shared ones, read from the root `.env` then `llm_service/.env`."""

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import field_validator
from pydantic_settings import NoDecode

from common.config import JiluSettings, service_settings_config, split_csv

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
    # Extraction (issue 12): workers per process reading attachments and links; OCR worker
    # processes (each holds the OCR models, about 200 MB); attempts per job, first retry delay.
    extraction_workers: int = 2
    ocr_processes: int = 1
    extraction_max_attempts: int = 3
    extraction_retry_seconds: float = 5.0
    # Scanned PDFs are read by OCR up to this many pages; voice memos are sent up to this size.
    extraction_max_ocr_pages: int = 10
    extraction_max_audio_mb: int = 25
    # Fetching link records' pages: hosts an admin allows although they resolve to private
    # addresses (host:port, as JILU_LLM_ALLOWED_HOSTS), the size cap and the time limit.
    link_allowed_hosts: Annotated[list[str], NoDecode] = []
    link_max_mb: int = 5
    link_timeout_seconds: float = 10.0

    @field_validator(
        "analysis_workers",
        "analysis_max_attempts",
        "memory_short_term_days",
        "scheduler_lock_seconds",
        "extraction_workers",
        "ocr_processes",
        "extraction_max_attempts",
        "extraction_max_ocr_pages",
        "extraction_max_audio_mb",
        "link_max_mb",
    )
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

    @field_validator("link_allowed_hosts", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        return split_csv(value)

    @field_validator("analysis_retry_seconds", "extraction_retry_seconds", "link_timeout_seconds")
    @classmethod
    def _positive_seconds(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be greater than 0")
        return value


@lru_cache
def get_settings() -> LlmSettings:
    return LlmSettings()
