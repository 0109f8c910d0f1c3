"""web_service's state, built by its lifespan (`web_service.app.main`)."""

from __future__ import annotations

from dataclasses import dataclass

from common.state import RecordsState
from web_service.app.config import WebSettings
from web_service.app.events.hub import RecordEventHub


@dataclass(frozen=True, kw_only=True)
class WebState(RecordsState):
    """The record services' state, and the live record events of this process."""

    settings: WebSettings
    record_events: RecordEventHub
