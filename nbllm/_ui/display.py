"""What the magics show: the answer by blocks, side-by-side segments, footers and tables.

Two sinks. In a notebook (a kernel with a frontend) a Markdown or plain-text answer is cut into
blocks (``mdblocks``): finished blocks are frozen into outputs that are never sent again and only
the last output (the open block) is redrawn, at most ``rate`` times a second and ``byte_rate``
bytes a second, so the bytes sent and the browser's work stay about linear in the answer and the
redraw rate stays steady (``BlockLive``); side by side is cut into segments the same way
(``ColumnsLive``). A JSON or code answer is ONE output replaced at each redraw (``Live``), plus
one exact final update. The saved notebook holds the answer once. In a terminal the deltas go to
stdout.
"""

from __future__ import annotations

import html
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from IPython.core.display_functions import DisplayHandle, display

from .._base.format import money
from .._core.result import Result
from .mdblocks import BlockRedraw

__all__ = [
    "STREAM_MODE",
    "BlockLive",
    "Column",
    "ColumnsLive",
    "Live",
    "Throttle",
    "answer_bundle",
    "by_blocks",
    "columns_bundle",
    "duration",
    "footer_line",
    "footer_text",
    "make_live",
    "show",
    "show_footer",
    "table_bundle",
    "update",
]

Bundle = dict[str, Any]
# How a streamed Markdown answer is redrawn in a notebook: "blocks" (finished blocks sent once,
# the open block redrawn) or "whole" (the whole text re-sent at each redraw: the old way, kept
# for bench/bench_browser_stream.py to compare against).
STREAM_MODE = "blocks"
_FOOTER_STYLE = "color:#777;font-size:0.85em;font-family:var(--jp-code-font-family,monospace)"
# side by side: every segment the same full width and column widths, so a column reads down
_SEGMENT_STYLE = "width:100%;table-layout:fixed;margin:0"


def show(obj: Any, *, raw: bool = True, display_id: bool = False) -> DisplayHandle | None:
    """``IPython.display.display`` with a type: one object (a mime bundle when ``raw``)."""
    handle = display(obj, raw=raw, display_id=display_id or None)  # type: ignore[no-untyped-call]
    return handle if isinstance(handle, DisplayHandle) else None


def update(handle: DisplayHandle, bundle: Bundle) -> None:
    handle.update(bundle, raw=True)  # type: ignore[no-untyped-call]


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def footer_line(name: str, result: Result | None, state: str = "done") -> str:
    """``demo · 5 + 12 tokens · first token 3 ms · total 40 ms · $0.000012`` (+ state marker);
    the cost is written by ``_format.money`` like everywhere else."""
    parts = [name] if state == "done" else [name, state]
    if result is not None:
        if result.model and result.model != name:
            parts.append(result.model)
        usage = result.usage
        if usage.total_tokens is not None:
            approx = "~" if usage.estimated else ""
            parts.append(f"{approx}{usage.prompt_tokens or 0} + {usage.completion_tokens or 0} tokens")
        if result.ttft_s is not None:
            parts.append(f"first token {duration(result.ttft_s)}")
        if result.latency_s is not None:
            parts.append(f"total {duration(result.latency_s)}")
        if result.cost is not None:
            parts.append(money(result.cost))
    return " · ".join(parts)


def footer_text(line: str) -> str:
    """A footer as plain text: in brackets, so it is not read as part of the answer. The one rule
    for a terminal and for every text/plain twin, one answer or side by side (HTML shows the
    footer small and grey instead, without brackets)."""
    return f"[{line}]"


def show_footer(line: str, *, rich: bool) -> None:
    if rich:
        show(
            {
                "text/plain": footer_text(line),
                "text/html": f'<div class="nbllm-footer" style="{_FOOTER_STYLE}">{html.escape(line)}</div>',
            }
        )
    else:
        print(footer_text(line), flush=True)


# ---- one answer -------------------------------------------------------------------------------


def _unfence(text: str) -> str:
    """The body of a single ```json fence around the whole text, else the text."""
    stripped = text.strip()
    if stripped.startswith("```") and stripped.endswith("```") and stripped.count("```") == 2:
        return stripped[3:-3].split("\n", 1)[-1] if "\n" in stripped else stripped[3:-3]
    return text


