"""``nbllm.evaluate``: run cases against several endpoints into one tidy pandas DataFrame.

    df = nbllm.evaluate(cases, models=["a", "b"], prompt="Translate {text} into {lang}",
                        expected="answer", scorers=[scorers.exact_match], grid={"temperature": [0, 1]})
    df.llm.summary(); df.llm.side_by_side(); df.llm.plot()

The entry point: it picks the in-memory run (``_eval_core``, which holds the semantics), a
background run (``background=True``: a ``RunHandle`` at once), an out-of-core run (``output=`` a
directory: partitions into a parquet dataset) or a Dask run (a ``dask.dataframe.DataFrame`` of
cases). Those three sit above the in-memory run and use it; it never imports them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .._base.exceptions import UsageError
from .._base.validate import check_bool
from .._evaluation.api import aevaluate, load_cases, load_results, rescore
from .._evaluation.api import evaluate as evaluate_in_memory
from .._evaluation.cache import Cache
from .._evaluation.plan import make_plan

__all__ = ["aevaluate", "evaluate", "load_cases", "load_results", "rescore"]


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
    schema: Any = None,
    repair: int = 0,
    schema_prefix: str = "out_",
    background: bool = False,
    output: str | os.PathLike[str] | None = None,
) -> Any:
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
    ``schema`` (JSON Schema dict, pydantic model, dataclass or ``{"field": type}``): structured
    outputs, expanded into one typed ``<schema_prefix><field>`` column per top-level field; a
    failing answer is a row whose ``error`` says what failed (``repair=1``: re-asked once first).

    Scaling up (README "Scaling up"): ``background=True`` returns a ``RunHandle`` at once;
    ``output=`` a directory runs the cases (a frame, a path or glob of files, an iterator of
    frames) partition by partition into a parquet dataset there and returns an ``OutputDataset``;
    a ``dask.dataframe.DataFrame`` of cases gives back a Dask DataFrame run on the cluster.
    """
    opts: dict[str, Any] = dict(
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
    background = check_bool("background", background)
    if type(cases).__module__.partition(".")[0] == "dask" and hasattr(cases, "map_partitions"):
        from .dask_backend import evaluate_dask

        if background or output is not None:
            raise UsageError(
                "a Dask DataFrame of cases already runs on the cluster: leave out background= and "
                "output= (write the result with .to_parquet(dir) instead)",
                field="cases",
            )
        return evaluate_dask(cases, models, prompt, **opts)
    if output is not None:
        from .partitions import evaluate_partitioned

        if background:
            raise UsageError("output= runs in the foreground; leave out background=True", field="background")
        return evaluate_partitioned(cases, models, prompt, output=output, **opts)
    if background:
        from .background import start_background

        return start_background(make_plan(cases, models, prompt, **opts))
    return evaluate_in_memory(cases, models, prompt, **opts)
