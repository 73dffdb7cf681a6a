"""Live progress for an evaluation: an ipywidgets bar in a kernel, a ``\\r`` text bar elsewhere.

``Stats`` is written by the runner (on its event loop) and read by the display (in the waiting
thread): plain int/float fields, so a slightly stale read is harmless. Displays redraw at most
``_HZ`` times per second. ipywidgets is imported only when a kernel is detected.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from .._base.format import money

__all__ = ["Progress", "Stats", "announce", "fmt_cost", "in_kernel", "make_progress"]

_HZ = 4.0


class Stats:
    """Counters of one run phase; ``total`` counts every row, cached ones included."""

    def __init__(self, total: int, label: str = "calls") -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.cached = 0
        self.errors = 0
        self.retries = 0
        self.cost = 0.0  # spent in this run (cached rows cost nothing now)
        self.t0 = time.perf_counter()
        self.fresh_done = 0
        self.stopped = ""  # "", "interrupted" or "budget reached"

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    @property
    def remaining(self) -> float | None:
        """Estimated seconds left, from the pace of the calls made in this run."""
        left = self.total - self.done
        if left <= 0:
            return 0.0
        if self.fresh_done == 0:
            return None
        return self.elapsed / self.fresh_done * left

    def line(self) -> str:
        eta = self.remaining
        parts = [
            f"{self.done}/{self.total} {self.label}",
            f"errors {self.errors}",
            f"retries {self.retries}",
        ]
        if self.cached:
            parts.append(f"cached {self.cached}")
        if self.cost:
            parts.append(f"cost {fmt_cost(self.cost)}")
        parts.append(f"elapsed {self.elapsed:.1f}s")
        if self.stopped:
            parts.append(self.stopped)
        elif eta is not None and self.done < self.total:
            parts.append(f"left ~{eta:.1f}s")
        return "  ".join(parts)


fmt_cost = money  # the one money format (``_format.money``), under the name the planner imports


def in_kernel() -> bool:
    """True inside a Jupyter kernel (IPython is only looked up if already imported)."""
    ip_mod = sys.modules.get("IPython")
    if ip_mod is None:
        return False
    try:
        shell = ip_mod.get_ipython()
    except Exception:  # pragma: no cover - defensive
        return False
    return shell is not None and getattr(shell, "kernel", None) is not None


class Progress:
    """No output (``progress=False``); subclasses draw."""

    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self._last = 0.0

    def update(self, force: bool = False) -> None:
        now = time.perf_counter()
        if force or now - self._last >= 1.0 / _HZ:
            self._last = now
            self.draw()

    def draw(self) -> None:
        pass

    def close(self) -> None:
        self.update(force=True)


class TextProgress(Progress):
    """One line redrawn with ``\\r`` on stderr."""

    def __init__(self, stats: Stats, stream: TextIO | None = None, width: int = 24) -> None:
        super().__init__(stats)
        self.stream = stream or sys.stderr
        self.width = width
        self._len = 0
        isatty = getattr(self.stream, "isatty", None)
        self.live = bool(isatty and isatty())

    def update(self, force: bool = False) -> None:
        if self.live:  # a log file gets the final line only (from close())
            super().update(force)

    def draw(self) -> None:
        s = self.stats
        frac = s.done / s.total if s.total else 1.0
        filled = int(frac * self.width)
        bar = "=" * filled + (">" if filled < self.width else "") + " " * (self.width - filled - 1)
        text = f"[{bar[: self.width]}] {s.line()}"
        pad = " " * max(0, self._len - len(text))
        self._len = len(text)
        self.stream.write(("\r" if self.live else "") + text + pad)
        self.stream.flush()

    def close(self) -> None:
        self.draw()
        self.stream.write("\n")
        self.stream.flush()


class WidgetProgress(Progress):
    """``HBox(IntProgress, HTML)`` shown in the notebook cell."""

    def __init__(self, stats: Stats) -> None:
        super().__init__(stats)
        import ipywidgets as w
        from IPython.display import display

        self.bar = w.IntProgress(min=0, max=max(stats.total, 1), description=stats.label)
        self.html = w.HTML()
        self.box = w.HBox([self.bar, self.html])
        display(self.box)  # type: ignore[no-untyped-call]
        self.draw()

    def draw(self) -> None:
        s = self.stats
        self.bar.value = s.done
        self.html.value = f"<code>{s.line()}</code>"
        if s.errors:
            self.bar.bar_style = "warning"

    def close(self) -> None:
        super().close()
        s = self.stats
        self.bar.bar_style = "danger" if s.stopped else ("warning" if s.errors else "success")


def make_progress(stats: Stats, enabled: bool) -> Progress:
    if not enabled:
        return Progress(stats)
    if in_kernel():
        try:
            return WidgetProgress(stats)
        except ImportError:  # pragma: no cover - ipywidgets missing
            pass
    return TextProgress(stats)


def announce(text: str, enabled: bool, stream: Any = None) -> None:
    """The pre-flight line (stdout, so a notebook shows it as plain output)."""
    if enabled:
        print(text, file=stream or sys.stdout, flush=True)
