"""Views of a result frame, as the ``df.llm`` pandas accessor (registered on import).

``df.llm.summary()``      one row per model (and params set): scores and pass rate with
                          confidence intervals, latency/TTFT p50/p95, tokens, cost, errors
``df.llm.compare(a, b)``  paired differences per scorer: bootstrap CI, McNemar / Wilcoxon,
                          wins/ties/losses, effect size (``compare()``: every pair)
``df.llm.disagreements(a, b)`` the cases where two models differ most
``df.llm.judge_pairs(scorers.pairwise(...), a, b)`` a pairwise LLM judge's verdicts as scores
``df.llm.side_by_side()`` one row per case, one column of outputs per model
``df.llm.plot()``         a matplotlib Figure: mean scores with CIs and latency per model
``df.llm.rescore(...)``   new score columns from the frame alone (no model calls)
``df.llm.save(path)``     CSV / Parquet / JSONL by suffix; ``nbllm.load_results`` reads it back
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._base.exceptions import UsageError
from .._base.validate import check_int, check_number
from . import stats as _stats
from .frame import to_jsonl

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["LLMAccessor", "compare", "disagreements", "judge_pairs", "side_by_side", "summary"]


def _group_keys(df: pd.DataFrame) -> list[str]:
    keys = ["model"]
    if "params" in df.columns and df["params"].nunique() > 1:
        keys.append("params")
    return keys


def score_columns(df: pd.DataFrame) -> list[str]:
    return [str(c) for c in df.columns if str(c).startswith("score_")]


def pass_columns(df: pd.DataFrame) -> list[str]:
    """The scores a row must reach to pass: all but pairwise judges' (a win against another
    model is not an absolute grade, and other models' rows have none)."""
    relative = {f"score_{n}" for n in (df.attrs.get("nbllm") or {}).get("pairwise", ())}
    return [c for c in score_columns(df) if c not in relative]


def _repeated(df: pd.DataFrame) -> bool:
    return "repeat" in df.columns and "case" in df.columns and df["repeat"].nunique() > 1


def _case_values(g: pd.DataFrame, values: Any) -> tuple[Any, float]:
    """Per-case means of ``values`` (a float array over ``g``'s rows, NaN: missing) and the
    mean within-case standard deviation (ddof=1; NaN when no case has two values)."""
    import numpy as np
    import pandas as pd

    per = pd.Series(values, index=g.index).groupby(g["case"].to_numpy(), sort=False)
    means = per.mean().to_numpy(dtype=float)
    stds = per.std(ddof=1).to_numpy(dtype=float)
    spread = float(np.nanmean(stds)) if np.any(~np.isnan(stds)) else np.nan
    return means, spread


