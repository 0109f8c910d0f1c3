"""What the OpenAI-compatible client returns: plain, frozen values."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# One part of a message's content: {"type": "text", "text": ...} or, for a model that sees
# images, {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,..."}}.
ContentPart = Mapping[str, Any]
# One chat message as the wire format has it: {"role": "system"|"user"|"assistant", "content": ...},
# the content a string or a list of parts.
ChatMessage = Mapping[str, str | Sequence[ContentPart]]


@dataclass(frozen=True)
class TokenUsage:
    """Tokens a call used, as the provider reported them (0 when it did not): what the
    client returns and what llm_service's providers and budgets count."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def from_wire(cls, value: Any) -> TokenUsage | None:
        """The `usage` object of a response, leniently (missing or odd fields count as 0)."""
        if not isinstance(value, Mapping):
            return None

        def count(key: str) -> int:
            number = value.get(key)
            return number if isinstance(number, int) and not isinstance(number, bool) and number >= 0 else 0

        return cls(prompt_tokens=count("prompt_tokens"), completion_tokens=count("completion_tokens"))


@dataclass(frozen=True)
class ChatCompletion:
    """A whole answer (`stream: false`)."""

    text: str
    usage: TokenUsage
    finish_reason: str | None = None


@dataclass(frozen=True)
class StreamDelta:
    """One piece of a streamed answer. The last one has `done=True`, no text, and the usage
    when the provider reported it."""

    text: str = ""
    done: bool = False
    usage: TokenUsage | None = None
    finish_reason: str | None = None


@dataclass(frozen=True)
class Transcript:
    """What `POST /audio/transcriptions` heard: the text, the usage when the provider reported
    tokens (0 otherwise), and the audio's length when it said."""

    text: str
    usage: TokenUsage
    duration_seconds: float | None = None
