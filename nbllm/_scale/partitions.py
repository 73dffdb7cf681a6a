"""``evaluate(cases, ..., output=DIR)``: evaluations larger than memory, partition by partition.

Cases are read in partitions (a parquet/CSV/JSONL file, a glob or directory of them, read
``PARTITION_ROWS`` rows at a time; a DataFrame, sliced; or an iterator of DataFrames, one
partition per chunk). Each partition is run by the ordinary in-memory ``evaluate`` (same rows,
columns, errors as rows, retries, cache) and written to ``DIR/part-00000.parquet``,
``part-00001.parquet``... atomically (a temp file renamed into place), then recorded in
``DIR/_nbllm.json``. Memory stays bounded by one partition (plus the calls in flight), whatever
the number of rows. ``case`` numbers are global (the partition's offset is added).

Re-running with the same ``output=`` resumes: a partition whose file is recorded in the
manifest is skipped without calling anything; the partition that was running when the process
died resumes from the cache (every answer is saved as it arrives). A manifest written by a
different run (other models, prompt, params) is refused rather than mixed in.

``nbllm.load_results(DIR)`` reads the dataset back; ``pyarrow.dataset.dataset(DIR)`` or
``dask.dataframe.read_parquet(DIR)`` read it lazily (files starting with ``_`` are ignored).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._base.exceptions import ConfigError, UsageError
from .._base.format import plural
from .._base.validate import check_bool, got
from .._evaluation.cache import endpoint_fingerprint
from .._evaluation.plan import check_cache, open_cache
from .._evaluation.progress import Stats, announce, make_progress

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["PARTITION_ROWS", "OutputDataset", "evaluate_partitioned", "iter_partitions"]

PARTITION_ROWS = 10_000  # cases per partition read from files / sliced from a frame
MANIFEST = "_nbllm.json"
_SUFFIXES = {".parquet": "parquet", ".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


@dataclass
class OutputDataset:
    """What an ``output=`` run wrote: the directory, and how many partitions and rows."""

    path: Path
    partitions: int
    rows: int
    skipped: int  # partitions already finished by an earlier run
    errors: int  # rows with an error, in the partitions run now
    stopped: str = ""  # why the run stopped early ("interrupted", "budget reached"), or ""

    def load(self) -> pd.DataFrame:
        """The whole dataset as one frame (it must fit in memory; else read it lazily)."""
        from .._evaluation.frame import load_results

        return load_results(self.path)

    def __repr__(self) -> str:
        return (
            f"<nbllm results {str(self.path)!r}: {plural(self.rows, 'row')} in "
            f"{plural(self.partitions, 'partition')} ({self.skipped} already done; "
            f"{plural(self.errors, 'error')} now)>"
        )


# ---- case sources -----------------------------------------------------------------------------


def _files(source: str | os.PathLike[str]) -> list[Path]:
    text = os.fspath(Path(source).expanduser())
    if glob.has_magic(text):
        found = [Path(p) for p in sorted(glob.glob(text, recursive=True))]
    elif Path(text).is_dir():
        found = sorted(p for p in Path(text).iterdir() if not p.name.startswith(("_", ".")))
    else:
        found = [Path(text)]
    files = [p for p in found if p.suffix.lower() in _SUFFIXES and p.is_file()]
    if not files:
        raise UsageError(
            f"no .parquet/.csv/.tsv/.jsonl files at {text!r}",
            field="cases",
            hint="give a file, a directory of files or a glob such as 'data/*.parquet'",
        )
    return files


def _read_file(p: Path, rows: int) -> Iterator[pd.DataFrame]:
    import pandas as pd

    kind = _SUFFIXES[p.suffix.lower()]
    if kind == "parquet":
        import pyarrow.parquet as pq

        with pq.ParquetFile(p) as f:
            for batch in f.iter_batches(batch_size=rows):
                yield batch.to_pandas()
    elif kind == "jsonl":
        with pd.read_json(p, lines=True, dtype=False, chunksize=rows) as reader:
            yield from reader
    else:
        with pd.read_csv(p, sep="\t" if kind == "tsv" else ",", chunksize=rows) as reader:
            yield from reader


def iter_partitions(cases: Any, rows: int = PARTITION_ROWS) -> Iterator[pd.DataFrame]:
    """The cases as a stream of DataFrames, each at most ``rows`` rows (iterator chunks as given)."""
    import pandas as pd

    if isinstance(cases, (str, os.PathLike)):
        for p in _files(cases):
            yield from _read_file(p, rows)
    elif isinstance(cases, pd.DataFrame):
        for start in range(0, len(cases), rows):
            yield cases.iloc[start : start + rows]
    elif isinstance(cases, Iterable) and not isinstance(cases, (bytes, dict, list, tuple)):
        for i, chunk in enumerate(cases):
            if not isinstance(chunk, pd.DataFrame):
                raise UsageError(f"an iterator of cases must yield DataFrames; chunk {i}: {got(chunk)}")
            yield chunk
    else:  # a list of dicts/strings: small enough to load, then slice
        from .._evaluation.plan import load_cases

        yield from iter_partitions(load_cases(cases), rows)


# ---- the run ----------------------------------------------------------------------------------


def _run_id(models: Any, prompt: Any, opts: dict[str, Any]) -> str:
    """What must match for a resume to mix partitions of one run only."""
    from .._evaluation.plan import _models

    fps = [endpoint_fingerprint(ep) for ep in _models(models)]
    what = {
        "models": fps,
        "prompt": prompt
        if isinstance(prompt, str) or prompt is None
        else getattr(prompt, "__qualname__", "fn"),
        **{k: opts.get(k) for k in ("system", "expected", "params", "grid", "repeats")},
    }
    text = json.dumps(what, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _read_manifest(out: Path, run_id: str) -> dict[str, Any]:
    path = out / MANIFEST
    if not path.is_file():
        if any(out.glob("part-*.parquet")):
            raise ConfigError(
                f"{str(out)!r} holds part files but no {MANIFEST}",
                field="output",
                hint="give an empty or new directory as output=",
            )
        return {"version": 1, "run": run_id, "parts": {}}
    manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("run") != run_id:
        raise ConfigError(
            f"{str(out)!r} holds the results of a different evaluation (other models, prompt or params)",
            field="output",
            hint="give a new directory as output=, or delete that one to start over",
        )
    return manifest


def _write_atomic(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    write(tmp)
    os.replace(tmp, path)


def _save_manifest(out: Path, manifest: dict[str, Any]) -> None:
    text = json.dumps(manifest, indent=1, sort_keys=True)
    _write_atomic(out / MANIFEST, lambda p: p.write_text(text, encoding="utf-8"))


def evaluate_partitioned(
    cases: Any, models: Any, prompt: Any, *, output: str | os.PathLike[str], **opts: Any
) -> OutputDataset:
    """``evaluate`` one partition at a time into a parquet dataset at ``output`` (see module)."""
    from .._evaluation.api import evaluate
    from .._evaluation.cache import Cache

    if not isinstance(output, (str, os.PathLike)):
        raise UsageError(f"must be a directory path, {got(output)}", field="output")
    progress = check_bool("progress", opts.get("progress", True))
    check_cache(opts.get("cache", True))
    out = Path(output).expanduser()
    if out.exists() and not out.is_dir():
        raise UsageError(f"{str(out)!r} is a file; output= must be a directory", field="output")
    run_id = _run_id(models, prompt, opts)
    out.mkdir(parents=True, exist_ok=True)
    manifest = _read_manifest(out, run_id)
    done: dict[str, Any] = manifest["parts"]
    cache = opts.get("cache", True)
    store = open_cache(cache)  # one connection for every partition
    inner = {**opts, "cache": store if store is not None else False, "progress": False}
    stats = Stats(0, label="cases")
    bar = make_progress(stats, progress)
    budget = opts.get("budget")
    offset = rows = skipped = errors = parts = 0
    try:
        for n, chunk in enumerate(iter_partitions(cases)):
            name = f"part-{n:05d}.parquet"
            stats.total += len(chunk)
            rec = done.get(name)
            if (
                rec is not None
                and rec["first_case"] == offset
                and not rec["errors"]
                and (out / name).is_file()
            ):
                skipped += 1  # finished without errors by an earlier run
                rows += rec["rows"]
            else:
                if budget is not None:
                    inner["budget"] = max(0.0, budget - stats.cost)
                df = evaluate(chunk.reset_index(drop=True), models, prompt, **inner)
                stopped = df.attrs["nbllm"]["stopped"]
                if stopped:  # interrupted or out of budget: not a finished partition
                    stats.stopped = stopped
                    break
                df["case"] = df["case"] + offset
                bad = int((df["error"] != "").sum())
                errors += bad
                stats.errors += bad
                stats.cost += float(df["cost"][~df["cached"].astype(bool)].sum(skipna=True))
                rows += len(df)
                _write_atomic(out / name, lambda p, d=df: d.to_parquet(p, index=False))
                # a partition with errors is run again on resume (its answers come from the cache)
                done[name] = {"first_case": offset, "cases": len(chunk), "rows": len(df), "errors": bad}
                _save_manifest(out, manifest)
                del df
            parts += 1
            offset += len(chunk)
            stats.done = stats.fresh_done = offset
            bar.update()
    finally:
        bar.close()
        if store is not None and not isinstance(cache, Cache):
            store.close()
    if stats.stopped:
        announce(
            f"nbllm.evaluate stopped ({stats.stopped}) after {plural(parts, 'partition')}; "
            "run the same call again to resume",
            progress,
        )
    announce(
        f"nbllm.evaluate: {plural(rows, 'row')} in {plural(parts, 'partition')} at {str(out)!r} "
        f"({skipped} already done); nbllm.load_results({str(out)!r}) reads them",
        progress,
    )
    return OutputDataset(out, parts, rows, skipped, errors, stats.stopped)