def summary(
    df: pd.DataFrame,
    threshold: float = 0.5,
    *,
    level: float | None = 0.95,
    resamples: int = _stats.DEFAULT_RESAMPLES,
    seed: int = _stats.DEFAULT_SEED,
) -> pd.DataFrame:
    """Per model (and params set, when several): ``calls``, ``errors``, ``error_rate``,
    ``cached``, the mean of each score (over rows without error) with its ``level`` confidence
    interval (``<score>_ci_low/_ci_high``: percentile bootstrap over cases), ``pass_rate``
    (share of all rows, errors included, whose every score is >= ``threshold``) with its
    interval (Wilson; with repeats, bootstrap over cases), ``latency_p50/p95`` and
    ``ttft_p50/p95`` (rows without error), token sums, ``cost`` (NaN when no prices),
    ``retries`` and, with a judge, ``judge_cost``.

    With ``repeats > 1`` the case is the unit: each case's repeats are averaged first (the
    score is the mean of the case means, the interval resamples cases), and ``<score>_spread``
    / ``pass_rate_spread`` give the mean within-case standard deviation. ``level=None``: no
    interval columns (a bootstrap costs about 0.1 s per 10,000 cases, score and model)."""
    import numpy as np
    import pandas as pd

    threshold = check_number("threshold", threshold)
    level = None if level is None else _stats.check_level(level)
    resamples = check_int("resamples", resamples, min=1)
    seed = check_int("seed", seed, min=0)
    keys = _group_keys(df)
    scores = score_columns(df)
    repeated = _repeated(df)
    rows = []
    for key, g in df.groupby(keys, sort=False, dropna=False):
        ok = (g["error"] == "").to_numpy(dtype=bool, na_value=False)
        good = g[ok]
        row: dict[str, Any] = dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True))
        n = len(g)
        row["calls"] = n
        row["errors"] = int(n - ok.sum())
        row["error_rate"] = float(row["errors"] / n) if n else np.nan
        row["cached"] = int(g["cached"].sum())
        for s in scores:
            vals = np.where(ok, g[s].to_numpy(dtype=float, na_value=np.nan), np.nan)
            if repeated:
                vals, spread = _case_values(g, vals)
            present = vals[~np.isnan(vals)]
            row[s] = float(present.mean()) if len(present) else np.nan
            if level is not None:
                lo, hi = _stats.bootstrap_ci(present, level, resamples=resamples, seed=seed)
                row[f"{s}_ci_low"], row[f"{s}_ci_high"] = lo, hi
            if repeated:
                row[f"{s}_spread"] = spread
        if scores:
            passed = np.ones(n, dtype=bool) & ok
            for s in pass_columns(df):
                passed &= (g[s] >= threshold).to_numpy(dtype=bool, na_value=False)
            row["pass_rate"] = float(passed.mean()) if n else np.nan
            if repeated:
                share, spread = _case_values(g, passed.astype(float))
            if level is not None:
                if repeated:
                    lo, hi = _stats.bootstrap_ci(share, level, resamples=resamples, seed=seed)
                else:
                    lo, hi = _stats.wilson(int(passed.sum()), n, level)
                row["pass_rate_ci_low"], row["pass_rate_ci_high"] = lo, hi
            if repeated:
                row["pass_rate_spread"] = spread
        for col, name in (("latency_s", "latency"), ("ttft_s", "ttft")):
            vals = good[col].dropna()
            row[f"{name}_p50"] = float(vals.quantile(0.5)) if len(vals) else np.nan
            row[f"{name}_p95"] = float(vals.quantile(0.95)) if len(vals) else np.nan
        for col in ("prompt_tokens", "completion_tokens"):
            row[col] = int(g[col].sum())
        row["cost"] = float(g["cost"].sum(min_count=1))
        row["retries"] = int(g["retries"].sum())
        pairwise = (df.attrs.get("nbllm") or {}).get("pairwise", ())
        for col in ("judge_cost", *(f"{p}_judge_cost" for p in pairwise)):
            if col in g.columns:
                row[col] = float(g[col].sum(min_count=1))
        rows.append(row)
    if not rows:  # an empty run: the same table, with no rows
        return pd.DataFrame(columns=[*keys, "calls", "errors", "error_rate"]).set_index(keys)
    out = pd.DataFrame(rows).set_index(keys)
    for col in ("calls", "errors", "cached", "prompt_tokens", "completion_tokens", "retries"):
        out[col] = out[col].astype("Int64")
    return out


def _labels(df: pd.DataFrame) -> tuple[list[str], Any]:
    """The compared systems' labels (the model, or ``"model {params}"`` when several params
    sets were run) in order of appearance, and each row's label."""
    import numpy as np

    label = df["model"].astype(str).to_numpy(dtype=object)
    if "params" in df.columns and df["params"].nunique() > 1:
        label = np.array([f"{m} {p}" for m, p in zip(label, df["params"].astype(str), strict=True)], object)
    seen = list(dict.fromkeys(label.tolist()))
    return seen, label


def _pick(name: str, value: Any, known: list[str]) -> str:
    if isinstance(value, tuple) and len(value) == 2:
        value = f"{value[0]} {value[1]}"
    if value in known:
        return str(value)
    several = [k for k in known if isinstance(value, str) and k.startswith(value + " ")]
    hint = (
        f"; {value!r} was run with several params sets: pass (model, params), e.g. {several[0].split(' ', 1)!r}"
        if several
        else ""
    )
    raise UsageError(f"{value!r} is not a model in this frame; models: {', '.join(known)}{hint}", field=name)


