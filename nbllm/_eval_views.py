"""Views of a result frame, as the ``df.llm`` pandas accessor (registered on import).

``df.llm.summary()``      one row per model (and params set): scores, pass rate, latency/TTFT
                          p50/p95, tokens, cost, errors
``df.llm.side_by_side()`` one row per case, one column of outputs per model
``df.llm.plot()``         a matplotlib Figure: mean scores and latency per model
``df.llm.rescore(...)``   new score columns from the frame alone (no model calls)
``df.llm.save(path)``     CSV / Parquet / JSONL by suffix; ``nbllm.load_results`` reads it back
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._eval_frame import to_jsonl
from ._exceptions import UsageError
from ._validate import check_number

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["LLMAccessor", "side_by_side", "summary"]


def _group_keys(df: pd.DataFrame) -> list[str]:
    keys = ["model"]
    if "params" in df.columns and df["params"].nunique() > 1:
        keys.append("params")
    return keys


def score_columns(df: pd.DataFrame) -> list[str]:
    return [str(c) for c in df.columns if str(c).startswith("score_")]


def summary(df: pd.DataFrame, threshold: float = 0.5) -> pd.DataFrame:
    """Per model (and params set, when several): ``calls``, ``errors``, ``error_rate``,
    ``cached``, the mean of each score (over rows without error), ``pass_rate`` (share of all
    rows, errors included, whose every score is >= ``threshold``), ``latency_p50/p95`` and
    ``ttft_p50/p95`` (rows without error), token sums, ``cost`` (NaN when no prices),
    ``retries`` and, with a judge, ``judge_cost``."""
    import numpy as np
    import pandas as pd

    threshold = check_number("threshold", threshold)
    keys = _group_keys(df)
    scores = score_columns(df)
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
            row[s] = float(good[s].mean()) if len(good) else np.nan
        if scores:
            passed = np.ones(n, dtype=bool) & ok
            for s in scores:
                passed &= (g[s] >= threshold).to_numpy(dtype=bool, na_value=False)
            row["pass_rate"] = float(passed.mean()) if n else np.nan
        for col, name in (("latency_s", "latency"), ("ttft_s", "ttft")):
            vals = good[col].dropna()
            row[f"{name}_p50"] = float(vals.quantile(0.5)) if len(vals) else np.nan
            row[f"{name}_p95"] = float(vals.quantile(0.95)) if len(vals) else np.nan
        for col in ("prompt_tokens", "completion_tokens"):
            row[col] = int(g[col].sum())
        row["cost"] = float(g["cost"].sum(min_count=1))
        row["retries"] = int(g["retries"].sum())
        if "judge_cost" in g.columns:
            row["judge_cost"] = float(g["judge_cost"].sum(min_count=1))
        rows.append(row)
    if not rows:  # an empty run: the same table, with no rows
        return pd.DataFrame(columns=[*keys, "calls", "errors", "error_rate"]).set_index(keys)
    out = pd.DataFrame(rows).set_index(keys)
    for col in ("calls", "errors", "cached", "prompt_tokens", "completion_tokens", "retries"):
        out[col] = out[col].astype("Int64")
    return out


def side_by_side(df: pd.DataFrame, values: str = "output") -> pd.DataFrame:
    """One row per case: the case's columns, then ``values`` (default ``output``) per model
    (and per params set / repeat when there are several)."""
    import pandas as pd

    from ._eval_plan import check_column

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


def plot(df: pd.DataFrame, threshold: float = 0.5) -> Any:
    """A matplotlib Figure (not registered with pyplot, so it displays exactly once when it
    is a cell's value): mean score per scorer and model; latency and TTFT p50/p95 per model."""
    import numpy as np

    s = summary(df, threshold)
    labels = [" ".join(map(str, k)) if isinstance(k, tuple) else str(k) for k in s.index]
    scores = score_columns(df) + (["pass_rate"] if "pass_rate" in s.columns else [])
    fig = _figure_class()(figsize=(10, 4), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    x = np.arange(len(labels))
    width = 0.8 / max(1, len(scores))
    for k, col in enumerate(scores):
        ax1.bar(
            x + k * width - 0.4 + width / 2,
            s[col].to_numpy(dtype=float, na_value=np.nan),
            width,
            label=col.removeprefix("score_"),
        )
    ax1.set_xticks(x, labels)
    ax1.set_ylim(0, 1.05)
    ax1.set_title("mean score (rows without error)")
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

    def summary(self, threshold: float = 0.5) -> pd.DataFrame:
        return summary(self._df, threshold)

    def side_by_side(self, values: str = "output") -> pd.DataFrame:
        return side_by_side(self._df, values)

    def plot(self, threshold: float = 0.5) -> Any:
        return plot(self._df, threshold)

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
        from ._eval import rescore

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
