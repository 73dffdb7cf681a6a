"""``rescore``: new score columns on a finished result frame, and the fill-in of unfinished rows.

Below both ``_eval`` (``evaluate``, which re-exports ``rescore``) and ``_eval_views`` (the
``df.llm.rescore`` accessor method), so the two no longer import each other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._base.validate import check_bool, check_int
from .cache import Cache
from .plan import check_cache, check_column, open_cache
from .progress import Stats, make_progress
from .run import Outcomes, run_blocking
from .score import JudgePhase, score_frame, split_scorers

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["fill_unfinished", "rescore"]


def fill_unfinished(out: Outcomes, stats: Stats) -> None:
    """Rows the run never reached (a second interrupt gave up waiting) become errors."""
    for i, done in enumerate(out.done):
        if not done:
            out.fail(i, stats.stopped or "interrupted", None)


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
    else:
        check_column("expected", expected, df)
    concurrency = check_int("concurrency", concurrency, min=1)
    progress = check_bool("progress", progress)
    check_cache(cache)
    out = df.copy()
    score_frame(out, py_scorers, expected)
    if judges:
        store = open_cache(cache)
        try:
            phase = JudgePhase(out, judges, expected, store, concurrency)
            phase.runner.load_cache()
            if phase.stats.done < phase.stats.total:
                bar = make_progress(phase.stats, progress)
                try:
                    run_blocking(
                        phase.runner.run(), stop=lambda: phase.runner.stop("interrupted"), progress=bar
                    )
                finally:
                    bar.close()
            fill_unfinished(phase.out, phase.stats)
            phase.apply()
        finally:
            if store is not None and not isinstance(cache, Cache):
                store.close()
    return out
