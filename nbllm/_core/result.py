"""Value types returned by a call: ``Usage``, ``Delta`` and ``Result`` (pure, no I/O)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

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


class Delta(NamedTuple):
    """One piece of a streamed answer: ``kind`` is ``"text"`` or ``"reasoning"``.

    A NamedTuple, not a frozen dataclass: one is built per streamed chunk (4x cheaper)."""

    kind: Literal["text", "reasoning"]
    text: str


class Result:
    """The outcome of one call. ``str(result)`` is the answer text.

    ``cost`` is ``None`` when the endpoint has no token prices; ``raw`` is the parsed response,
    or the list of parsed chunks when streamed (kept as JSON text while streaming and parsed on
    first access: holding thousands of live dicts costs the stream allocation and GC time).
    ``ttft_s`` is the time to the first text (or reasoning) delta; for a non-streamed call it
    equals ``latency_s``.
    """

    __slots__ = (
        "_raw",
        "_raw_chunks",
        "cost",
        "data",
        "endpoint",
        "finish_reason",
        "latency_s",
        "model",
        "reasoning",
        "retries",
        "status_code",
        "streamed",
        "text",
        "ttft_s",
        "usage",
    )

    def __init__(
        self,
        text: str,
        endpoint: str,
        model: str | None = None,
        *,
        reasoning: str = "",
        usage: Usage | None = None,
        cost: float | None = None,
        finish_reason: str | None = None,
        latency_s: float | None = None,
        ttft_s: float | None = None,
        status_code: int | None = None,
        streamed: bool = False,
        retries: int = 0,
        raw: Any = None,
        raw_chunks: list[str] | None = None,
    ) -> None:
        self.text = text
        self.endpoint = endpoint
        self.model = model
        self.reasoning = reasoning
        self.usage = usage if usage is not None else Usage()
        self.cost = cost
        self.finish_reason = finish_reason
        self.latency_s = latency_s
        self.ttft_s = ttft_s
        self.status_code = status_code
        self.streamed = streamed
        self.retries = retries
        self._raw = raw
        self._raw_chunks = raw_chunks
        self.data: Any = None  # the parsed answer of a call with schema= (see _schema)

    @property
    def raw(self) -> Any:
        """The parsed response body, or the list of parsed chunks of a stream."""
        if self._raw_chunks is not None:
            self._raw = [json.loads(c) for c in self._raw_chunks]
            self._raw_chunks = None
        return self._raw

    def __str__(self) -> str:
        return self.text

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Result):
            return NotImplemented
        return self.to_dict() == other.to_dict() and self.raw == other.raw

    __hash__ = None  # type: ignore[assignment]  # mutable

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