def _paired(df: pd.DataFrame, label: Any, a: str, b: str, values: Any) -> tuple[Any, Any, Any]:
    """Case ids and the two systems' per-case values (repeats averaged; NaN: missing)."""
    import pandas as pd

    keyed = pd.DataFrame({"case": df["case"].to_numpy(), "label": label, "v": values})
    keyed = keyed[keyed["label"].isin([a, b])]
    wide = keyed.pivot_table(
        index="case", columns="label", values="v", aggfunc="mean", dropna=False, sort=True
    )
    wide = wide.reindex(columns=[a, b])
    return wide.index.to_numpy(), wide[a].to_numpy(dtype=float), wide[b].to_numpy(dtype=float)


def _pass_values(df: pd.DataFrame, threshold: float) -> Any:

    passed = (df["error"] == "").to_numpy(dtype=bool, na_value=False).copy()
    for s in pass_columns(df):
        passed &= (df[s] >= threshold).to_numpy(dtype=bool, na_value=False)
    return passed.astype(float)


def _compare_one(
    name: str, va: Any, vb: Any, *, test: str, level: float, resamples: int, seed: int
) -> dict[str, Any]:
    import numpy as np

    both = ~(np.isnan(va) | np.isnan(vb))
    xa, xb = va[both], vb[both]
    d = xa - xb
    n = len(d)
    binary = bool(np.isin(xa, (0.0, 1.0)).all() and np.isin(xb, (0.0, 1.0)).all())
    kind = test
    if test == "auto":
        kind = "mcnemar" if binary else "wilcoxon"
    if kind == "mcnemar" and not binary:
        raise UsageError(
            f"test='mcnemar' needs pass/fail (0/1) values, but {name} has others "
            "(repeats are averaged per case); use test='wilcoxon' or 'auto'",
            field="test",
        )
    row: dict[str, Any] = {"scorer": name, "n": n}
    row["mean_a"] = float(xa.mean()) if n else np.nan
    row["mean_b"] = float(xb.mean()) if n else np.nan
    row["diff"] = float(d.mean()) if n else np.nan
    row["diff_ci_low"], row["diff_ci_high"] = _stats.bootstrap_ci(d, level, resamples=resamples, seed=seed)
    if n == 0:
        res, kind = _stats.TestResult(np.nan, np.nan, "none"), "none"
        effect, effect_name = np.nan, ""
    elif kind == "mcnemar":
        res = _stats.mcnemar(int((d > 0).sum()), int((d < 0).sum()))
        effect, effect_name = row["diff"], "diff_in_proportions"
    else:
        res = _stats.wilcoxon(d)
        effect, effect_name = _stats.rank_biserial(d), "rank_biserial"
    row["test"] = {"none": "none", "mcnemar": "mcnemar-exact"}.get(kind, f"wilcoxon-{res.method}")
    row["p_value"] = res.pvalue
    row["wins"] = int((d > 0).sum())
    row["ties"] = int((d == 0).sum())
    row["losses"] = int((d < 0).sum())
    row["effect"] = effect
    row["effect_size"] = effect_name
    return row


