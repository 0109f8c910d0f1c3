"""What the OpenAI-compatible client returns: plain, frozen values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# One chat message as the wire format has it: {"role": "system"|"user"|"assistant", "content": str}.
ChatMessage = Mapping[str, str]


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
