"""What every fake answers, independent of wire format: deterministic text, tokens, magic words.

The answer to a prompt is ``"echo: " + <last user text>``, cut at the first stop sequence, then to at
most ``max_tokens`` pieces. A "token" is a whitespace-separated word: input tokens count the words of
every text the request sent (system prompt and all turns), output tokens the pieces of the answer, and
each streamed delta is one piece, so usage numbers always agree with the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: a prompt containing it gets the provider's own 4xx "invalid request" error (400, or 422 for TGI)
MAGIC_4XX = "FAKE-4XX"
#: a prompt containing it gets the provider's rate-limit error (429 with ``Retry-After: 1``)
MAGIC_429 = "FAKE-429"
#: a streamed answer breaks after its first text delta with the provider's in-stream error;
#: a non-streamed request with it gets the provider's server-side error status instead
MAGIC_STREAM_ERROR = "FAKE-STREAM-ERROR"

_PIECES = re.compile(r"\S+\s*|\s+")
_WORDS = re.compile(r"\S+")


def count_tokens(*texts: str) -> int:
    return sum(len(_WORDS.findall(t)) for t in texts)


def pieces(text: str) -> list[str]:
    """``text`` split into its streamed pieces; ``"".join(pieces(t)) == t``."""
    return _PIECES.findall(text)


@dataclass
class Answer:
    text: str
    pieces: list[str]
    reason: str  # "stop" (natural end), "length" (max tokens reached) or "stop_sequence"
    stop_sequence: str | None = None

    @property
    def tokens(self) -> int:
        return len(self.pieces)


def answer(prompt: str, max_tokens: int | None = None, stop: list[str] | None = None) -> Answer:
    """The deterministic answer to ``prompt`` under the request's limits."""
    full = "echo: " + prompt
    reason, matched = "stop", None
    cut = len(full)
    for seq in stop or []:
        at = full.find(seq) if seq else -1
        if 0 <= at < cut:
            cut, matched = at, seq
    if matched is not None:
        full, reason = full[:cut], "stop_sequence"
    parts = pieces(full)
    if max_tokens is not None and len(parts) > max_tokens:
        parts, reason, matched = parts[:max_tokens], "length", None
    return Answer("".join(parts), parts, reason, matched)


def magic(text: str) -> str | None:
    """The magic word in ``text`` (the first that applies), or None."""
    for word in (MAGIC_4XX, MAGIC_429, MAGIC_STREAM_ERROR):
        if word in text:
            return word
    return None


def masked(key: str) -> str:
    """How providers echo a wrong key back: a few characters at each end."""
    return key[:3] + "*" * max(len(key) - 7, 3) + key[-4:] if len(key) > 8 else "*" * len(key)


def type_name(value: object) -> str:
    return {
        str: "string",
        int: "integer",
        float: "number",
        bool: "boolean",
        list: "array",
        dict: "object",
        type(None): "null",
    }.get(type(value), type(value).__name__)