def compare(
    df: pd.DataFrame,
    a: Any = None,
    b: Any = None,
    *,
    scorers: Any = None,
    level: float = 0.95,
    test: str = "auto",
    threshold: float = 0.5,
    resamples: int = _stats.DEFAULT_RESAMPLES,
    seed: int = _stats.DEFAULT_SEED,
) -> pd.DataFrame:
    """Paired comparison of model ``a`` with model ``b`` over the same cases, one row per
    scorer (and ``pass``: every score >= ``threshold``, errors failing). See docs/evaluation.md.

    Columns: ``a``, ``b``, ``n`` (cases scored for both), ``mean_a``, ``mean_b``, ``diff``
    (mean of a - b), ``diff_ci_low/high`` (paired percentile bootstrap over cases), ``test``,
    ``p_value`` (two-sided), ``wins``/``ties``/``losses`` (cases where a is above / equal to /
    below b), ``effect`` and ``effect_size`` (its name). ``test="auto"`` uses the exact McNemar
    test when every value is 0 or 1, else the Wilcoxon signed-rank test. With repeats, each
    case's repeats are averaged first. With no ``a``/``b``: every pair, indexed (a, b, scorer);
    one pair is indexed by scorer."""
    import numpy as np
    import pandas as pd

    level = _stats.check_level(level)
    threshold = check_number("threshold", threshold)
    resamples = check_int("resamples", resamples, min=1)
    seed = check_int("seed", seed, min=0)
    if test not in ("auto", "mcnemar", "wilcoxon"):
        raise UsageError(f"must be 'auto', 'mcnemar' or 'wilcoxon', got {test!r}", field="test")
    known, label = _labels(df)
    names = score_columns(df)
    if scorers is not None:
        wanted = [scorers] if isinstance(scorers, str) else list(scorers)
        picked = []
        for w in wanted:
            col = w if str(w).startswith("score_") or w == "pass" else f"score_{w}"
            if col != "pass" and col not in names:
                raise UsageError(
                    f"{w!r} is not a score in this frame; scores: {', '.join(names) or 'none'} (and 'pass')",
                    field="scorers",
                )
            picked.append(col)
        names = picked
    elif names:
        names = [*names, "pass"]
    if (a is None) != (b is None):
        raise UsageError("give both a and b, or neither (every pair)", field="b" if b is None else "a")
    if a is not None:
        pairs = [(_pick("a", a, known), _pick("b", b, known))]
        if pairs[0][0] == pairs[0][1]:
            raise UsageError(f"a and b are the same model ({pairs[0][0]!r})", field="b")
    else:
        pairs = [(x, y) for i, x in enumerate(known) for y in known[i + 1 :]]
    ok = (df["error"] == "").to_numpy(dtype=bool, na_value=False)
    rows = []
    for x, y in pairs:
        for col in names:
            if col == "pass":
                values = _pass_values(df, threshold)
            else:
                values = np.where(ok, df[col].to_numpy(dtype=float, na_value=np.nan), np.nan)
            _, va, vb = _paired(df, label, x, y, values)
            row = _compare_one(col, va, vb, test=test, level=level, resamples=resamples, seed=seed)
            rows.append({"a": x, "b": y, **row})
    cols = [
        "a", "b", "scorer", "n", "mean_a", "mean_b", "diff", "diff_ci_low", "diff_ci_high",
        "test", "p_value", "wins", "ties", "losses", "effect", "effect_size",
    ]  # fmt: skip
    out = pd.DataFrame(rows, columns=cols)
    for col in ("n", "wins", "ties", "losses"):
        out[col] = out[col].astype("Int64")
    out.attrs["level"] = level
    return out.set_index("scorer") if a is not None else out.set_index(["a", "b", "scorer"])


def disagreements(
    df: pd.DataFrame, a: Any, b: Any, *, scorer: str | None = None, n: int = 10, threshold: float = 0.5
) -> pd.DataFrame:
    """The ``n`` cases where ``a`` and ``b`` differ most on ``scorer`` (default: the first
    score; ``"pass"`` for pass/fail): ``case``, the score of each, ``diff`` (a - b), and each
    one's output (its first repeat's), largest ``|diff|`` first."""
    import numpy as np
    import pandas as pd

    n = check_int("n", n, min=1)
    known, label = _labels(df)
    x, y = _pick("a", a, known), _pick("b", b, known)
    names = score_columns(df)
    if scorer is None:
        if not names:
            raise UsageError(
                "the frame has no score_ column: score it first (df.llm.rescore)", field="scorer"
            )
        col = names[0]
    else:
        col = scorer if scorer.startswith("score_") or scorer == "pass" else f"score_{scorer}"
        if col != "pass" and col not in names:
            raise UsageError(
                f"{scorer!r} is not a score in this frame; scores: {', '.join(names)}", field="scorer"
            )
    ok = (df["error"] == "").to_numpy(dtype=bool, na_value=False)
    if col == "pass":
        values = _pass_values(df, check_number("threshold", threshold))
    else:
        values = np.where(ok, df[col].to_numpy(dtype=float, na_value=np.nan), np.nan)
    cases, va, vb = _paired(df, label, x, y, values)
    out = pd.DataFrame({"case": cases, f"{col}_a": va, f"{col}_b": vb, "diff": va - vb})
    out = out[out["diff"].notna() & (out["diff"] != 0)]
    out = out.reindex(out["diff"].abs().sort_values(ascending=False, kind="stable").index).head(n)
    first = df.assign(_label=label).sort_values("repeat" if "repeat" in df.columns else "case", kind="stable")
    first = first.drop_duplicates(["case", "_label"]).set_index(["case", "_label"])["output"]
    out["output_a"] = [first.get((c, x), "") for c in out["case"]]
    out["output_b"] = [first.get((c, y), "") for c in out["case"]]
    return out.reset_index(drop=True)


