"""``evaluate(..., background=True)``: the run goes on while the notebook stays usable.

The plan is made (and every argument checked) in the calling thread, then the calls run on the
process's background loop (``_loop``), the same one ``evaluate`` uses, but nobody waits on it:
``evaluate`` returns a ``RunHandle`` at once. In a kernel the progress widget is displayed in the
calling cell and redrawn from the loop's thread while other cells execute (ipywidgets sends its
updates from any thread); elsewhere nothing is printed.

The handle: ``.done``, ``.result(timeout)`` / ``await handle`` (the same frame ``evaluate``
returns), ``.cancel()`` (calls in flight are cancelled; finished rows are kept, the others get
``error == "interrupted"``), ``.partial()`` (a frame of the rows finished so far). Finished
answers go to the cache as they arrive (at least once a second), so a kernel restart loses
nothing finished: running the same ``evaluate`` again resumes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from .._evaluation.progress import Progress, Stats, in_kernel, make_progress
from .._io.loop import background_loop

if TYPE_CHECKING:
    import pandas as pd

    from .._evaluation.plan import Plan
    from .._evaluation.run import Outcomes, Runner

__all__ = ["RunHandle", "start_background"]

_TICK = 0.25  # seconds between progress redraws


class RunHandle:
    """A background evaluation (see the module docstring). Create with ``start_background``."""

    def __init__(self, plan: Plan, out: Outcomes, stats: Stats, runner: Runner) -> None:
        self._plan, self._out, self._stats, self._runner = plan, out, stats, runner
        self._judge_runner: Runner | None = None
        # the widget is displayed here, in the calling cell; a terminal gets no output
        self._bar: Progress = make_progress(stats, True) if plan.progress and in_kernel() else Progress(stats)
        self._future: concurrent.futures.Future[pd.DataFrame] = asyncio.run_coroutine_threadsafe(
            self._main(), background_loop()
        )

    # ---- public ------------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        """True once the frame is ready (finished, cancelled or failed)."""
        return self._future.done()

    @property
    def stats(self) -> Stats:
        """Live counters (``done``, ``total``, ``errors``, ``cost``...)."""
        return self._stats

    def result(self, timeout: float | None = None) -> pd.DataFrame:
        """Wait for the run (at most ``timeout`` seconds: then TimeoutError) and return its frame."""
        return self._future.result(timeout)

    def __await__(self) -> Generator[Any, None, pd.DataFrame]:
        return asyncio.wrap_future(self._future).__await__()

    def cancel(self) -> None:
        """Stop the run: calls in flight are cancelled, finished rows kept (``result()`` still
        returns every row; the unfinished ones say ``"interrupted"``)."""
        loop = background_loop()
        loop.call_soon_threadsafe(self._runner.stop, "interrupted")
        judge = self._judge_runner
        if judge is not None:
            loop.call_soon_threadsafe(judge.stop, "interrupted")
        self._stats.stopped = self._stats.stopped or "interrupted"

    def partial(self) -> pd.DataFrame:
        """The rows finished so far (answers and errors), with the result frame's columns."""
        if self._future.done():
            return self._future.result()
        from .._evaluation.api import _frame

        mask = list(self._out.done)  # snapshot first: a row is marked done after its fields
        df = _frame(self._plan, self._out, self._stats)
        return df[mask].reset_index(drop=True)

    def __repr__(self) -> str:
        state = "done" if self.done else "running"
        return f"<nbllm background evaluation ({state}): {self._stats.line()}>"

    # ---- on the background loop -------------------------------------------------------------
    async def _main(self) -> pd.DataFrame:
        from .._evaluation.api import _apply_judges, _frame, _judges, _report_stop
        from .._evaluation.rescore import fill_unfinished as _fill_unfinished
        from .._evaluation.score import score_frame

        plan, out, stats = self._plan, self._out, self._stats
        try:
            if stats.done < stats.total and not stats.stopped:
                await self._drive(self._runner, self._bar)
            elif stats.stopped:  # cancelled before the loop got to it
                self._runner.stop(stats.stopped)
            _fill_unfinished(out, stats)
            df = _frame(plan, out, stats)
            score_frame(df, plan.scorers, plan.expected)
            phase = _judges(df, plan, stats)
            if phase is not None:
                self._judge_runner = phase.runner
                if phase.stats.done < phase.stats.total and not stats.stopped:
                    await self._drive(phase.runner, Progress(phase.stats))
                _apply_judges(df, phase, stats)
            _report_stop(df, stats, plan.progress and in_kernel())
            return df
        finally:
            self._bar.close()
            plan.close()

    @staticmethod
    async def _drive(runner: Runner, bar: Progress) -> None:
        async def tick() -> None:
            while True:
                await asyncio.sleep(_TICK)
                bar.update()

        ticker = asyncio.ensure_future(tick())
        try:
            await runner.run()
        finally:
            ticker.cancel()


def start_background(plan: Plan) -> RunHandle:
    """Load the cache, say what will run, and start the calls without waiting for them."""
    from .._evaluation.api import _start

    try:
        out, stats, runner = _start(plan)
    except BaseException:
        plan.close()
        raise
    return RunHandle(plan, out, stats, runner)
