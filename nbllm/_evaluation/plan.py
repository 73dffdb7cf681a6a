"""Planning an evaluation: cases, prompts, models, params grid -> one call per result row.

Everything here happens before the first call: loading the cases, rendering the prompt and
system templates, resolving the models, expanding params x grid x repeats, the cache keys, the
pre-flight line and its cost estimate. Bad arguments raise ``ConfigError`` here, so a run never
starts half-configured.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._base.exceptions import ConfigError, UsageError
from .._base.format import plural
from .._base.validate import (
    check_bool,
    check_int,
    check_json_value,
    check_mapping,
    check_number,
    check_str,
    got,
)
from .._core.endpoint import Endpoint
from .._core.request import estimate_tokens
from .._core.schema import Schema, as_schema, check_prefix
from .._io.api import resolve
from .cache import Cache, endpoint_fingerprint, request_key
from .frame import RESULT_COLUMNS
from .progress import fmt_cost
from .run import Calls, Outcomes
from .score import render, split_scorers

if TYPE_CHECKING:
    import pandas as pd

    from ..scorers import Judge, Scorer

__all__ = [
    "Plan",
    "check_cache",
    "check_column",
    "iter_rows",
    "load_cases",
    "make_plan",
    "open_cache",
    "preflight",
]

_RESERVED = {"case", *RESULT_COLUMNS}


def load_cases(cases: Any) -> pd.DataFrame:
    """Cases as a DataFrame: from a DataFrame, a list of dicts or strings (column ``input``),
    or a ``.csv`` / ``.jsonl`` / ``.json`` / ``.parquet`` path."""
    import pandas as pd

    if isinstance(cases, (str, os.PathLike)):
        p = Path(cases).expanduser()
        suffix = p.suffix.lower()
        if suffix in _SUFFIXES and not p.is_file():
            raise UsageError(f"no such file {str(p)!r}", field="cases")
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
    if isinstance(cases, (Mapping, bytes)) or not isinstance(cases, Iterable):
        raise UsageError(
            f"must be a DataFrame, a list of dicts or strings, or a file path, {got(cases)}", field="cases"
        )
    items = list(cases)
    if all(isinstance(c, str) for c in items):
        return pd.DataFrame({"input": pd.array(items, dtype="string")})
    if all(isinstance(c, Mapping) for c in items):
        return pd.DataFrame([dict(c) for c in items])
    first = isinstance(items[0], str)
    i = next(
        i for i, c in enumerate(items) if not isinstance(c, (str, Mapping)) or isinstance(c, str) != first
    )
    raise UsageError(
        f"must be a list of dicts or strings (all of one kind), a DataFrame or a file path; "
        f"item {i}: {got(items[i])}",
        field="cases",
    )


_SUFFIXES = (".jsonl", ".ndjson", ".json", ".parquet", ".csv", ".tsv")


def _check_columns(frame: pd.DataFrame) -> None:
    names = [str(c) for c in frame.columns]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UsageError(f"duplicate column name(s) {dupes}: each column needs its own name", field="cases")


def _models(models: Any) -> list[Endpoint]:
    if not isinstance(models, (str, Endpoint, Iterable)) or isinstance(models, bytes):
        raise UsageError(
            f"must be a model name, an Endpoint, or a list of them, {got(models)}", field="models"
        )
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
    if params is None or isinstance(params, Mapping):
        base = [dict(check_json_value("params", check_mapping("params", params or {})))]
    elif isinstance(params, (list, tuple)):
        base = [
            dict(check_json_value(f"params[{i}]", check_mapping(f"params[{i}]", p)))
            for i, p in enumerate(params)
        ]
    else:
        raise UsageError(
            f"must be a dict of parameters or a list of such dicts, {got(params)}", field="params"
        )
    if not base:
        base = [{}]
    axes = list(check_mapping("grid", grid or {}).items())
    for key, values in axes:
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            raise ConfigError(f"grid[{key!r}] must be a non-empty list of values", field="grid")
    axes = [(key, check_json_value(f"grid[{key!r}]", list(values))) for key, values in axes]
    points = [
        dict(zip([k for k, _ in axes], vals, strict=True))
        for vals in itertools.product(*[v for _, v in axes])
    ]
    return [{**b, **p} for b in base for p in points]


def _per_model(
    value: Any, eps: Sequence[Endpoint], default: Any, what: str, check: Callable[[str, Any], Any]
) -> list[Any]:
    """One value per endpoint from a single value or a {model name: value} dict, each checked."""
    if isinstance(value, Mapping):
        unknown = set(value) - {ep.name for ep in eps}
        if unknown:
            raise ConfigError(f"{what} names unknown model(s) {sorted(unknown)}", field=what)
        return [check(f"{what}[{ep.name!r}]", value[ep.name]) if ep.name in value else default for ep in eps]
    checked = default if value is None else check(what, value)
    return [checked for _ in eps]


def _rpm(name: str, value: Any) -> float:
    return check_number(name, value, above=0, unit="requests per minute; None for no limit")


def _concurrency(name: str, value: Any) -> int:
    return check_int(name, value, min=1)


def check_cache(cache: Any) -> None:
    if cache is None or isinstance(cache, (bool, str, os.PathLike, Cache)):
        return
    raise UsageError(f"must be True, False, a directory path or a Cache, {got(cache)}", field="cache")


def check_column(name: str, value: Any, frame: pd.DataFrame) -> str:
    """``value``: the name of one of ``frame``'s columns."""
    check_str(name, value)
    if value not in frame.columns:
        raise UsageError(
            f"{value!r} is not a column; columns: {', '.join(map(str, frame.columns))}", field=name
        )
    return str(value)


