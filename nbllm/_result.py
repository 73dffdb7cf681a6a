"""Value types returned by a call: ``Usage``, ``Delta`` and ``Result`` (pure, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Delta", "Result", "Usage"]


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts reported by the server (``None`` when it did not report them).

    ``estimated`` is true when the counts were estimated by nbllm (no usage in the response).
    """

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    estimated: bool = False

    @property
    def total_tokens(self) -> int | None:
        if self.prompt_tokens is None and self.completion_tokens is None:
            return None
        return (self.prompt_tokens or 0) + (self.completion_tokens or 0)


@dataclass(frozen=True, slots=True)
class Delta:
    """One piece of a streamed answer: ``kind`` is ``"text"`` or ``"reasoning"``."""

    kind: Literal["text", "reasoning"]
    text: str


@dataclass(slots=True)
class Result:
    """The outcome of one call. ``str(result)`` is the answer text.

    ``cost`` is ``None`` when the endpoint has no token prices; ``raw`` is the parsed response
    (or the list of parsed chunks when streamed). ``ttft_s`` is the time to the first text (or
    reasoning) delta; for a non-streamed call it equals ``latency_s``.
    """

    text: str
    endpoint: str
    model: str | None = None
    reasoning: str = ""
    usage: Usage = field(default_factory=Usage)
    cost: float | None = None
    finish_reason: str | None = None
    latency_s: float | None = None
    ttft_s: float | None = None
    status_code: int | None = None
    streamed: bool = False
    retries: int = 0
    raw: Any = None

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        text = self.text if len(self.text) <= 60 else self.text[:57] + "..."
        parts = [f"endpoint={self.endpoint!r}", f"text={text!r}"]
        if self.usage.total_tokens is not None:
            parts.append(f"tokens={self.usage.prompt_tokens}+{self.usage.completion_tokens}")
        if self.latency_s is not None:
            parts.append(f"latency_s={self.latency_s:.3f}")
        if self.cost is not None:
            parts.append(f"cost={self.cost:.6f}")
        return f"Result({', '.join(parts)})"

    def to_dict(self) -> dict[str, Any]:
        """A flat, JSON-friendly record (no raw payload)."""
        return {
            "endpoint": self.endpoint,
            "model": self.model,
            "text": self.text,
            "reasoning": self.reasoning,
            "prompt_tokens": self.usage.prompt_tokens,
            "completion_tokens": self.usage.completion_tokens,
            "tokens_estimated": self.usage.estimated,
            "cost": self.cost,
            "finish_reason": self.finish_reason,
            "latency_s": self.latency_s,
            "ttft_s": self.ttft_s,
            "status_code": self.status_code,
            "streamed": self.streamed,
            "retries": self.retries,
        }
