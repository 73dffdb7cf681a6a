"""The process's one background event loop, in a daemon thread.

Sync code needs a loop of its own to drive async work (an async-only handler called from
``complete()``, or ``evaluate()``'s concurrent calls): inside a notebook the main thread's loop
is ipykernel's and already running, so ``asyncio.run`` cannot be used there.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["background_loop", "in_background_thread", "run_in_background"]

T = TypeVar("T")
_LOCK = threading.Lock()
_LOOP: asyncio.AbstractEventLoop | None = None
_THREAD: threading.Thread | None = None


def background_loop() -> asyncio.AbstractEventLoop:
    """The loop, started on first use (and again if its thread ever died)."""
    global _LOOP, _THREAD
    with _LOCK:
        if _LOOP is None or _THREAD is None or not _THREAD.is_alive():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="nbllm-loop", daemon=True)
            thread.start()
            _LOOP, _THREAD = loop, thread
        return _LOOP


def in_background_thread() -> bool:
    """True when called from the loop's own thread (where blocking on it would deadlock)."""
    return threading.current_thread() is _THREAD


def run_in_background(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the background loop and wait for its result."""
    return asyncio.run_coroutine_threadsafe(coro, background_loop()).result()
