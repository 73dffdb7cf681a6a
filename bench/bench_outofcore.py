"""Benchmark out-of-core evaluation: peak RSS and rows/s vs the in-memory path; resume after a kill.

    .venv/bin/python bench/bench_outofcore.py [--rows 1000000] [--small 100000] [--concurrency 32]

A parquet dataset of ``--rows`` small cases (files of 100,000 rows) is evaluated against the
demo server (its own process, ``python -m nbllm._server.demo``) with ``evaluate(src_glob, endpoint,
output=DIR)``, each run in a fresh child process whose peak RSS (``ru_maxrss``) is reported:

- out-of-core at ``--small`` rows and at ``--rows`` rows: peak RSS must not grow with N;
- the in-memory path (``evaluate(pandas_frame)``) at ``--small`` rows, for comparison;
- resume: an out-of-core run at ``--small`` rows SIGKILLed once half its partitions are written,
  then run again: partitions skipped, rows answered from the cache, rows called again.

Every run uses a fresh cache file (the cache is part of the cost: it is what makes resume work).
Writes ``bench/RESULTS-scale.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
FILE_ROWS = 100_000


def make_dataset(d: Path, n: int) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    d.mkdir(parents=True, exist_ok=True)
    for f, start in enumerate(range(0, n, FILE_ROWS)):
        stop = min(n, start + FILE_ROWS)
        table = pa.table({"q": [f"q{i}" for i in range(start, stop)], "k": list(range(start, stop))})
        pq.write_table(table, d / f"cases-{f:04d}.parquet")
    return d


# ---- child: one run, reports JSON on stdout ----------------------------------------------------


def child(args: argparse.Namespace) -> None:
    import nbllm

    ep = nbllm.Endpoint(name="demo", url=args.url, retries=1)
    t0 = time.perf_counter()
    if args.mode == "inmemory":
        import pandas as pd

        cases = pd.read_parquet(args.src)
        df = nbllm.evaluate(
            cases, ep, "Say {q}", concurrency=args.concurrency, cache=args.cache, progress=False
        )
        rows, errors, extra = len(df), int((df["error"] != "").sum()), {}
    else:
        res = nbllm.evaluate(
            args.src + "/*.parquet",
            ep,
            "Say {q}",
            concurrency=args.concurrency,
            cache=args.cache,
            progress=False,
            output=args.out,
        )
        rows, errors = res.rows, res.errors
        extra = {"skipped": res.skipped, "partitions": res.partitions}
    seconds = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB
    print(json.dumps({"rows": rows, "errors": errors, "seconds": seconds, "peak_rss_mb": rss, **extra}))


def run_child(mode: str, src: Path, url: str, conc: int, cache: Path, out: Path | None) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", mode, "--src", str(src), "--url", url]
    cmd += ["--concurrency", str(conc), "--cache", str(cache)]
    if out is not None:
        cmd += ["--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True, env=_env())
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def killed_then_resumed(src: Path, url: str, conc: int, work: Path) -> dict[str, Any]:
    """Kill an out-of-core run half way (SIGKILL), run it again, count what the rerun did."""
    import pyarrow.parquet as pq

    cache, out = work / "resume.sqlite3", work / "resume-out"
    cmd = [sys.executable, __file__, "--child", "outofcore", "--src", str(src), "--url", url]
    cmd += ["--concurrency", str(conc), "--cache", str(cache), "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env())
    n_rows = sum(pq.ParquetFile(p).metadata.num_rows for p in src.glob("*.parquet"))
    half = max(1, n_rows // 10_000 // 2)
    while proc.poll() is None and len(list(out.glob("part-*.parquet"))) < half:
        time.sleep(0.05)
    time.sleep(0.5)  # into the next partition: some of its answers cached, no part file yet
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    written = len(list(out.glob("part-*.parquet")))
    again = run_child("outofcore", src, url, conc, cache, out)
    cached = 0
    for p in sorted(out.glob("part-*.parquet"))[written:]:
        cached += int(pq.read_table(p, columns=["cached"]).column("cached").to_pandas().sum())
    redone_rows = again["rows"] - sum(
        pq.ParquetFile(p).metadata.num_rows for p in sorted(out.glob("part-*.parquet"))[:written]
    )
    return {
        "parts_before_kill": written,
        **again,
        "rows_after_kill": redone_rows,
        "cached_after_kill": cached,
        "called_after_kill": redone_rows - cached,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--small", type=int, default=100_000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--child")
    ap.add_argument("--src")
    ap.add_argument("--url")
    ap.add_argument("--cache")
    ap.add_argument("--out")
    args = ap.parse_args()
    if args.child:
        args.mode = args.child
        child(args)
        return
    from _proc import DemoServer

    work = Path(tempfile.mkdtemp(prefix="nbllm-bench-scale-"))
    srv = DemoServer(Path(sys.executable), _env(), work / "demo.log")
    results: dict[str, Any] = {}
    try:
        small = make_dataset(work / "small", args.small)
        big = make_dataset(work / "big", args.rows)
        c = args.concurrency
        print("in-memory", args.small, flush=True)
        results["inmemory_small"] = run_child("inmemory", small, srv.url, c, work / "a.sqlite3", None)
        print(results["inmemory_small"], flush=True)
        print("out-of-core", args.small, flush=True)
        results["outofcore_small"] = run_child(
            "outofcore", small, srv.url, c, work / "b.sqlite3", work / "o1"
        )
        print(results["outofcore_small"], flush=True)
        print("kill + resume", args.small, flush=True)
        results["resume"] = killed_then_resumed(small, srv.url, c, work)
        print(results["resume"], flush=True)
        print("out-of-core", args.rows, flush=True)
        results["outofcore_big"] = run_child("outofcore", big, srv.url, c, work / "c.sqlite3", work / "o2")
        print(results["outofcore_big"], flush=True)
    finally:
        srv.stop()
    write_report(args, results)


def write_report(args: argparse.Namespace, r: dict[str, Any]) -> None:
    def line(name: str, n: int, x: dict[str, Any]) -> str:
        return (
            f"| {name} | {n:,} | {x['rows']:,} | {x['errors']} | {x['seconds']:.1f} | "
            f"{x['rows'] / x['seconds']:,.0f} | {x['peak_rss_mb']:.0f} |"
        )

    res = r["resume"]
    text = f"""# Out-of-core evaluation (bench/bench_outofcore.py)