def judge_pairs(
    df: pd.DataFrame,
    judge: Any,
    a: Any,
    b: Any,
    *,
    expected: str | None = None,
    cache: Any = True,
    concurrency: int = 8,
    progress: bool = False,
) -> pd.DataFrame:
    """A copy of ``df`` where ``judge`` (``scorers.pairwise``) compared ``a``'s and ``b``'s
    answers to each case (and repeat), in both orders: ``score_<name>`` on both models' rows
    (see ``scorers.pairwise``; NaN on other models' rows) and the judge's own usage in
    ``<name>_judge_prompt_tokens``, ``<name>_judge_completion_tokens``, ``<name>_judge_cost``,
    ``<name>_judge_output``, ``<name>_judge_error`` (all replaced when the same name is judged
    again). ``df.llm.compare(a, b)`` then tests it."""
    from ..scorers import PairwiseJudge
    from .cache import Cache
    from .plan import check_cache, check_column, open_cache
    from .progress import make_progress
    from .run import run_blocking
    from .score import PairwisePhase

    if not isinstance(judge, PairwiseJudge):
        raise UsageError(
            f"must be a pairwise judge: scorers.pairwise('judge-model', criteria=...), got {type(judge).__name__}",
            field="judge",
        )
    known, label = _labels(df)
    x, y = _pick("a", a, known), _pick("b", b, known)
    if x == y:
        raise UsageError(f"a and b are the same model ({x!r})", field="b")
    if expected is None:
        expected = (df.attrs.get("nbllm") or {}).get("expected")
        if expected is None and "expected" in df.columns:
            expected = "expected"
    else:
        check_column("expected", expected, df)
    concurrency = check_int("concurrency", concurrency, min=1)
    check_cache(cache)
    cases = df["case"].tolist()
    repeats = df["repeat"].tolist() if "repeat" in df.columns else [0] * len(df)
    rows_b = {(cases[i], repeats[i]): i for i in range(len(df)) if label[i] == y}
    pairs = [
        (i, rows_b[(cases[i], repeats[i])])
        for i in range(len(df))
        if label[i] == x and (cases[i], repeats[i]) in rows_b
    ]
    out = df.reset_index(drop=True).copy()
    store = open_cache(cache)
    try:
        phase = PairwisePhase(out, judge, pairs, expected, store, concurrency)
        phase.runner.load_cache()
        if phase.stats.done < phase.stats.total:
            bar = make_progress(phase.stats, progress)
            try:
                run_blocking(phase.runner.run(), stop=lambda: phase.runner.stop("interrupted"), progress=bar)
            finally:
                bar.close()
        for i, done in enumerate(phase.out.done):
            if not done:
                phase.out.fail(i, phase.stats.stopped or "interrupted", None)
        phase.apply()
    finally:
        if store is not None and not isinstance(cache, Cache):
            store.close()
    out.index = df.index
    meta = dict(out.attrs.get("nbllm") or {})
    meta["pairwise"] = sorted({*meta.get("pairwise", ()), judge.name})
    out.attrs["nbllm"] = meta
    return out


