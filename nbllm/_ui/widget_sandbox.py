"""The sandbox tab: pick a saved model, type a prompt (with a system prompt and temperature),
Run, and watch the answer stream in; Stop keeps what arrived.

The answer is shown by blocks (``mdblocks.BlockRedraw``), as ``%%llm`` shows Markdown: a bounded,
scrolling box of small HTML widgets, one per redraw's finished blocks, each sent to the browser once
(a widget's state), and only the last one (the open block) redrawn. Widgets have no per-cell cap,
so every finished block is frozen at once; the box groups them 32 to a sub-box so that adding one
re-sends at most 32 child ids.
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Callable
from typing import Any

import ipywidgets as W

from .._base.exceptions import NbllmError
from .._base.format import money
from .._base.redact import mask_url
from .._core.endpoint import Endpoint
from .._core.result import Result
from .._io.api import stream
from .._io.client import Stream
from .._io.registry import Registry
from .display import Throttle
from .mdblocks import BlockRedraw
from .widget_common import LABEL_STYLE, Worker, describe_error, esc, note

_PART_STYLE = (
    "white-space:pre-wrap;word-break:break-word;margin:0;padding:0;font-size:12px;background:none;border:0"
)
_CURSOR = "▌"
_GROUP = 32  # parts per sub-box

__all__ = ["Sandbox"]


class Sandbox:
    """Prompt box, Run / Stop and a streaming output. ``text`` is the answer shown (exact once
    the run ended); ``result`` the last ``nbllm.Result``; ``updates`` counts output redraws."""

    def __init__(self, registry: Callable[[], Registry], worker: Worker) -> None:
        self._registry = registry
        self._worker = worker
        self._stop = threading.Event()
        self.text = ""
        self.result: Result | None = None
        self.updates = 0
        wide = W.Layout(width="640px")
        self.model = W.Dropdown(description="Model", options=[], style=LABEL_STYLE)
        self.system = W.Textarea(
            description="System prompt",
            placeholder="You are a helpful assistant.",
            rows=2,
            style=LABEL_STYLE,
            layout=wide,
            continuous_update=False,
        )
        self.temperature = W.FloatSlider(
            description="Temperature",
            value=0.7,
            min=0.0,
            max=2.0,
            step=0.1,
            style=LABEL_STYLE,
            layout=W.Layout(width="420px"),
        )
        self.max_tokens = W.BoundedIntText(
            description="Max tokens", value=256, min=1, max=1_000_000, style=LABEL_STYLE
        )
        self.prompt = W.Textarea(
            description="Prompt",
            placeholder="Ask something…",
            rows=4,
            style=LABEL_STYLE,
            layout=wide,
            continuous_update=False,
        )
        self.prompt.add_class("nbllm-sandbox-prompt")
        self.run_button = W.Button(description="Run", icon="play", button_style="primary")
        self.stop_button = W.Button(description="Stop", icon="stop", disabled=True)
        self.output = W.VBox(
            layout=W.Layout(
                width="680px", max_height="24em", overflow="auto", border="1px solid #e1e4e8", padding="6px"
            )
        )
        self.output.add_class("nbllm-sandbox-output")
        self.output.add_class("nbllm-sandbox-text")
        self._parts: list[W.HTML] = []  # the answer's parts, in order (the last one is open)
        self._plan = BlockRedraw(markdown=False)
        self.stats = W.HTML()
        self.stats.add_class("nbllm-sandbox-stats")
        self.widget = W.VBox(
            [
                W.HTML("<h3 style='margin:4px 0'>Sandbox</h3>"),
                self.model,
                self.system,
                self.temperature,
                self.max_tokens,
                self.prompt,
                W.HBox([self.run_button, self.stop_button], layout=W.Layout(margin="6px 0")),
                self.output,
                self.stats,
            ],
            layout=W.Layout(padding="4px"),
        )
        self.run_button.on_click(lambda _b: self.run())
        self.stop_button.on_click(lambda _b: self.stop())

    def set_models(self, names: list[str], default: str | None) -> None:
        """New model list; keeps the current choice when it still exists."""
        current = self.model.value
        self.model.options = names
        if current in names:
            self.model.value = current
        elif names:
            self.model.value = default if default in names else names[0]

    @property
    def running(self) -> bool:
        return self._worker.busy("sandbox")

    def run(self) -> None:
        """Start streaming the answer to the prompt (in a worker thread)."""
        if self.running:
            return
        name, prompt = self.model.value, self.prompt.value
        if not name:
            self.stats.value = note("No model selected: add one first.", "error")
            return
        if not prompt.strip():
            self.stats.value = note("Type a prompt first.", "error")
            return
        try:
            ep = self._registry().get(name)
        except NbllmError as exc:
            self.stats.value = note(describe_error(exc), "error")
            return
        params: dict[str, Any] = {
            "temperature": round(float(self.temperature.value), 3),
            "max_tokens": int(self.max_tokens.value),
        }
        system = self.system.value.strip() or None
        self._stop.clear()
        self.text, self.result = "", None
        self.run_button.disabled, self.stop_button.disabled = True, False
        self._restart(_CURSOR)
        self.stats.value = note(f"Sending to {mask_url(ep.request_url) or ep.handler} …", "muted")
        self._worker.start(
            "sandbox", lambda: self._stream(ep, prompt, system, params), on_error=self._crashed
        )

    def stop(self) -> None:
        """Stop after the next chunk; the partial answer stays."""
        self._stop.set()

    @property
    def shown(self) -> str:
        """The text the output shows now (its parts joined; the cursor while running)."""
        return "".join(_unpart(p.value) for p in self._parts)

    def _part(self, text: str) -> W.HTML:
        self.updates += 1
        return W.HTML(value=_pre(text))

    def _restart(self, text: str) -> None:
        """The output emptied, then one part showing ``text``."""
        self._plan = BlockRedraw(markdown=False)
        self._parts = [self._part(text)]
        self.output.children = (W.VBox(self._parts),)

    def _set_last(self, text: str) -> None:
        self.updates += 1
        self._parts[-1].value = _pre(text)

    def _redraw(self) -> None:
        before = self._plan.shown or ""
        last, new = self._plan.redraw()
        if new is not None:
            self._set_last(before if last is None else last)  # frozen for good (cursor gone)
            part = self._part(new + _CURSOR)
            self._parts.append(part)
            group = self.output.children[-1]
            if len(group.children) < _GROUP:
                group.children = (*group.children, part)
            else:
                self.output.children = (*self.output.children, W.VBox([part]))
        elif last is not None:
            self._set_last(last + _CURSOR)

    def _final(self, text: str) -> None:
        """The exact final text: the last part holds what is not frozen (or, if ``text`` is not
        what arrived, the output is ``text`` alone)."""
        plan = self._plan
        rest = plan.finish()
        if len(text) != plan.arrived or text[plan.frozen :] != rest:
            self._restart(text)
        else:
            self._set_last(rest)

    def _stream(self, ep: Endpoint, prompt: str, system: str | None, params: dict[str, Any]) -> None:
        t0 = time.perf_counter()
        s: Stream | None = None
        error: str | None = None
        try:
            s = stream(ep, prompt, system=system, **params)
            throttle = Throttle(rate=10.0, byte_rate=float("inf"))  # at most ~10 updates a second
            with s:
                for delta in s:
                    if self._stop.is_set():
                        break
                    self._plan.feed(delta)
                    if throttle.due(0):
                        self.text = s.text
                        self._redraw()
                        throttle.mark()
        except NbllmError as exc:
            error = describe_error(exc)
        finally:
            self.result = s.result if s is not None else None
            self.text = self.result.text if self.result is not None else (s.text if s is not None else "")
            self._final(self.text)  # the exact final text, always
            self.run_button.disabled, self.stop_button.disabled = False, True
        if error is not None:
            self.stats.value = note(error, "error")
        else:
            self.stats.value = self._summary(time.perf_counter() - t0)

    def _summary(self, elapsed: float) -> str:
        r = self.result
        if r is None:
            return ""
        if r.finish_reason == "interrupted":
            return note(f"stopped after {elapsed:.2f} s; the partial answer is kept", "warn")
        parts = [
            f"HTTP {r.status_code}" if r.status_code else "",
            f"first token {r.ttft_s:.3f} s" if r.ttft_s is not None else "",
            f"total {r.latency_s:.3f} s" if r.latency_s is not None else "",
            (
                f"{r.usage.prompt_tokens}+{r.usage.completion_tokens} tokens"
                + (" (estimated)" if r.usage.estimated else "")
            )
            if r.usage.total_tokens is not None
            else "",
            money(r.cost) if r.cost is not None else "",
            f"finish: {r.finish_reason}" if r.finish_reason else "",
        ]
        return note("✓ " + " · ".join(esc(p) for p in parts if p), "ok", raw=True)

    def _crashed(self, exc: BaseException) -> None:
        self.stats.value = note(describe_error(exc), "error")
        self.run_button.disabled, self.stop_button.disabled = False, True


def _pre(text: str) -> str:
    """One part of the answer as HTML (``_unpart`` reads it back)."""
    return f'<pre class="nbllm-sandbox-part" style="{_PART_STYLE}">{esc(text)}</pre>'


def _unpart(value: str) -> str:
    return html.unescape(value[value.index(">") + 1 : value.rindex("</pre>")])