`{platform.platform()}`, {os.cpu_count()} CPUs (shared with other work while measured), Python
{platform.python_version()}. Demo server in its own process on loopback; one endpoint;
`concurrency={args.concurrency}`; cache on (a fresh sqlite file per run); out-of-core partitions
of 10,000 cases; each run in a fresh child process, peak RSS = its `ru_maxrss`.

| run | cases | rows | errors | seconds | rows/s | peak RSS MiB |
|---|---:|---:|---:|---:|---:|---:|
{line("in-memory `evaluate(frame)`", args.small, r["inmemory_small"])}
{line("out-of-core `output=`", args.small, r["outofcore_small"])}
{line("out-of-core `output=`", args.rows, r["outofcore_big"])}

Peak RSS of the out-of-core path at {args.rows:,} cases vs {args.small:,}:
{r["outofcore_big"]["peak_rss_mb"] / r["outofcore_small"]["peak_rss_mb"]:.2f}x (the rows grew
{args.rows / args.small:.0f}x).

## Resume after a kill

An out-of-core run over {args.small:,} cases was SIGKILLed after {res["parts_before_kill"]}
partition files were written, then run again with the same `output=` and cache: it skipped
{res["skipped"]} partitions without reading the cache or calling, and of the
{res["rows_after_kill"]:,} rows after them {res["cached_after_kill"]:,} came from the cache
(answered before the kill) and {res["called_after_kill"]:,} were called. Rerun:
{res["seconds"]:.1f} s, peak RSS {res["peak_rss_mb"]:.0f} MiB.
"""
    (HERE / "RESULTS-scale.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
