"""Small helpers shared by the model-manager widget modules (``_widget*``).

ipywidgets is imported here, so this module (like every ``_widget*`` module) is only ever
imported lazily, through ``nbllm.model_form``.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import ipywidgets as W

if TYPE_CHECKING:
    from .._io.registry import Registry

__all__ = ["LABEL_STYLE", "WIDE", "FieldError", "Worker", "describe_error", "esc", "note", "pre", "show"]

# every labelled input gets the same label column, so the form lines up like a dialog
LABEL_STYLE = {"description_width": "150px"}
WIDE = W.Layout(width="640px")

_COLORS = {"error": "#b00020", "ok": "#1b7f3b", "warn": "#8a5a00", "muted": "#5f6368", "info": "#1a1a1a"}


def esc(value: object) -> str:
    """``value`` as HTML text (quotes escaped too)."""
    return html.escape(str(value), quote=True)


def note(text: str, kind: str = "info", *, raw: bool = False) -> str:
    """One coloured line of HTML; ``raw`` when ``text`` is already HTML."""
    body = text if raw else esc(text)
    return f'<div style="color:{_COLORS[kind]};line-height:1.5">{body}</div>'


def pre(text: str, *, css_class: str = "", max_height: str = "16em") -> str:
    """Preformatted, wrapped, scrollable text (for raw responses and answers)."""
    cls = f' class="{css_class}"' if css_class else ""
    return (
        f'<pre{cls} style="white-space:pre-wrap;word-break:break-word;margin:2px 0;padding:6px;'
        f"background:#f6f8fa;border:1px solid #e1e4e8;border-radius:4px;max-height:{max_height};"
        f'overflow:auto;font-size:12px">{esc(text)}</pre>'
    )


def show(widget: Any, visible: bool) -> None:
    """Hide a widget without removing it from its box (keeps the layout stable)."""
    widget.layout.display = None if visible else "none"


def describe_error(exc: BaseException) -> str:
    """A readable one-paragraph message for any error (never a traceback)."""
    from .._base.exceptions import NbllmError

    if isinstance(exc, NbllmError):
        return f"{type(exc).__name__}: {exc}"
    return f"unexpected {type(exc).__name__}: {exc}"


class FieldError:
    """The red message under one input; hidden while empty."""

    def __init__(self) -> None:
        self.widget = W.HTML(layout=W.Layout(margin="0 0 4px 158px"))
        self.widget.add_class("nbllm-field-error")
        self.message = ""
        show(self.widget, False)

    def set(self, message: str | None) -> None:
        self.message = message or ""
        self.widget.value = note(f"⚠ {message}", "error") if message else ""
        show(self.widget, bool(message))


class Worker:
    """Runs slow calls (test connection, sandbox) in daemon threads so the kernel stays free.

    ipykernel sends widget state changes made from other threads, so the threads update the
    widgets directly. ``busy(key)`` prevents a second run of the same action; ``wait()`` lets
    headless tests (and notebooks run by nbclient) wait for the results.
    """

    def __init__(self) -> None:
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()

    def busy(self, key: str) -> bool:
        with self._lock:
            t = self._threads.get(key)
            return t is not None and t.is_alive()

    def start(self, key: str, fn: Callable[[], None], *, on_error: Callable[[BaseException], None]) -> bool:
        """Run ``fn`` in a thread unless ``key`` is already running; errors go to ``on_error``."""

        def target() -> None:
            try:
                fn()
            except BaseException as exc:  # a widget thread must report, never die silently
                on_error(exc)

        with self._lock:
            t = self._threads.get(key)
            if t is not None and t.is_alive():
                return False
            t = self._threads[key] = threading.Thread(target=target, name=f"nbllm-{key}", daemon=True)
            t.start()
            return True

    def wait(self, timeout: float | None = 60.0) -> bool:
        """Join every running thread; False if one is still running after ``timeout``."""
        with self._lock:
            threads = list(self._threads.values())
        for t in threads:
            t.join(timeout)
        return not any(t.is_alive() for t in threads)


class Manager(Protocol):
    """What a card needs of the form that holds it (``_widget.ModelManager``): declared here,
    below both, so ``_widget_cards`` need not import ``_widget`` (which imports the cards)."""

    worker: Worker

    def registry(self) -> Registry: ...
    def refresh(self) -> None: ...
    def set_status(self, message: str, kind: str = "info") -> None: ...
    def edit(self, name: str) -> None: ...
    def open_sandbox(self, name: str) -> None: ...