def side_by_side(df: pd.DataFrame, values: str = "output") -> pd.DataFrame:
    """One row per case: the case's columns, then ``values`` (default ``output``) per model
    (and per params set / repeat when there are several)."""
    import pandas as pd

    from .plan import check_column

    check_column("values", values, df)
    cols = ["model"] + [c for c in ("params", "repeat") if c in df.columns and df[c].nunique() > 1]
    wide = df.pivot_table(
        index="case", columns=cols, values=values, aggfunc="first", dropna=False, observed=True, sort=False
    )
    if isinstance(wide.columns, pd.MultiIndex) and wide.columns.nlevels == 1:
        wide.columns = wide.columns.get_level_values(0)
    first_result = df.columns.get_loc("model")
    case_cols = [c for c in df.columns[:first_result] if c != "case"]
    if "prompt" in df.columns:
        case_cols.append("prompt")
    info = df.drop_duplicates("case").set_index("case")[case_cols]
    if isinstance(wide.columns, pd.MultiIndex):
        info.columns = pd.MultiIndex.from_tuples(
            [(c,) + ("",) * (wide.columns.nlevels - 1) for c in info.columns]
        )
    out = info.join(wide)
    return out


def plot(df: pd.DataFrame, threshold: float = 0.5, *, level: float | None = 0.95) -> Any:
    """A matplotlib Figure (not registered with pyplot, so it displays exactly once when it
    is a cell's value): mean score per scorer and model with ``level`` confidence intervals as
    error bars (those of ``summary``; none with ``level=None``); latency and TTFT p50/p95 per
    model."""
    import numpy as np

    s = summary(df, threshold, level=level)
    labels = [" ".join(map(str, k)) if isinstance(k, tuple) else str(k) for k in s.index]
    scores = score_columns(df) + (["pass_rate"] if "pass_rate" in s.columns else [])
    fig = _figure_class()(figsize=(10, 4), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    x = np.arange(len(labels))
    width = 0.8 / max(1, len(scores))
    for k, col in enumerate(scores):
        mean = s[col].to_numpy(dtype=float, na_value=np.nan)
        err = None
        if level is not None:
            lo = s[f"{col}_ci_low"].to_numpy(dtype=float, na_value=np.nan)
            hi = s[f"{col}_ci_high"].to_numpy(dtype=float, na_value=np.nan)
            err = np.vstack([np.clip(mean - lo, 0, None), np.clip(hi - mean, 0, None)])
        ax1.bar(
            x + k * width - 0.4 + width / 2,
            mean,
            width,
            yerr=err,
            capsize=3,
            error_kw={"elinewidth": 1},
            label=col.removeprefix("score_"),
        )
    ax1.set_xticks(x, labels)
    ax1.set_ylim(0, 1.05)
    ax1.set_title("mean score (rows without error)" + (f", {level:.0%} CI" if level is not None else ""))
    if scores:
        ax1.legend(
            fontsize="small",
            loc="upper center",
            bbox_to_anchor=(0.5, -0.1),
            ncol=min(len(scores), 4),
            frameon=False,
        )
    bars = [
        ("latency_p50", "latency p50"),
        ("latency_p95", "latency p95"),
        ("ttft_p50", "TTFT p50"),
        ("ttft_p95", "TTFT p95"),
    ]
    width = 0.8 / len(bars)
    for k, (col, name) in enumerate(bars):
        ax2.bar(
            x + k * width - 0.4 + width / 2, s[col].to_numpy(dtype=float, na_value=np.nan), width, label=name
        )
    ax2.set_xticks(x, labels)
    ax2.set_ylabel("seconds")
    ax2.set_title("latency and time to first token")
    ax2.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=4, frameon=False)
    return fig


_FIGURE: list[Any] = []


def _figure_class() -> Any:
    """A matplotlib Figure that renders itself as PNG in IPython (``_repr_png_``), with or
    without an active inline backend; made once, on first use (matplotlib imported lazily)."""
    if not _FIGURE:
        import io

        from matplotlib.figure import Figure

        class EvalFigure(Figure):
            def _repr_png_(self) -> bytes:
                buf = io.BytesIO()
                self.savefig(buf, format="png", dpi=100)
                return buf.getvalue()

        _FIGURE.append(EvalFigure)
    return _FIGURE[0]


