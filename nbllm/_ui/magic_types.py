"""The value types of ``%%llm`` runs: one call, how to show it, what it left behind.

Below both runners (text in ``_magic_run``, images in ``_image_display``), so neither imports the
other for them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._base.exceptions import NbllmError
from .._core.result import Result

__all__ = ["Call", "Outcome", "Prompt", "StreamInterrupted", "View"]

Prompt = str | Sequence[Mapping[str, Any]]


class StreamInterrupted(KeyboardInterrupt):
    """The user interrupted the kernel during ``%%llm``; the partial answer was kept.

    A ``KeyboardInterrupt`` (queued cells are skipped, as for any interrupt) that IPython shows
    as one line instead of a traceback.
    """

    def _render_traceback_(self) -> list[str]:
        return [f"KeyboardInterrupt: {self.args[0] if self.args else 'interrupted'}"]


@dataclass(frozen=True)
class Call:
    """One endpoint's request."""

    name: str
    prompt: Prompt
    system: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    schema: Any = None  # a nbllm._core.schema.Schema: structured output, shown parsed under the text


@dataclass(frozen=True)
class View:
    """How to show answers."""

    rich: bool
    fmt: str = "markdown"
    stream: bool = True
    rate: float = 10.0
    byte_rate: float = 512_000.0
    max_outputs: int | None = None  # outputs a streamed answer may use (None: JupyterLab's default)


@dataclass
class Outcome:
    """What a call left behind: the (possibly partial) result and the error, if any."""

    name: str
    result: Result | None = None
    error: NbllmError | None = None
    interrupted: bool = False
    updates: int = 0
