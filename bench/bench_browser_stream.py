"""Browser cost of a streamed %%llm answer in a real JupyterLab 4 (headless Debian Chromium).

    PYTHONPATH=$PWD .venv/bin/python bench/bench_browser_stream.py            # full: ~15 min
    PYTHONPATH=$PWD .venv/bin/python bench/bench_browser_stream.py --tokens 2000 --variants blocks,whole

For each variant and answer length (2,000 / 8,000 / 20,000 word pieces at about 500 a second from
the demo server running in the kernel), a fresh notebook is opened and its streaming cell run under
a probe (tests/browser/streamprobe.py): Chrome's main-thread task time (DevTools
``Performance.getMetrics`` TaskDuration: every task, not only long ones) from the click to the
cell's end, animation-frame gaps (frames over 50 ms, the worst gap), whether the output ever got
shorter, and the render lag (first output -> end shown, minus the kernel's own stream time).

Variants: ``blocks`` (%%llm Markdown, finished blocks sent once: the default), ``whole`` (%%llm
Markdown, the whole text re-sent at each redraw: the old way, ``_display.STREAM_MODE="whole"``),
``naive`` (a hand-written ``update_display`` per token), ``text`` (%%llm --format text), ``side``
(two endpoints side by side), ``control`` (the same wait, then one printed line) and ``control-md``
(the same wait, then the whole answer displayed at once: what the finished page costs the browser
without any streaming). ``--toc-output off`` runs with JupyterLab's table of contents not reading
output headings, to show what the cell's end costs without it. Writes bench/RESULTS-browser.md and bench/.work/browser.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "browser"))
import labdriver as lb  # noqa: E402
import streamprobe as sp  # noqa: E402

DELAY = 0.001  # seconds slept per piece: with the server's own overhead, about 400-500 a second


def run(
    variants: list[str],
    sizes: list[int],
    timeout_s: float,
    settings: dict[str, Any] | None = None,
    extra: str = "",
) -> list[dict[str, Any]]:
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="nbllm-browser-bench-"))
    root = work / "root"
    root.mkdir()
    port = lb.free_port()  # the demo server in its own process: it never shares the kernel's GIL
    demo = subprocess.Popen(
        [sys.executable, "-m", "nbllm._server.demo", "--port", str(port)], stdout=subprocess.PIPE, text=True
    )
    assert demo.stdout is not None
    demo.stdout.readline()
    for v in variants:
        for n in sizes:
            sp.stream_notebook(
                root / f"{v}-{n}.ipynb", v, n, DELAY, url=f"http://127.0.0.1:{port}/v1", extra=extra
            )
    lab = lb.JupyterLab(
        root, work / "state", settings=settings, env={"NBLLM_CONFIG_DIR": str(work / "config")}
    )
    results: list[dict[str, Any]] = []
    try:
        lab.start(timeout=180)
        print(f"lab up in {lab.startup_s:.1f}s", flush=True)
        with sync_playwright() as p:
            ctx = lb.launch_chromium(p, user_data_dir=str(work / "profile"))
            try:
                for n in sizes:
                    for v in variants:
                        page = ctx.new_page()
                        page.set_default_timeout(180_000)
                        t0 = time.monotonic()
                        try:
                            r = sp.measure(
                                page, lb, lab.url, lab.token, f"{v}-{n}.ipynb", v, n, timeout_s=timeout_s
                            )
                            row = r.as_dict()
                        except Exception as exc:  # one failed run is reported, the rest go on
                            row = {"variant": v, "tokens": n, "error": f"{type(exc).__name__}: {exc}"[:300]}
                        finally:
                            page.close()
                            for k in lab.api("kernels"):
                                lb.urllib.request.urlopen(  # shut the run's kernel down: the next starts clean
                                    lb.urllib.request.Request(
                                        f"{lab.url}/api/kernels/{k['id']}?token={lab.token}", method="DELETE"
                                    ),
                                    timeout=30,
                                ).close()
                        row["bench_s"] = round(time.monotonic() - t0, 1)
                        row.pop("raw", None)
                        print(json.dumps(row), flush=True)
                        results.append(row)
            finally:
                ctx.close()
    finally:
        lab.stop()
        demo.terminate()
        demo.wait(30)
        shutil.rmtree(work, ignore_errors=True)
    return results


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if b else "—"


def report(results: list[dict[str, Any]], path: Path) -> None:
    ok = [r for r in results if "error" not in r]
    by = {(r["variant"], r["tokens"]): r for r in ok}
    lines = [
        "# Streaming a %%llm answer in a real browser",
        "",
        "JupyterLab 4 in headless Debian Chromium on this shared 2-core VM, one run per cell of the",
        "table (no repeats: see bench/bench_browser_stream.py). `task ms/1k`: Chrome's main-thread task",
        "time (DevTools TaskDuration, all tasks) per 1,000 tokens, from the click to the end of the cell;",
        "`>50 ms` and `worst`: animation-frame gaps over 50 ms and the longest, while the answer streams",
        "(first output -> footer shown) and after it (`end`: the cell finishing, e.g. JupyterLab's table",
        "of contents re-reading the outputs' headings); `drops`: times the output got shorter; `lag`:",
        "first output to end shown, minus the kernel's own stream time (0.25 s resolution; about 0: the",
        "page kept up); `tok/s`: the rate the demo server really achieved; `KB recv`: bytes the page",
        "received on its websockets (both mime copies of each redraw); `answer KB`; `outputs`: output",
        "elements of the cell at the end.",
        "",
        "| variant | tokens | task ms/1k | >50 ms | worst ms | end >50 ms | end worst ms | drops | lag s "
        "| stream s | tok/s | KB recv | outputs |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['variant']} | {r['tokens']} | failed: {r['error']} |" + " |" * 10)
            continue
        lines.append(
            f"| {r['variant']} | {r['tokens']} | {r['task_ms_per_1k']:.0f} | {r['stream_long_frames']} | "
            f"{r['stream_worst_gap_ms']:.0f} | {r['end_long_frames']} | {r['end_worst_gap_ms']:.0f} | "
            f"{len(r['height_drops'])} | {r['lag_s']:.1f} | {r['stream_s']:.1f} | "
            f"{r['tokens'] / r['stream_s'] if r['stream_s'] else 0:.0f} | {r['ws_bytes'] / 1000:.0f} | "
            f"{r['outputs']} |"
        )
    lines += ["", "## Ratios", ""]
    sizes = sorted({r["tokens"] for r in ok})
    for n in sizes:
        b, w, nv = by.get(("blocks", n)), by.get(("whole", n)), by.get(("naive", n))
        if b and w:
            parts = [f"blocks / whole task time at {n}: {ratio(b['task_ms_per_1k'], w['task_ms_per_1k'])}"]
            if nv:
                parts.append(f"blocks / naive: {ratio(b['task_ms_per_1k'], nv['task_ms_per_1k'])}")
            lines.append("- " + "; ".join(parts))
    for v in ("blocks", "whole", "text", "side", "naive", "control-md"):
        lo, hi = by.get((v, min(sizes))) if sizes else None, by.get((v, max(sizes))) if sizes else None
        if lo and hi and lo is not hi:
            lines.append(
                f"- {v}: per-token cost at {max(sizes)} / at {min(sizes)}: "
                f"{ratio(hi['task_ms_per_1k'], lo['task_ms_per_1k'])}"
            )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", default="blocks,whole,text,side,naive,control,control-md")
    ap.add_argument(
        "--max-outputs",
        type=int,
        default=45,
        help="%%config LLMMagics.max_outputs (0: no cap, every block its own output, JupyterLab's cap lifted too)",
    )
    ap.add_argument(
        "--toc-output",
        choices=("on", "off"),
        default="on",
        help="JupyterLab's table of contents reads the outputs' headings (its default: on)",
    )
    ap.add_argument("--tokens", default="2000,8000,20000")
    ap.add_argument("--timeout", type=float, default=300, help="seconds per run before it is reported failed")
    ap.add_argument("--out", default=str(ROOT / "bench" / "RESULTS-browser.md"))
    args = ap.parse_args()
    settings: dict[str, Any] = {}
    if args.toc_output == "off":
        settings["@jupyterlab/toc-extension:registry"] = {"includeOutput": False}
    if args.max_outputs == 0:  # JupyterLab's own 0 hides every output in 4.6: a cap it never reaches
        settings["@jupyterlab/notebook-extension:tracker"] = {"maxNumberOutputs": 100_000}
    extra = f"%config LLMMagics.max_outputs = {args.max_outputs}\n"
    results = run(
        args.variants.split(","), [int(t) for t in args.tokens.split(",")], args.timeout, settings, extra
    )
    (ROOT / "bench" / ".work").mkdir(parents=True, exist_ok=True)
    (ROOT / "bench" / ".work" / "browser.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    report(results, Path(args.out))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
