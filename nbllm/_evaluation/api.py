"""The in-memory evaluation: run cases against several endpoints into one tidy DataFrame.

The public ``nbllm.evaluate`` (``_eval``) picks this path, or a background, out-of-core or Dask
run built on it (``_eval_background``, ``_eval_partitions``, ``_eval_dask``).

    df = nbllm.evaluate(cases, models=["a", "b"], prompt="Translate {text} into {lang}",
                        expected="answer", scorers=[scorers.exact_match], grid={"temperature": [0, 1]})
    df.llm.summary(); df.llm.side_by_side(); df.llm.plot()

One row per case x endpoint x params combination x repeat (see ``_eval_frame`` for the
columns). Calls go through the public ``nbllm.astream`` (``_eval_run``); finished answers are
cached on disk (``_eval_cache``), so running the same cell again re-uses them and only calls
the rows that are missing or failed. A client of the public API only; pandas is imported inside
functions.

Stopping early: an interrupt (Ctrl-C, the kernel's stop button) cancels the calls in flight and
returns the frame at once; a ``budget`` stops taking new rows once the run's spend reaches it.
Either way every row is there: unfinished ones have ``error`` ``"interrupted"`` or ``"budget
reached"`` (any partial text in ``output``), and ``df.attrs["nbllm"]["stopped"]`` says why.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._core.schema import expand_frame
from . import views as _eval_views  # noqa: F401  (importing it registers the df.llm accessor)
from .cache import Cache
from .frame import build_frame, int_array, load_results, text_array
from .images import explode_images
from .plan import Plan, load_cases, make_plan, preflight
from .progress import Stats, announce, make_progress
from .rescore import fill_unfinished as _fill_unfinished
from .rescore import rescore
from .run import Outcomes, Runner, run_blocking
from .score import JudgePhase, score_frame

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["aevaluate", "evaluate", "load_cases", "load_results", "rescore"]


def _frame(plan: Plan, out: Outcomes, stats: Stats) -> pd.DataFrame:
    names = [ep.name for ep in plan.endpoints]
    combo_text = [json.dumps(c, sort_keys=True, separators=(",", ":"), default=str) for c in plan.combos]
    cols: dict[str, Any] = {
        "model": text_array([names[m] for m in plan.model_idx]),
        "params": text_array([combo_text[p] for p in plan.combo_idx]),
        "repeat": int_array(plan.repeat_idx),
    }
    if plan.system_given:
        cols["system"] = text_array([s or "" for s in plan.calls.system])
    cols["prompt"] = text_array(
        [p if isinstance(p, str) else json.dumps(p, ensure_ascii=False) for p in plan.calls.prompt]
    )
    cols.update(out.columns())
    df = build_frame(plan.cases, plan.case_idx, cols)
    if plan.schema is not None:  # typed out_<field> columns; a failing answer sets error
        expand_frame(df, plan.schema, plan.schema_prefix)
    if out.images:  # image endpoints: a row per image, the bytes in files (see _image_eval)
        df = explode_images(df, out.images)
    df.attrs["nbllm"] = {
        "expected": plan.expected,
        "stopped": stats.stopped,
        "elapsed_s": round(stats.elapsed, 3),
        "cache": str(plan.cache.path) if plan.cache else None,
    }
    return df


def _start(plan: Plan) -> tuple[Outcomes, Stats, Runner]:
    out = Outcomes(len(plan.calls))
    stats = Stats(len(plan.calls))
    runner = Runner(
        plan.endpoints,
        plan.calls,
        out,
        stats,
        concurrency=plan.concurrency,
        rpm=plan.rpm,
        cache=plan.cache,
        budget=plan.budget,
        schema=plan.schema,
        repair=plan.repair,
    )
    hits = runner.load_cache()
    announce(preflight(plan, out, hits), plan.progress)
    return out, stats, runner


def _budget_left(plan: Plan, stats: Stats) -> float | None:
    return None if plan.budget is None else max(0.0, plan.budget - stats.cost)


def evaluate(cases: Any, models: Any, prompt: Any = None, **opts: Any) -> pd.DataFrame:
    """The in-memory run: ``make_plan``'s arguments (documented on ``nbllm.evaluate``, the public
    entry, which also picks the background, out-of-core and Dask runs) -> the result frame."""
    plan = make_plan(cases, models, prompt, **opts)
    try:
        out, stats, runner = _start(plan)
        if stats.done < stats.total:
            bar = make_progress(stats, plan.progress)
            try:
                run_blocking(runner.run(), stop=lambda: runner.stop("interrupted"), progress=bar)
            finally:
                if not stats.stopped and stats.done < stats.total:
                    stats.stopped = "interrupted"
                bar.close()
        return _finish_sync(plan, out, stats)
    finally:
        plan.close()


def _finish_sync(plan: Plan, out: Outcomes, stats: Stats) -> pd.DataFrame:
    _fill_unfinished(out, stats)
    df = _frame(plan, out, stats)
    score_frame(df, plan.scorers, plan.expected)
    phase = _judges(df, plan, stats)
    if phase is not None:
        if phase.stats.done < phase.stats.total and not stats.stopped:
            bar = make_progress(phase.stats, plan.progress)
            try:
                run_blocking(phase.runner.run(), stop=lambda: phase.runner.stop("interrupted"), progress=bar)
            finally:
                bar.close()
        _apply_judges(df, phase, stats)
    _report_stop(df, stats, plan.progress)
    return df


def _judges(df: pd.DataFrame, plan: Plan, stats: Stats) -> JudgePhase | None:
    """The LLM-judge phase of a run, its cached verdicts loaded (None without judges)."""
    if not plan.judges:
        return None
    phase = JudgePhase(df, plan.judges, plan.expected, plan.cache, max(plan.concurrency))
    phase.runner.budget = _budget_left(plan, stats)
    phase.runner.load_cache()
    return phase


def _apply_judges(df: pd.DataFrame, phase: JudgePhase, stats: Stats) -> None:
    """Write the verdicts into ``df``; a stopped judge phase stops the run's record too."""
    _fill_unfinished(phase.out, phase.stats)
    phase.apply()
    stats.stopped = stats.stopped or phase.stats.stopped
    df.attrs["nbllm"]["stopped"] = stats.stopped