def open_cache(cache: Any) -> Cache | None:
    check_cache(cache)
    if cache is None or cache is False:
        return None
    if isinstance(cache, Cache):
        return cache
    return Cache(None if cache is True else cache)


@dataclass
class Plan:
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
    own_cache: bool = False  # opened here, so closed when the run is over
    schema: Schema | None = None  # structured outputs (nbllm._core.schema): placed, checked, expanded
    repair: int = 0
    schema_prefix: str = "out_"

    def close(self) -> None:
        if self.cache is not None and self.own_cache:
            self.cache.close()


def iter_rows(frame: pd.DataFrame) -> Iterator[dict[str, Any]]:
    """Each row as a dict of column name -> Python value, built one at a time from the
    columns (``frame.to_dict("records")`` would hold them all)."""
    names = [str(c) for c in frame.columns]
    cols = [frame[c].astype(object).tolist() for c in frame.columns]
    for values in zip(*cols, strict=True) if cols else ({} for _ in range(len(frame))):
        yield dict(zip(names, values, strict=True))


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


def make_plan(
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
    schema: Any = None,
    repair: int = 0,
    schema_prefix: str = "out_",
) -> Plan:
    import numpy as np

    # every argument is checked before the cases are read or a model is resolved
    repeats = check_int("repeats", repeats, min=1)
    if system is not None:
        check_str("system", system, empty=True)
    if expected is not None:
        check_str("expected", expected)
    if budget is not None:
        budget = check_number("budget", budget, min=0, allow_inf=True)
    progress = check_bool("progress", progress)
    check_cache(cache)
    if not isinstance(concurrency, Mapping):
        concurrency = _concurrency("concurrency", concurrency)
    if rate_limit is not None and not isinstance(rate_limit, Mapping):
        rate_limit = _rpm("rate_limit", rate_limit)
    sch = as_schema(schema) if schema is not None else None
    repair = check_int("repair", repair, min=0)
    check_str("schema_prefix", schema_prefix, empty=True)
    combos = _combos(params, grid)
    py_scorers, judges = split_scorers(scorers)
    frame = load_cases(cases)
    _check_columns(frame)
    eps = _models(models)
    make_prompt, consumed = _prompt_source(prompt, frame)
    prompts: list[Any] = []
    systems: list[str | None] = []
    for row in iter_rows(frame):  # one transient dict per row, not 100k of them at once
        prompts.append(make_prompt(row))
        systems.append(render(system, row, what="system") if system is not None else None)
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
    taken = sorted(f"{c!r} -> {new!r}" for c, new in renames.items() if new in frame.columns)
    if taken:
        raise UsageError(
            f"case column(s) named like result columns are renamed case_<name>, but "
            f"{', '.join(taken)} would clash with a column already there; rename one of them",
            field="cases",
        )
    frame = frame.rename(columns=renames)
    if sch is not None:
        check_prefix(sch, schema_prefix, [*map(str, frame.columns), "case", *RESULT_COLUMNS])
    expected = renames.get(expected, expected) if expected is not None else None
    conc = _per_model(concurrency, eps, 8, "concurrency", _concurrency)
    rpm = _per_model(rate_limit, eps, None, "rate_limit", _rpm)
    store = open_cache(cache)  # last: nothing below raises, so it is always closed
    fps = [endpoint_fingerprint(ep) for ep in eps]
    if sch is not None:  # a structured run asks something else: its answers are cached apart
        fps = [f"{fp}|schema:{sch.fingerprint}|repair:{repair}" for fp in fps]
    calls = Calls([], [], [], [], [])
    case_idx, model_idx, combo_idx, repeat_idx = [], [], [], []
    for c in range(len(prompts)):
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
    return Plan(
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
        concurrency=conc,
        rpm=rpm,
        cache=store,
        budget=budget,
        progress=progress,
        own_cache=store is not None and not isinstance(cache, Cache),
        schema=sch,
        repair=repair,
        schema_prefix=schema_prefix,
    )