def _close_fence(text: str) -> str:
    """While streaming, close an open ``` fence so the rest of the page is not swallowed."""
    return text + "\n```" if text.count("```") % 2 else text


def _fence(text: str, lang: str = "") -> str:
    if "```" in text:
        return _close_fence(text)
    return f"```{lang}\n{text}\n```"


def answer_bundle(text: str, fmt: str, *, final: bool) -> Bundle:
    """The mime bundle for an answer in ``fmt`` (markdown, text, json, code)."""
    if fmt == "markdown":
        return {"text/markdown": text if final else _close_fence(text), "text/plain": text}
    if fmt == "code":
        return {"text/markdown": _fence(text), "text/plain": text}
    if fmt == "json" and final:
        try:
            value = json.loads(_unfence(text))
        except ValueError:
            return {"text/plain": text}
        return {"application/json": value, "text/plain": json.dumps(value, indent=2, ensure_ascii=False)}
    return {"text/plain": text}


class Throttle:
    """When a growing answer may be redrawn: at most ``rate`` redraws a second, and the redraws
    together re-send at most ``byte_rate`` bytes a second (each one carries the whole text, so the
    interval grows with it). One policy for %%llm, side by side and the form's sandbox."""

    def __init__(self, rate: float = 10.0, byte_rate: float = 512_000) -> None:
        self.min_interval = 1.0 / rate if rate > 0 else 0.0
        self.byte_rate = byte_rate
        self.last = float("-inf")

    def wait(self, size: int) -> float:
        """Seconds until a redraw that re-sends ``size`` bytes is allowed (<= 0: now)."""
        return self.last + max(self.min_interval, size / self.byte_rate) - time.monotonic()

    def due(self, size: int) -> bool:
        return self.wait(size) <= 0

    def mark(self) -> None:
        """A redraw was sent just now."""
        self.last = time.monotonic()


class Live:
    """One answer that grows in place (notebook) or streams to stdout (terminal).

    ``updates`` counts the display messages sent (the first display included).
    """

    def __init__(self, *, rich: bool, fmt: str, rate: float = 10.0, byte_rate: float = 512_000) -> None:
        self.rich = rich
        self.fmt = fmt
        self._throttle = Throttle(rate, byte_rate)
        self._copies = 2 if fmt in ("markdown", "code") else 1  # text/plain + text/markdown per update
        self._parts: list[str] = []
        self._size = 0
        self._written = 0
        self.updates = 0
        self._handle: DisplayHandle | None = None
        if rich:
            self._handle = show({"text/plain": "…"}, display_id=True)
            self.updates = 1

    def add(self, delta: str) -> None:
        self._parts.append(delta)
        self._size += len(delta)
        if self._throttle.due(self._copies * self._size):
            self._throttle.mark()
            self._push(False)

    def _text(self) -> str:
        if len(self._parts) > 1:
            self._parts = ["".join(self._parts)]
        return self._parts[0] if self._parts else ""

    def _push(self, final: bool, text: str | None = None) -> None:
        text = self._text() if text is None else text
        if self._handle is not None:
            update(self._handle, answer_bundle(text, self.fmt, final=final))
            self.updates += 1
        else:
            sys.stdout.write(text[self._written :])
            self._written = len(text)
            if final and text and not text.endswith("\n"):
                sys.stdout.write("\n")
            sys.stdout.flush()

    def finish(self, text: str | None = None) -> None:
        """The exact final state: ``text`` (default: what arrived)."""
        self._push(True, text)


