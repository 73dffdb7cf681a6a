"""``nbllm.evaluate``: run cases against several endpoints into one tidy pandas DataFrame.

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

import itertools
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._api import resolve
from ._endpoint import Endpoint
from ._eval_cache import Cache, endpoint_fingerprint, request_key
from ._eval_frame import RESULT_COLUMNS, build_frame, int_array, load_results, text_array
from ._eval_progress import Stats, announce, fmt_cost, make_progress
from ._eval_run import Calls, Outcomes, Runner, run_blocking
from ._eval_score import JudgePhase, render, score_frame, split_scorers
from ._exceptions import ConfigError
from ._request import estimate_tokens

if TYPE_CHECKING:
    import pandas as pd

    from .scorers import Judge, Scorer

__all__ = ["aevaluate", "evaluate", "load_cases", "load_results", "rescore"]

Models = "str | Endpoint | Sequence[str | Endpoint]"
_RESERVED = {"case", *RESULT_COLUMNS}


def load_cases(cases: Any) -> pd.DataFrame:
    """Cases as a DataFrame: from a DataFrame, a list of dicts or strings (column ``input``),
    or a ``.csv`` / ``.jsonl`` / ``.json`` / ``.parquet`` path."""
    import pandas as pd

    if isinstance(cases, (str, os.PathLike)):
        p = Path(cases).expanduser()
        suffix = p.suffix.lower()
        if suffix in (".jsonl", ".ndjson"):
            return pd.read_json(p, lines=True, dtype=False)
        if suffix == ".json":
            return pd.read_json(p, dtype=False)
        if suffix == ".parquet":
            return pd.read_parquet(p)
        if suffix in (".csv", ".tsv"):
            return pd.read_csv(p, sep="\t" if suffix == ".tsv" else ",")
        raise ConfigError(f"cases file {str(p)!r}: use .csv, .tsv, .jsonl, .json or .parquet", field="cases")
    if isinstance(cases, pd.DataFrame):
        if isinstance(cases.index, pd.RangeIndex) and cases.index.start == 0 and cases.index.step == 1:
            return cases.reset_index(drop=True)
        return cases.reset_index()
    if isinstance(cases, pd.Series):
        return cases.rename(cases.name or "input").to_frame().reset_index(drop=True)
    items = list(cases)
    if all(isinstance(c, str) for c in items):
        return pd.DataFrame({"input": pd.array(items, dtype="string")})
    if all(isinstance(c, Mapping) for c in items):
        return pd.DataFrame([dict(c) for c in items])
    raise ConfigError("cases must be a DataFrame, a list of dicts or strings, or a file path", field="cases")


def _models(models: Any) -> list[Endpoint]:
    items = [models] if isinstance(models, (str, Endpoint)) else list(models)
    if not items:
        raise ConfigError("give at least one model", field="models")
    eps = [resolve(m) for m in items]
    names = [ep.name for ep in eps]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"model(s) {dupes} given twice; register copies under other names", field="models")
    return eps


def _combos(
    params: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None, grid: Mapping[str, Sequence[Any]] | None
) -> list[dict[str, Any]]:
    base = (
        [dict(params or {})] if params is None or isinstance(params, Mapping) else [dict(p) for p in params]
    )
    if not base:
        base = [{}]
    axes = list((grid or {}).items())
    for key, values in axes:
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            raise ConfigError(f"grid[{key!r}] must be a non-empty list of values", field="grid")
    points = [
        dict(zip([k for k, _ in axes], vals, strict=True))
        for vals in itertools.product(*[v for _, v in axes])
    ]
    return [{**b, **p} for b in base for p in points]


def _per_model(value: Any, eps: Sequence[Endpoint], default: Any, what: str) -> list[Any]:
    if isinstance(value, Mapping):
        unknown = set(value) - {ep.name for ep in eps}
        if unknown:
            raise ConfigError(f"{what} names unknown model(s) {sorted(unknown)}", field=what)
        return [value.get(ep.name, default) for ep in eps]
    return [default if value is None else value for _ in eps]


def _open_cache(cache: Any) -> Cache | None:
    if cache is None or cache is False:
        return None
    if isinstance(cache, Cache):
        return cache
    return Cache(None if cache is True else cache)


@dataclass
class _Plan:
    cases: pd.DataFrame
    endpoints: list[Endpoint]
    combos: list[dict[str, Any]]
    repeats: int
    calls: Calls
    case_idx: Any
    model_idx: list[int]
    combo_idx: list[int]
    repeat_idx: list[int]
    system_given: bool
    expected: str | None
    scorers: list[Scorer]
    judges: list[Judge]
    concurrency: list[int]
    rpm: list[float | None]
    cache: Cache | None
    budget: float | None
    progress: bool


def _prompt_source(prompt: Any, frame: pd.DataFrame) -> tuple[Callable[[dict[str, Any]], Any], str | None]:
    """A function row -> prompt, and the case column it consumed (dropped from the result)."""
    if callable(prompt):
        return prompt, None
    if isinstance(prompt, str):
        return (lambda row: render(prompt, row)), None
    if prompt is not None:
        raise ConfigError("prompt must be a template string, a function of the row, or None", field="prompt")
    cols = [str(c) for c in frame.columns]
    for name in ("prompt", "input"):
        if name in cols:
            return (lambda row, n=name: row[n]), name
    if len(cols) == 1:
        return (lambda row: row[cols[0]]), cols[0]
    raise ConfigError(
        f"give prompt= (a template such as 'Answer: {{{cols[0] if cols else 'question'}}}') "
        "or a 'prompt' column",
        field="prompt",
    )


def _plan(
    cases: Any,
    models: Any,
    prompt: Any,
    *,
    system: str | None,
    expected: str | None,
    scorers: Any,
    params: Any,
    grid: Any,
    repeats: int,
    concurrency: Any,
    rate_limit: Any,
    cache: Any,
    budget: float | None,
    progress: bool,
) -> _Plan:
    import numpy as np

    frame = load_cases(cases)
    if repeats < 1:
        raise ConfigError("repeats must be >= 1", field="repeats")
    eps = _models(models)
    combos = _combos(params, grid)
    make_prompt, consumed = _prompt_source(prompt, frame)
    records = [{str(k): v for k, v in r.items()} for r in frame.to_dict("records")]
    prompts = [make_prompt(r) for r in records]
    systems = (
        [render(system, r, what="system") for r in records] if system is not None else [None] * len(records)
    )
    if expected is None and "expected" in frame.columns:
        expected = "expected"
    if expected is not None and expected not in frame.columns:
        raise ConfigError(
            f"expected={expected!r} is not a column; columns: {', '.join(map(str, frame.columns))}",
            field="expected",
        )
    if consumed is not None and consumed != expected:
        frame = frame.drop(columns=[consumed])
    renames = {
        c: f"case_{c}"
        for c in frame.columns
        if str(c) in _RESERVED or str(c).startswith(("score_", "judge_"))
    }
    frame = frame.rename(columns=renames)
    expected = renames.get(expected, expected) if expected is not None else None
    py_scorers, judges = split_scorers(scorers)
    store = _open_cache(cache)
    fps = [endpoint_fingerprint(ep) for ep in eps]
    calls = Calls([], [], [], [], [])
    case_idx, model_idx, combo_idx, repeat_idx = [], [], [], []
    for c in range(len(records)):
        for m in range(len(eps)):
            for p, combo in enumerate(combos):
                for r in range(repeats):
                    case_idx.append(c)
                    model_idx.append(m)
                    combo_idx.append(p)
                    repeat_idx.append(r)
                    calls.ep_idx.append(m)
                    calls.prompt.append(prompts[c])
                    calls.system.append(systems[c])
                    calls.params.append(combo)
                    calls.keys.append(
                        request_key(fps[m], prompts[c], systems[c], combo, r) if store is not None else None
                    )
    return _Plan(
        cases=frame,
        endpoints=eps,
        combos=combos,
        repeats=repeats,
        calls=calls,
        case_idx=np.asarray(case_idx, dtype=np.int64),
        model_idx=model_idx,
        combo_idx=combo_idx,
        repeat_idx=repeat_idx,
        system_given=system is not None,
        expected=expected,
        scorers=py_scorers,
        judges=judges,
        concurrency=[int(x) for x in _per_model(concurrency, eps, 8, "concurrency")],
        rpm=_per_model(rate_limit, eps, None, "rate_limit"),
        cache=store,
        budget=budget,
        progress=progress,
    )


def _estimate(plan: _Plan, out: Outcomes) -> str:
    """Pre-flight cost estimate for the rows still to run ("" when no endpoint has prices)."""
    parts, total, bounded = [], 0.0, True
    for m, ep in enumerate(plan.endpoints):
        if ep.price_prompt is None and ep.price_completion is None:
            continue
        cost = 0.0
        for i, e in enumerate(plan.calls.ep_idx):
            if e != m or out.done[i]:
                continue
            text = (plan.calls.system[i] or "") + str(plan.calls.prompt[i])
            cost += estimate_tokens(text, ep.tokenizer)[0] * (ep.price_prompt or 0.0) / 1000
            max_tokens = {**ep.params, **plan.calls.params[i]}.get("max_tokens")
            if isinstance(max_tokens, int):
                cost += max_tokens * (ep.price_completion or 0.0) / 1000
            elif ep.price_completion:
                bounded = False
        total += cost
        parts.append(f"{ep.name} {fmt_cost(cost)}")
    if not parts:
        return ""
    how = "≤ " if bounded else "≈ prompts only "
    return f"; est. cost {how}{fmt_cost(total)} ({', '.join(parts)})"


def _preflight(plan: _Plan, out: Outcomes, hits: int) -> str:
    n = len(plan.calls)
    dims = [f"{len(plan.cases)} cases", f"{len(plan.endpoints)} models"]
    if len(plan.combos) > 1:
        dims.append(f"{len(plan.combos)} param sets")
    if plan.repeats > 1:
        dims.append(f"{plan.repeats} repeats")
    conc = sorted(set(plan.concurrency))
    text = (
        f"nbllm.evaluate: {n} calls ({' x '.join(dims)}); {hits} cached, {n - hits} to run; "
        f"concurrency {'/'.join(map(str, conc))} per model"
    )
    rpm = [r for r in plan.rpm if r]
    if rpm:
        text += f", ≤ {min(rpm):g} req/min"
    return text + _estimate(plan, out)


def _frame(plan: _Plan, out: Outcomes, stats: Stats) -> pd.DataFrame:
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
    df.attrs["nbllm"] = {
        "expected": plan.expected,
        "stopped": stats.stopped,
        "elapsed_s": round(stats.elapsed, 3),
        "cache": str(plan.cache.path) if plan.cache else None,
    }
    return df


def _start(plan: _Plan) -> tuple[Outcomes, Stats, Runner]:
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
    )
    hits = runner.load_cache()
    announce(_preflight(plan, out, hits), plan.progress)
    return out, stats, runner


def _budget_left(plan: _Plan, stats: Stats) -> float | None:
    return None if plan.budget is None else max(0.0, plan.budget - stats.cost)


def evaluate(
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
) -> pd.DataFrame:
    """Run every case against every model; return one tidy DataFrame (see docs/evaluation.md).

    ``cases``: DataFrame, list of dicts or strings, or a CSV/JSONL/JSON/Parquet path.
    ``prompt``: a template filled from the case's columns (``"Translate {text} into {lang}"``),
    a function ``row -> str | messages``, or None to use a ``prompt``/``input`` column.
    ``system``: a template for the system message. ``expected``: the column scorers compare to.
    ``params``: generation parameters (one dict, or a list of dicts, one combination each);
    ``grid``: ``{"temperature": [0, 0.7]}`` crosses those values with ``params``.
    ``concurrency`` and ``rate_limit`` (requests per minute): per model, a number or a dict.
    ``cache``: True (in the nbllm config dir), False, or a path. ``budget``: stop taking new
    rows once this run's cost reaches it. Interrupting returns the rows finished so far.
    """
    plan = _plan(
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
    )
    out, stats, runner = _start(plan)
    if stats.done < stats.total:
        bar = make_progress(stats, progress)
        try:
            run_blocking(runner.run(), stop=lambda: runner.stop("interrupted"), progress=bar)
        finally:
            if not stats.stopped and stats.done < stats.total:
                stats.stopped = "interrupted"
            bar.close()
    return _finish_sync(plan, out, stats)


def _finish_sync(plan: _Plan, out: Outcomes, stats: Stats) -> pd.DataFrame:
    _fill_unfinished(out, stats)
    df = _frame(plan, out, stats)
    score_frame(df, plan.scorers, plan.expected)
    if plan.judges:
        phase = JudgePhase(df, plan.judges, plan.expected, plan.cache, max(plan.concurrency))
        phase.runner.budget = _budget_left(plan, stats)
        hits = phase.runner.load_cache()
        if hits < len(phase.calls) and not stats.stopped:
            bar = make_progress(phase.stats, plan.progress)
            try:
                run_blocking(phase.runner.run(), stop=lambda: phase.runner.stop("interrupted"), progress=bar)
            finally:
                bar.close()
        _fill_unfinished(phase.out, phase.stats)
        phase.apply()
        stats.stopped = stats.stopped or phase.stats.stopped
        df.attrs["nbllm"]["stopped"] = stats.stopped
    _report_stop(df, stats, plan.progress)
    return df


def _fill_unfinished(out: Outcomes, stats: Stats) -> None:
    """Rows the run never reached (a second interrupt gave up waiting) become errors."""
    for i, done in enumerate(out.done):
        if not done:
            out.fail(i, stats.stopped or "interrupted", None)


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
) -> pd.DataFrame:
    """``evaluate`` on the caller's event loop. Cancelling it marks the unfinished rows
    ``"interrupted"``, saves the finished ones to the cache and re-raises CancelledError."""
    plan = _plan(
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
    )
    out, stats, runner = _start(plan)
    await _arun(runner, stats, progress)
    df = _frame(plan, out, stats)
    score_frame(df, plan.scorers, plan.expected)
    if plan.judges:
        phase = JudgePhase(df, plan.judges, plan.expected, plan.cache, max(plan.concurrency))
        phase.runner.budget = _budget_left(plan, stats)
        phase.runner.load_cache()
        if not stats.stopped:
            await _arun(phase.runner, phase.stats, progress)
        _fill_unfinished(phase.out, phase.stats)
        phase.apply()
    _report_stop(df, stats, plan.progress)
    return df


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


def rescore(
    df: pd.DataFrame,
    scorers: Any,
    *,
    expected: str | None = None,
    cache: Any = True,
    concurrency: int = 8,
    progress: bool = False,
) -> pd.DataFrame:
    """A copy of ``df`` with ``score_<name>`` columns from ``scorers``: computed from the frame's
    ``output`` (models are never called again; an LLM judge is, through the cache)."""
    py_scorers, judges = split_scorers(scorers)
    if expected is None:
        expected = (df.attrs.get("nbllm") or {}).get("expected")
        if expected is None and "expected" in df.columns:
            expected = "expected"
    out = df.copy()
    score_frame(out, py_scorers, expected)
    if judges:
        store = _open_cache(cache)
        phase = JudgePhase(out, judges, expected, store, concurrency)
        phase.runner.load_cache()
        if phase.stats.done < phase.stats.total:
            bar = make_progress(phase.stats, progress)
            try:
                run_blocking(phase.runner.run(), stop=lambda: phase.runner.stop("interrupted"), progress=bar)
            finally:
                bar.close()
        _fill_unfinished(phase.out, phase.stats)
        phase.apply()
    return out


# Importing this module registers the ``df.llm`` accessor.
from . import _eval_views  # noqa: E402,F401  (registration side effect)