def save(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write ``df`` as CSV, Parquet or JSONL, chosen by the file's suffix."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".parquet":
        df.to_parquet(p, index=False)
    elif suffix in (".jsonl", ".ndjson"):
        to_jsonl(df, p)
    elif suffix in (".csv", ".tsv"):
        df.to_csv(p, index=False, sep="\t" if suffix == ".tsv" else ",")
    else:
        raise UsageError(f"unknown results format {suffix!r}: use .csv, .parquet or .jsonl", field="path")
    return p


class LLMAccessor:
    """``df.llm``: views and exports of an ``nbllm.evaluate`` result frame."""

    def __init__(self, df: pd.DataFrame) -> None:
        missing = {"model", "output", "error"} - {str(c) for c in df.columns}
        if missing:
            raise AttributeError(f"df.llm needs an nbllm.evaluate result frame (missing {sorted(missing)})")
        self._df = df

    def summary(
        self,
        threshold: float = 0.5,
        *,
        level: float | None = 0.95,
        resamples: int = _stats.DEFAULT_RESAMPLES,
        seed: int = _stats.DEFAULT_SEED,
    ) -> pd.DataFrame:
        return summary(self._df, threshold, level=level, resamples=resamples, seed=seed)

    def compare(
        self,
        a: Any = None,
        b: Any = None,
        *,
        scorers: Any = None,
        level: float = 0.95,
        test: str = "auto",
        threshold: float = 0.5,
        resamples: int = _stats.DEFAULT_RESAMPLES,
        seed: int = _stats.DEFAULT_SEED,
    ) -> pd.DataFrame:
        return compare(
            self._df,
            a,
            b,
            scorers=scorers,
            level=level,
            test=test,
            threshold=threshold,
            resamples=resamples,
            seed=seed,
        )

    def judge_pairs(
        self,
        judge: Any,
        a: Any,
        b: Any,
        *,
        expected: str | None = None,
        cache: Any = True,
        concurrency: int = 8,
        progress: bool = False,
    ) -> pd.DataFrame:
        return judge_pairs(
            self._df,
            judge,
            a,
            b,
            expected=expected,
            cache=cache,
            concurrency=concurrency,
            progress=progress,
        )

    def disagreements(
        self, a: Any, b: Any, *, scorer: str | None = None, n: int = 10, threshold: float = 0.5
    ) -> pd.DataFrame:
        return disagreements(self._df, a, b, scorer=scorer, n=n, threshold=threshold)

    def side_by_side(self, values: str = "output") -> pd.DataFrame:
        return side_by_side(self._df, values)

    def plot(self, threshold: float = 0.5, *, level: float | None = 0.95) -> Any:
        return plot(self._df, threshold, level=level)

    def rescore(
        self,
        scorers: Any,
        *,
        expected: str | None = None,
        cache: Any = True,
        concurrency: int = 8,
        progress: bool = False,
    ) -> pd.DataFrame:
        """A copy with ``score_<name>`` columns from ``scorers`` (replacing same-named ones).
        Reads the frame's outputs: models are not called again (an LLM judge is, cached)."""
        from .rescore import rescore

        return rescore(
            self._df, scorers, expected=expected, cache=cache, concurrency=concurrency, progress=progress
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        return save(self._df, path)

    def to_jsonl(self, path: str | os.PathLike[str]) -> Path:
        return to_jsonl(self._df, path)

    def to_csv(self, path: str | os.PathLike[str]) -> Path:
        self._df.to_csv(path, index=False)
        return Path(path)

    def to_parquet(self, path: str | os.PathLike[str]) -> Path:
        self._df.to_parquet(path, index=False)
        return Path(path)

    def errors(self) -> pd.DataFrame:
        """The rows whose call failed."""
        return self._df[self._df["error"] != ""]


def _register() -> None:
    import pandas as pd

    if "llm" not in getattr(pd.DataFrame, "_accessors", set()):
        pd.api.extensions.register_dataframe_accessor("llm")(LLMAccessor)


_register()