def _report_stop(df: pd.DataFrame, stats: Stats, enabled: bool) -> None:
    if stats.stopped:
        ok = int((df["error"] == "").sum())
        announce(
            f"nbllm.evaluate stopped ({stats.stopped}): {ok} of {len(df)} rows finished; "
            "run the same call again to resume from the cache",
            enabled,
        )


async def aevaluate(
    cases: Any,
    models: Any,
    prompt: str | Callable[[dict[str, Any]], Any] | None = None,
    *,
    system: str | None = None,
    expected: str | None = None,
    scorers: Any = (),
    params: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
    grid: Mapping[str, Sequence[Any]] | None = None,
    repeats: int = 1,
    concurrency: int | Mapping[str, int] = 8,
    rate_limit: float | Mapping[str, float] | None = None,
    cache: bool | str | os.PathLike[str] | Cache | None = True,
    budget: float | None = None,
    progress: bool = True,
    schema: Any = None,
    repair: int = 0,
    schema_prefix: str = "out_",
) -> pd.DataFrame:
    """``evaluate`` on the caller's event loop. Cancelling it marks the unfinished rows
    ``"interrupted"``, saves the finished ones to the cache and re-raises CancelledError."""
    plan = make_plan(
        cases,
        models,
        prompt,
        system=system,
        expected=expected,
        scorers=scorers,
        params=params,
        grid=grid,
        repeats=repeats,
        concurrency=concurrency,
        rate_limit=rate_limit,
        cache=cache,
        budget=budget,
        progress=progress,
        schema=schema,
        repair=repair,
        schema_prefix=schema_prefix,
    )
    try:
        out, stats, runner = _start(plan)
        await _arun(runner, stats, progress)
        df = _frame(plan, out, stats)
        score_frame(df, plan.scorers, plan.expected)
        phase = _judges(df, plan, stats)
        if phase is not None:
            if not stats.stopped:
                await _arun(phase.runner, phase.stats, progress)
            _apply_judges(df, phase, stats)
        _report_stop(df, stats, plan.progress)
        return df
    finally:
        plan.close()


async def _arun(runner: Runner, stats: Stats, progress: bool) -> None:
    import asyncio

    if stats.done >= stats.total:
        return
    bar = make_progress(stats, progress)

    async def tick() -> None:
        while True:
            await asyncio.sleep(0.25)
            bar.update()

    ticker = asyncio.ensure_future(tick())
    try:
        await runner.run()
    finally:
        ticker.cancel()
        bar.close()
