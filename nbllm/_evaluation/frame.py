"""The result frame of ``nbllm.evaluate``: schema, column-wise construction, export/reload.

One row per case x endpoint x params combination x repeat. Columns, after ``case`` and the
case's own columns, are ``RESULT_COLUMNS`` (dtypes below), then one float ``score_<name>`` per
scorer, then the ``judge_*`` columns when an LLM judge scored the rows.

Text columns never hold NA (an empty string means "none"), so CSV round-trips them exactly.
pandas is imported inside functions only.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._base.exceptions import UsageError
from .._base.validate import got

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["RESULT_COLUMNS", "build_frame", "coerce", "load_results", "to_jsonl"]

# name -> pandas dtype (text columns: "string", never NA in result columns)
RESULT_COLUMNS: dict[str, str] = {
    "model": "string",
    "params": "string",
    "repeat": "Int64",
    "system": "string",
    "prompt": "string",
    "output": "string",
    "error": "string",
    "latency_s": "float64",
    "ttft_s": "float64",
    "prompt_tokens": "Int64",
    "completion_tokens": "Int64",
    "tokens_estimated": "boolean",
    "cost": "float64",
    "finish_reason": "string",
    "retries": "Int64",
    "cached": "boolean",
}
JUDGE_COLUMNS: dict[str, str] = {
    "judge_prompt_tokens": "Int64",
    "judge_completion_tokens": "Int64",
    "judge_cost": "float64",
    "judge_output": "string",
    "judge_error": "string",
}
TEXT_RESULT = {k for k, v in {**RESULT_COLUMNS, **JUDGE_COLUMNS}.items() if v == "string"}


def dtype_of(name: str) -> str | None:
    """The fixed dtype of a result column, or None for the case's own columns."""
    if name == "case":
        return "Int64"
    if name.startswith("score_"):
        return "float64"
    return RESULT_COLUMNS.get(name) or JUDGE_COLUMNS.get(name)


def int_array(values: Sequence[int | None]) -> Any:
    """A nullable Int64 array from Python ints / None."""
    import numpy as np
    import pandas as pd

    mask = np.fromiter((v is None for v in values), dtype=bool, count=len(values))
    data = np.fromiter((0 if v is None else v for v in values), dtype=np.int64, count=len(values))
    return pd.arrays.IntegerArray(data, mask)


def bool_array(values: Sequence[bool]) -> Any:
    import numpy as np
    import pandas as pd

    data = np.fromiter(values, dtype=bool, count=len(values))
    return pd.arrays.BooleanArray(data, np.zeros(len(values), dtype=bool))


def text_array(values: Sequence[str]) -> Any:
    import pandas as pd

    return pd.array(values, dtype="string")


def build_frame(case_frame: pd.DataFrame, case_idx: Any, columns: dict[str, Any]) -> pd.DataFrame:
    """Assemble the result frame column by column (no per-row dicts).

    ``case_frame``: the cases (one row each); ``case_idx``: int array, the case of each row;
    ``columns``: result column name -> array-like already of the right length.
    """
    import pandas as pd

    data: dict[str, Any] = {"case": int_array(case_idx.tolist())}
    taken = case_frame.take(case_idx)
    for name in case_frame.columns:
        col = taken[name].reset_index(drop=True)
        data[str(name)] = _case_text(col)
    for name, values in columns.items():
        dtype = dtype_of(name)
        data[name] = values if dtype is None or _has_dtype(values, dtype) else pd.array(values, dtype=dtype)
    return pd.DataFrame(data, copy=False)


def _has_dtype(values: Any, dtype: str) -> bool:
    return str(getattr(values, "dtype", "")) == dtype


def _case_text(col: pd.Series) -> pd.Series:
    """Case columns holding only text become ``string`` (so every format reloads them equal)."""
    import pandas as pd

    if col.dtype == object or isinstance(col.dtype, pd.StringDtype):
        kind = pd.api.types.infer_dtype(col, skipna=True)
        if kind in ("string", "empty"):
            return col.astype("string")
    return col


def coerce(df: pd.DataFrame) -> pd.DataFrame:
    """Give a reloaded frame the result dtypes back (case columns: text becomes ``string``)."""
    for name in df.columns:
        dtype = dtype_of(str(name))
        if dtype is None:
            df[name] = _case_text(df[name])
        elif str(df[name].dtype) != dtype:
            col = df[name]
            if name in TEXT_RESULT:
                col = col.fillna("").astype(str)
            df[name] = col.astype(dtype)
    return df


# ---- export / reload ----------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):  # numpy scalar
        return _jsonable(value.item())
    try:
        import pandas as pd

        if value is pd.NA:
            return None
    except ImportError:  # pragma: no cover
        pass
    return value


def to_jsonl(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write one JSON object per row (full float precision; NA as null)."""
    out = Path(path)
    names = [str(c) for c in df.columns]
    cols = [df[c].astype(object).tolist() for c in df.columns]
    with out.open("w", encoding="utf-8") as f:
        for row in zip(*cols, strict=True):
            record = {n: _jsonable(v) for n, v in zip(names, row, strict=True)}
            f.write(json.dumps(record, ensure_ascii=False, allow_nan=False, default=str))
            f.write("\n")
    return out


def load_results(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Reload a result frame written as CSV, Parquet or JSONL, or the directory an
    ``evaluate(..., output=DIR)`` run wrote, with the result dtypes."""
    import pandas as pd

    if not isinstance(path, (str, os.PathLike)):
        raise UsageError(f"must be a file path (str or Path), {got(path)}", field="path")
    p = Path(path)
    suffix = p.suffix.lower()
    if p.is_dir():  # an ``output=`` dataset: its part files in order (``_nbllm.json`` skipped)
        parts = sorted(p.glob("part-*.parquet"))
        if not parts:
            raise UsageError(f"no part-*.parquet files in {str(p)!r}", field="path")
        df = pd.concat([pd.read_parquet(f) for f in parts], ignore_index=True)
    elif suffix == ".parquet":
        df = pd.read_parquet(p)
    elif suffix in (".jsonl", ".ndjson", ".json"):
        df = pd.DataFrame(_read_jsonl(p))
    elif suffix in (".csv", ".tsv"):
        sep = "\t" if suffix == ".tsv" else ","
        head = [str(c) for c in pd.read_csv(p, nrows=0, sep=sep).columns]
        # to_csv writes NA as "", so "" is the only NA marker; result text columns have none
        # (an answer that reads "NA" or "None" stays text).
        na = {c: ([] if c in TEXT_RESULT else [""]) for c in head}
        text = {c: "string" for c in head if c in TEXT_RESULT}
        df = pd.read_csv(p, sep=sep, dtype=text, keep_default_na=False, na_values=na)
    else:
        raise UsageError(f"unknown results format {suffix!r}: use .csv, .parquet or .jsonl", field="path")
    return coerce(df)


def _read_jsonl(p: Path) -> Iterable[dict[str, Any]]:
    with p.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