def _estimate(plan: Plan, out: Outcomes) -> str:
    """Pre-flight cost estimate for the rows still to run ("" when no endpoint has prices).

    Prompt tokens are estimated (~4 characters per token, or the endpoint's tokenizer) and
    completions counted at ``max_tokens``: an upper bound. Without ``max_tokens`` only the
    prompts can be priced, and the line says so (a lower bound)."""
    parts, total, unbounded = [], 0.0, []
    for m, ep in enumerate(plan.endpoints):
        if ep.type == "image":  # priced per image: n images a call (1 unless the params say more)
            if ep.price_image is not None:
                ns = [
                    {**ep.params, **p}.get("n")
                    for e, p, d in zip(plan.calls.ep_idx, plan.calls.params, out.done, strict=True)
                    if e == m and not d
                ]
                cost = ep.price_image * sum(n if isinstance(n, int) and n > 0 else 1 for n in ns)
                total += cost
                parts.append(f"{ep.name} ≤ {fmt_cost(cost)}")
            continue
        if ep.price_prompt is None and ep.price_completion is None:
            continue
        cost, bounded = 0.0, True
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
        parts.append(f"{ep.name} {'≤' if bounded else '≥'} {fmt_cost(cost)}")
        if not bounded:
            unbounded.append(ep.name)
    if not parts:
        return ""
    if not unbounded:
        return f"; est. cost ≤ {fmt_cost(total)} ({', '.join(parts)})"
    return (
        f"; est. cost ≥ {fmt_cost(total)} ({', '.join(parts)}; completions of "
        f"{', '.join(unbounded)} not counted: no max_tokens)"
    )


def preflight(plan: Plan, out: Outcomes, hits: int) -> str:
    n = len(plan.calls)
    dims = [plural(len(plan.cases), "case"), plural(len(plan.endpoints), "model")]
    if len(plan.combos) > 1:
        dims.append(plural(len(plan.combos), "param set"))
    if plan.repeats > 1:
        dims.append(plural(plan.repeats, "repeat"))
    conc = sorted(set(plan.concurrency))
    text = (
        f"nbllm.evaluate: {plural(n, 'call')} ({' x '.join(dims)}); {hits} cached, {n - hits} to run; "
        f"concurrency {'/'.join(map(str, conc))} per model"
    )
    rpm = [r for r in plan.rpm if r]
    if rpm:
        text += f", ≤ {min(rpm):g} req/min"
    return text + _estimate(plan, out)
