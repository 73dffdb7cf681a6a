"""Running ``%%llm`` calls: one streamed answer, or several side by side, interruptible.

Only the public API is called (``nbllm.stream`` / ``complete`` / ``astream`` / ``acomplete``).
Side by side, the streams run concurrently on one asyncio loop in a daemon thread (ipykernel's
loop already runs in the main thread); the main thread renders and is the one a kernel interrupt
(SIGINT) reaches: it cancels the streams, which close their connections and keep their text.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import threading
from collections.abc import Sequence
from typing import Any

from IPython.core.display_functions import DisplayHandle

from .._base.exceptions import NbllmError
from .._io.api import acomplete, astream, complete, stream
from .._io.client import AsyncStream, Stream
from .._io.loop import background_loop
from .display import (
    Column,
    ColumnsLive,
    Throttle,
    by_blocks,
    column_text,
    columns_bundle,
    footer_line,
    make_live,
    show,
    show_footer,
    update,
)
from .image_display import is_image_endpoint, run_image
from .magic_hints import for_magic
from .magic_types import Call, Outcome, StreamInterrupted, View

__all__ = ["Call", "Outcome", "StreamInterrupted", "View", "run_many", "run_one"]


def run_one(call: Call, view: View) -> Outcome:
    """Stream (or fetch) one answer into a single growing output, then its footer."""
    if is_image_endpoint(call.name):  # images: shown whole, with their own footer
        return run_image(call, view)
    live = make_live(
        rich=view.rich, fmt=view.fmt, rate=view.rate, byte_rate=view.byte_rate, max_outputs=view.max_outputs
    )
    out = Outcome(call.name)
    s: Stream | None = None
    try:
        if view.stream:
            s = stream(call.name, call.prompt, system=call.system, params=call.params, schema=call.schema)
            with s:
                for delta in s:
                    live.add(delta)
            out.result = s.result
        else:
            out.result = complete(
                call.name, call.prompt, system=call.system, params=call.params, schema=call.schema
            )
    except KeyboardInterrupt:
        out.interrupted = True
    except NbllmError as exc:
        out.error = for_magic(exc, "llm", call.name)
    if s is not None:
        s.close()  # idempotent: makes sure the connection is closed and a partial result exists
        out.result = s.result
    text = out.result.text if out.result is not None else ""
    live.finish(f"[no answer from {call.name}]" if not text and out.error is not None and view.rich else text)
    if call.schema is not None and out.result is not None and out.result.data is not None:
        show_data(out.result.data, rich=view.rich)
    state = "interrupted" if out.interrupted else "failed" if out.error else "done"
    if state != "failed" or text:
        show_footer(footer_line(call.name, out.result, state), rich=view.rich)
    out.updates = live.updates
    return out


def show_data(data: Any, *, rich: bool) -> None:
    """The parsed structured answer as pretty JSON (a code block in a notebook)."""
    text = json.dumps(data, indent=2, ensure_ascii=False)
    if rich:
        show({"text/plain": text, "text/markdown": f"```json\n{text}\n```"})
    else:
        print(text, flush=True)


# ---- side by side -------------------------------------------------------------------------------


async def _one(col: Column, call: Call, view: View, out: Outcome, changed: threading.Event) -> None:
    s: AsyncStream | None = None
    try:
        if view.stream:
            s = astream(call.name, call.prompt, system=call.system, params=call.params, schema=call.schema)
            async with s:
                col.state = "streaming"
                async for delta in s:
                    col.parts.append(delta)
                    changed.set()
            col.result = s.result
        else:
            col.result = await acomplete(
                call.name, call.prompt, system=call.system, params=call.params, schema=call.schema
            )
            col.parts.append(col.result.text)
        col.state = "done"
    except asyncio.CancelledError:
        col.result, col.state = (s.result if s else None), "interrupted"
        raise
    except NbllmError as exc:
        out.error = for_magic(exc, "llm", call.name)  # before str(): the column shows the hint too
        col.result, col.state, col.error = (s.result if s else None), "failed", str(exc)
    finally:
        out.result = col.result
        changed.set()


def run_many(calls: Sequence[Call], view: View) -> list[Outcome]:
    """Run every call at once; one output with a column per endpoint, each with its footer."""
    cols = [Column(c.name) for c in calls]
    outs = [Outcome(c.name) for c in calls]
    changed, finished = threading.Event(), threading.Event()

    async def everything() -> None:
        try:
            await asyncio.gather(
                *(_one(col, c, view, o, changed) for col, c, o in zip(cols, calls, outs, strict=True))
            )
        finally:
            finished.set()

    handle: DisplayHandle | None = None
    live: ColumnsLive | None = None
    updates = 0
    if by_blocks(rich=view.rich, fmt=view.fmt):
        live = ColumnsLive(cols, view.fmt, view.max_outputs)  # by blocks: only the last segment is redrawn
    elif view.rich:
        handle, updates = show(columns_bundle(cols, view.fmt, final=False), display_id=True), 1
    printed: set[int] = set()
    throttle = Throttle(view.rate, view.byte_rate)
    fut: concurrent.futures.Future[None] = asyncio.run_coroutine_threadsafe(everything(), background_loop())
    try:
        while not finished.is_set():
            if not changed.wait(0.5):
                continue
            if handle is not None or live is not None:
                chars = live.unfrozen if live is not None else sum(len(p) for c in cols for p in c.parts)
                delay = throttle.wait((1 if view.fmt == "text" else 2) * chars)
                if delay > 0 and finished.wait(delay):
                    break
            changed.clear()
            if live is not None:
                live.redraw()
                throttle.mark()
            elif handle is not None:
                update(handle, columns_bundle(cols, view.fmt, final=False))
                updates += 1
                throttle.mark()
            else:
                _print_finished(cols, printed)
        fut.result()
    except KeyboardInterrupt:
        fut.cancel()  # cancels the task in the loop thread: each stream closes and keeps its text
        finished.wait(10)
        for col, out in zip(cols, outs, strict=True):
            if not col.finished:
                col.state = "interrupted"
            out.interrupted = col.state == "interrupted"
            out.result = col.result
    if live is not None:
        live.finish()
        updates = live.updates
    elif handle is not None:
        update(handle, columns_bundle(cols, view.fmt, final=True))
        updates += 1
    else:
        _print_finished(cols, printed)
    for out in outs:
        out.updates = updates
    return outs


def _print_finished(cols: list[Column], printed: set[int]) -> None:
    for i, col in enumerate(cols):
        if col.finished and i not in printed:
            printed.add(i)
            print(column_text(col), flush=True)