class BlockLive(Live):
    """A Markdown (or plain text) answer in a notebook, by blocks (``mdblocks.BlockRedraw``
    decides): finished blocks are frozen into outputs that are never sent again; only the last
    output (the open block) is redrawn, at most ``rate`` times a second (``byte_rate`` counts only
    its text).

    JupyterLab shows only the first 50 outputs of a cell (``maxNumberOutputs``) and an answer has
    more blocks than that from about 2,000 tokens on, so the first ``each_block`` outputs take one
    redraw's finished blocks each; after that finished blocks wait in the last output until they
    add up to ``min_frozen`` characters (and ``growth`` times what is frozen already), and past
    ``max_outputs`` nothing more is frozen. The saved notebook holds each block once, in order:
    the answer exactly once.
    """

    each_block = 10  # the first outputs: one per redraw's finished blocks, nothing re-sent
    min_frozen = 4000  # characters: ~1,000 tokens; below it a redraw costs the browser little
    growth = 0.05  # past 80,000 characters frozen, freeze in 5% steps: the outputs stay few
    max_outputs = 45  # JupyterLab renders at most 50 outputs per cell (footer and others too)

    def __init__(
        self,
        *,
        fmt: str = "markdown",
        rate: float = 10.0,
        byte_rate: float = 512_000,
        max_outputs: int | None = None,
    ) -> None:
        super().__init__(rich=True, fmt=fmt, rate=rate, byte_rate=byte_rate)
        self._handles = [self._handle] if self._handle is not None else []
        self._plan = BlockRedraw(markdown=fmt == "markdown", **self.budget(max_outputs))

    @classmethod
    def budget(cls, max_outputs: int | None = None, columns: int = 1) -> dict[str, Any]:
        """``BlockRedraw``'s freezing policy for a view of at most ``max_outputs`` outputs (None:
        ``max_outputs``, for JupyterLab's default of 50 per cell; 0: no limit, as with
        JupyterLab's ``maxNumberOutputs`` set to 0: every redraw's finished blocks frozen at once).
        ``columns`` > 1: side by side (one more output for the header, bigger batches)."""
        if max_outputs == 0:
            return {"each_block": float("inf"), "max_parts": float("inf")}
        return {
            "each_block": cls.each_block,
            "min_frozen": cls.min_frozen * columns,
            "growth": cls.growth,
            "max_parts": (cls.max_outputs if max_outputs is None else max_outputs) - (columns > 1),
        }

    @property
    def outputs(self) -> int:
        return len(self._handles)

    def add(self, delta: str) -> None:
        self._plan.feed(delta)
        if self._throttle.due(self._copies * self._plan.unfrozen):
            self._throttle.mark()
            self._redraw()

    def _send(self, handle: DisplayHandle | None, text: str) -> None:
        bundle = (
            {"text/markdown": text, "text/plain": text} if self.fmt == "markdown" else {"text/plain": text}
        )
        self.updates += 1
        if handle is None:
            new = show(bundle, display_id=True)
            if new is not None:
                self._handles.append(new)
        else:
            update(handle, bundle)

    def _last(self) -> DisplayHandle | None:
        return self._handles[-1] if self._handles else None

    def _redraw(self) -> None:
        last, new = self._plan.redraw()
        if last is not None:
            self._send(self._last(), last)  # grows: the open block, or the blocks frozen for good
        if new is not None:
            self._send(None, new)  # a new output after it takes the open block

    def finish(self, text: str | None = None) -> None:
        """The exact final state: the last output holds all that is not frozen (or, if ``text``
        is not what arrived, ``text`` alone, the other outputs emptied)."""
        plan = self._plan
        shown = plan.shown
        rest = plan.finish()
        if text is not None and (len(text) != plan.arrived or text[plan.frozen :] != rest):
            for h in self._handles[:-1]:
                update(h, {"text/plain": ""})
            self._send(self._last(), text)
        elif rest != shown:  # (None: never drawn, the placeholder is still there)
            self._send(self._last(), rest)


def by_blocks(*, rich: bool, fmt: str) -> bool:
    """Whether an answer in ``fmt`` is drawn by blocks: Markdown and plain text in a notebook
    (JSON and code are parsed or fenced whole), unless ``STREAM_MODE`` says otherwise."""
    return rich and fmt in ("markdown", "text") and STREAM_MODE == "blocks"


def make_live(
    *, rich: bool, fmt: str, rate: float = 10.0, byte_rate: float = 512_000, max_outputs: int | None = None
) -> Live:
    """The growing answer for ``fmt``: by blocks (``by_blocks``), else one output."""
    if by_blocks(rich=rich, fmt=fmt):
        return BlockLive(fmt=fmt, rate=rate, byte_rate=byte_rate, max_outputs=max_outputs)
    return Live(rich=rich, fmt=fmt, rate=rate, byte_rate=byte_rate)


# ---- several answers side by side -------------------------------------------------------------


@dataclass
class Column:
    """One endpoint's answer in a side-by-side run (``parts`` is appended from a worker thread)."""

    name: str
    parts: list[str] = field(default_factory=list)
    result: Result | None = None
    error: str | None = None
    state: str = "waiting"  # waiting | streaming | done | failed | interrupted

    @property
    def text(self) -> str:
        return "".join(self.parts)

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed", "interrupted")

    def footer(self) -> str:
        return (
            footer_line(self.name, self.result, self.state)
            if self.finished
            else f"{self.name} · {self.state}…"
        )


def column_text(col: Column) -> str:
    """A finished column for a terminal or text/plain."""
    body = col.text + (f"\n{col.error}" if col.error else "")
    if not body.endswith("\n"):
        body += "\n"
    return f"── {col.name} ──\n{body}{footer_text(col.footer())}\n"


def _column_markdown(col: Column, fmt: str, final: bool) -> str:
    text = col.text
    if fmt == "code":
        body = _fence(text)
    elif fmt == "json":
        body = _fence(
            json.dumps(json.loads(_unfence(text)), indent=2) if final and _parses(text) else text, "json"
        )
    else:
        body = text if final else _close_fence(text)
    error = f"\n\n**{html.escape(col.error)}**" if col.error else ""
    return f'<td valign="top">\n\n{body}{error}\n\n<sub>{html.escape(col.footer())}</sub>\n\n</td>'


def _parses(text: str) -> bool:
    try:
        json.loads(_unfence(text))
    except ValueError:
        return False
    return True


def columns_bundle(cols: list[Column], fmt: str, *, final: bool) -> Bundle:
    """One output with a column per endpoint: markdown cells (rendered), or preformatted text."""
    plain = "\n".join(column_text(c) if c.finished else f"── {c.name} ──\n{c.text}\n" for c in cols)
    head = "".join(f"<th>{html.escape(c.name)}</th>" for c in cols)
    width = f'width="{100 // len(cols)}%"'
    done = ' class="nbllm-done"' if final else ""  # the finished table: a hook for CSS and tests
    if fmt == "text":
        cells = "".join(
            f'<td valign="top" {width}><pre style="white-space:pre-wrap;margin:0">{html.escape(c.text)}'
            + (f"\n<b>{html.escape(c.error)}</b>" if c.error else "")
            + f'</pre><div style="{_FOOTER_STYLE}">{html.escape(c.footer())}</div></td>'
            for c in cols
        )
        return {"text/html": f"<table{done}><tr>{head}</tr><tr>{cells}</tr></table>", "text/plain": plain}
    cells = "\n".join(_column_markdown(c, fmt, final).replace("<td ", f"<td {width} ", 1) for c in cols)
    return {
        "text/markdown": f"<table{done}>\n<tr>{head}</tr>\n<tr>\n{cells}\n</tr>\n</table>",
        "text/plain": plain,
    }


class ColumnsLive:
    """Side by side in a notebook, by blocks: a header output (each endpoint's name and state:
    its footer once done), then segments: outputs holding, for every column, the blocks that
    finished in one stretch of time. Only the last segment is redrawn (each column's waiting
    blocks and open block); when blocks have finished it grows to hold exactly them, for good,
    and a new segment takes the open blocks, with the same policy as ``BlockLive`` (one segment
    per redraw for the first ones, then batches, at most ``BlockLive.max_outputs`` outputs).
    Columns keep one width (a fixed table layout) so a column reads down across segments; the
    saved notebook holds each answer once, in its segments. Markdown and text answers.
    """

    def __init__(self, cols: list[Column], fmt: str, max_outputs: int | None = None) -> None:
        self.cols, self.fmt = cols, fmt
        # one policy for all the columns (the first plan decides), the header being one output
        budget = BlockLive.budget(max_outputs, len(cols))
        self._plans = [BlockRedraw(markdown=fmt == "markdown", **budget) for _ in cols]
        self._fed = [0] * len(cols)  # parts of each column's text fed to its plan
        self._width = f"{100 // len(cols)}%"
        self._head_shown = self._head(final=False)
        self._head_handle = show(self._head_shown, display_id=True)
        self._segment_shown: Bundle = self._segment(["" for _ in cols])
        self._handles: list[DisplayHandle | None] = [show(self._segment_shown, display_id=True)]
        self.updates = 2

    @property
    def outputs(self) -> int:
        return 1 + len(self._handles)

    @property
    def unfrozen(self) -> int:
        """Characters a redraw of the last segment carries (for a byte budget)."""
        return sum(p.unfrozen for p in self._plans)

    def _feed(self) -> None:
        for i, (col, plan) in enumerate(zip(self.cols, self._plans, strict=True)):
            new = col.parts[self._fed[i] :]
            self._fed[i] += len(new)
            for delta in new:
                plan.feed(delta)

    def _head(self, *, final: bool) -> Bundle:
        done = ' class="nbllm-columns nbllm-done"' if final else ' class="nbllm-columns"'
        names = "".join(
            f'<th width="{self._width}" style="text-align:left">{html.escape(c.name)}</th>' for c in self.cols
        )
        states = "".join(
            f'<td width="{self._width}" style="{_FOOTER_STYLE}">{html.escape(c.footer())}'
            + (f"<br><b>{html.escape(c.error)}</b>" if c.error else "")
            + "</td>"
            for c in self.cols
        )
        plain = "   ".join(footer_text(c.footer()) for c in self.cols)
        return {
            "text/html": f'<table{done} style="{_SEGMENT_STYLE}"><tr>{names}</tr><tr>{states}</tr></table>',
            "text/plain": plain,
        }

    def _segment(self, texts: list[str]) -> Bundle:
        plain = "".join(f"── {c.name} ──\n{t}\n" for c, t in zip(self.cols, texts, strict=True) if t)
        if self.fmt == "text":
            cells = "".join(
                f'<td width="{self._width}" valign="top"><pre style="white-space:pre-wrap;margin:0">'
                f"{html.escape(t)}</pre></td>"
                for t in texts
            )
            return {
                "text/html": f'<table style="{_SEGMENT_STYLE}"><tr>{cells}</tr></table>',
                "text/plain": plain,
            }
        cells = "\n".join(f'<td width="{self._width}" valign="top">\n\n{t}\n\n</td>' for t in texts)
        return {
            "text/markdown": f'<table style="{_SEGMENT_STYLE}">\n<tr>\n{cells}\n</tr>\n</table>',
            "text/plain": plain,
        }

    def _send_last(self, bundle: Bundle) -> None:
        handle = self._handles[-1]
        if bundle != self._segment_shown and handle is not None:
            update(handle, bundle)
            self._segment_shown = bundle
            self.updates += 1

    def _send_head(self, bundle: Bundle) -> None:
        if bundle != self._head_shown and self._head_handle is not None:
            update(self._head_handle, bundle)
            self._head_shown = bundle
            self.updates += 1

    def redraw(self) -> None:
        """Show what arrived: the header's states, the last segment (and maybe a new one)."""
        self._feed()
        plans = self._plans
        for plan in plans:
            plan.collect()
        pending = sum(p.pending_size for p in plans)
        frozen = sum(p.frozen for p in plans)
        if plans[0].due(len(self._handles), frozen, pending):  # one policy for all the columns
            self._send_last(self._segment([p.freeze() for p in plans]))  # grows, then frozen for good
            self._segment_shown = self._segment([p.open_text() for p in plans])
            self._handles.append(show(self._segment_shown, display_id=True))
            self.updates += 1
        else:
            self._send_last(self._segment([p.pending_text() + p.open_text() for p in plans]))
        self._send_head(self._head(final=False))

    def finish(self) -> None:
        """The exact final state: every column's rest in the last segment, the footers on top."""
        self._feed()
        self._send_last(self._segment([plan.finish() for plan in self._plans]))
        self._send_head(self._head(final=True))


# ---- tables -----------------------------------------------------------------------------------


def table_bundle(header: list[str], rows: list[list[str]], note: str = "") -> Bundle:
    """An aligned text table plus its HTML twin."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    th = "".join(f'<th style="text-align:left">{html.escape(h)}</th>' for h in header)
    trs = "".join(
        "<tr>" + "".join(f'<td style="text-align:left">{html.escape(str(v))}</td>' for v in row) + "</tr>"
        for row in rows
    )
    note_html = f'<div style="{_FOOTER_STYLE}">{html.escape(note)}</div>' if note else ""
    return {
        "text/plain": "\n".join(lines) + (f"\n{note}" if note else ""),
        "text/html": f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>{note_html}",
    }
