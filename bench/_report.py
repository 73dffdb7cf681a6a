"""bench/run.py's results -> the markdown of bench/RESULTS.md (pure: no measuring here)."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from typing import Any

FLOOR = {"main": "floor", "peers": "peers-floor", "clean": "clean-floor"}  # the raw-httpx floor of each venv


def med(xs: Iterable[float]) -> float | None:
    xs = list(xs)
    return statistics.median(xs) if xs else None


def pct(xs: Sequence[float], q: float) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def f(x: float | None, fmt: str = "{:.2f}") -> str:
    return "–" if x is None else fmt.format(x)


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


# ------------------------------------------------------------------ derived numbers


def stream_stats(R: dict[str, Any], n: int) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for key, e in R.get("stream", {}).items():
        runs = e["runs"]
        out[key] = {
            "cpu_us": med(r["cpu"] / n * 1e6 for r in runs),
            "best_us": min((r["cpu"] / n * 1e6 for r in runs), default=None),
            "wall_us": med(r["wall"] / n * 1e6 for r in runs),
            "util": med(r["cpu"] / r["wall"] for r in runs if r["wall"]),
            "server_us": med(r["server_cpu"] / n * 1e6 for r in runs),
            "runs": len(runs),
            "error": e["error"],
            "label": e["label"],
            "venv": e["venv"],
        }
    for key, s in out.items():
        fkey = FLOOR[s["venv"]]
        s["ratio"] = paired(
            R["stream"].get(fkey, {}).get("runs", []), R["stream"][key]["runs"], "cpu", ("round",)
        )
        if s["ratio"] is None:
            s["ratio"] = ratio(out.get(fkey, {}).get("cpu_us"), s["cpu_us"])
        s["best_ratio"] = ratio(out.get(fkey, {}).get("best_us"), s["best_us"])
    return out


def paired(
    base: list[dict[str, Any]], runs: list[dict[str, Any]], field: str, keys: tuple[str, ...]
) -> float | None:
    """Median over the rounds (or slices) both ran in of base[field] / run[field]: each pair was
    measured seconds apart, so a burst of outside load affects both of its terms."""
    by = {tuple(r.get(k) for k in keys): r[field] for r in base if all(k in r for k in keys)}
    pairs = [by[t] / r[field] for r in runs if (t := tuple(r.get(k) for k in keys)) in by and r[field]]
    return med(pairs)


def ttft_stats(R: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for key, e in R.get("ttft", {}).items():
        n = len(e["ttft"])
        out[key] = {
            "ms": None if not n else med(e["ttft"]) * 1e3,  # type: ignore[operator]
            "p90": None if not n else pct(e["ttft"], 0.9) * 1e3,  # type: ignore[operator]
            "cpu_ms": None if not n else med(e["cpu"]) * 1e3,  # type: ignore[operator]
            "server_ms": e["server_cpu"] / n * 1e3 if n else None,
            "calls": n,
            "error": e["error"],
            "label": e["label"],
            "venv": e["venv"],
        }
    return out


def conc_stats(R: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for level, per in R.get("conc", {}).items():
        out[level] = {}
        for key, e in per.items():
            runs = e["runs"]
            calls = runs[0]["ok"] if runs else 0
            out[level][key] = {
                "rps": med(r["ok"] / r["wall"] for r in runs),
                "cpu_us": med(r["cpu"] / r["ok"] * 1e6 for r in runs),
                "server_us": med(r["server_cpu"] / r["ok"] * 1e6 for r in runs),
                "server_load": med(r["server_cpu"] / r["wall"] for r in runs),
                "runs": len(runs),
                "calls": calls,
                "error": e["error"],
                "label": e["label"],
                "venv": e["venv"],
            }
        for key, s in out[level].items():
            fkey = FLOOR[s["venv"]]
            floor, base = out[level].get(fkey, {}), per.get(fkey, {}).get("runs", [])
            mine = [{**r, "spr": r["wall"] / r["ok"], "cpr": r["cpu"] / r["ok"]} for r in per[key]["runs"]]
            base = [{**r, "spr": r["wall"] / r["ok"], "cpr": r["cpu"] / r["ok"]} for r in base]
            s["ratio"] = paired(base, mine, "spr", ("round", "slice"))  # seconds/req: floor / mine
            s["cpu_ratio"] = paired(base, mine, "cpr", ("round", "slice"))
            if s["ratio"] is None:
                s["ratio"] = ratio(s["rps"], floor.get("rps"))
                s["cpu_ratio"] = ratio(floor.get("cpu_us"), s["cpu_us"])
    return out


def import_stats(R: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    empty = {v: med(xs) for v, xs in R.get("empty", {}).items()}
    for key, e in R.get("imports", {}).items():
        runs = e["runs"]
        out[key] = {
            "ms": None if not runs else med(r["wall"] for r in runs) * 1e3,  # type: ignore[operator]
            "cpu_ms": None if not runs else med(r["cpu"] for r in runs) * 1e3,  # type: ignore[operator]
            "proc_ms": None
            if not runs or empty.get(e["venv"]) is None
            else (med(r["proc_wall"] for r in runs) - empty[e["venv"]]) * 1e3,  # type: ignore[operator]
            "runs": len(runs),
            "error": e["error"],
            "label": e["label"],
            "venv": e["venv"],
            "kind": e["kind"],
            "magics": e.get("magics"),
        }
    return out


# ------------------------------------------------------------------ targets


def targets(R: dict[str, Any], n: int, levels: Sequence[int]) -> list[tuple[str, str, bool | None, str]]:
    """(target, measured, met, key for the explanation)."""
    st, tt, cc = stream_stats(R, n), ttft_stats(R), conc_stats(R)
    rows: list[tuple[str, str, bool | None, str]] = []

    def cmp(x: float | None, limit: float, above: bool = True) -> bool | None:
        return None if x is None else (x >= limit if above else x < limit)

    r = st.get("nbllm-async", {}).get("ratio")
    rows.append(("streaming, default paths ≥ 0.9× the floor", f"{f(r)}×", cmp(r, 0.9), "stream-default"))
    sync_ratio = paired(
        R.get("stream", {}).get("httpx-sync", {}).get("runs", []),
        R.get("stream", {}).get("nbllm-sync", {}).get("runs", []),
        "cpu",
        ("round",),
    ) or ratio(st.get("httpx-sync", {}).get("cpu_us"), st.get("nbllm-sync", {}).get("cpu_us"))
    rows.append(
        (
            "  (sync twin: nbllm `stream` vs raw httpx sync)",
            f"{f(sync_ratio)}×",
            cmp(sync_ratio, 0.9),
            "stream-sync",
        )
    )
    nb = st.get("nbllm-async", {}).get("cpu_us")
    for peer, name in (
        ("openai-async", "openai SDK (async)"),
        ("openai-sync", "openai SDK (sync)"),
        ("litellm-async", "litellm (async)"),
        ("litellm-sync", "litellm (sync)"),
    ):
        p = st.get(peer, {}).get("cpu_us")
        rows.append(
            (
                f"streaming faster than {name}",
                f"{f(ratio(p, nb), '{:.1f}')}× faster" if p and nb else "not measured",
                None if p is None or nb is None else nb < p,
                "stream-peers",
            )
        )
    for key, what in (
        ("nbllm-simple", "`$.choices[0].delta['content']`"),
        ("nbllm-simple2", "`$['choices'][-1]['delta']['content']`"),
    ):
        r = st.get(key, {}).get("ratio")
        rows.append((f"custom simple path {what} ≥ 0.8× the floor", f"{f(r)}×", cmp(r, 0.8), "stream-simple"))
    for a, b, what in (("nbllm-async", "floor", "async"), ("nbllm-sync", "httpx-sync", "sync")):
        x, y = tt.get(a, {}).get("ms"), tt.get(b, {}).get("ms")
        d = None if x is None or y is None else x - y
        rows.append(
            (
                f"TTFT overhead over raw httpx ({what}) < 1 ms",
                f"{f(d, '{:+.3f}')} ms",
                cmp(d, 1.0, False),
                "ttft",
            )
        )
    for level in levels:
        r = cc.get(str(level), {}).get("nbllm-async", {}).get("ratio")
        rows.append(
            (f"concurrency {level}: ≥ 0.9× raw httpx req/s", f"{f(r)}×", cmp(r, 0.9), f"conc-{level}")
        )
    return rows


# ------------------------------------------------------------------ rendering


def render(R: dict[str, Any], n: int, levels: Sequence[int]) -> str:
    from _analysis import explain  # the "why" texts, kept apart from the tables

    m = R["machine"]
    st, tt, cc, im = stream_stats(R, n), ttft_stats(R), conc_stats(R), import_stats(R)
    L: list[str] = []
    w = L.append
    w("# nbllm benchmark results\n")
    w(
        f"Generated by `{R.get('command', '.venv/bin/python bench/run.py')}` "
        f"on {m['date']} ({R['mode']} run, {R['elapsed'] / 60:.1f} min, commit {m['commit']}). "
        "Every number on this page comes from that one run. See `bench/README.md` for how each "
        "number is measured.\n"
    )
    if R["mode"] == "quick":
        w("> **Quick (smoke) run: few repeats. Use the full run for conclusions.**\n")
    if R.get("source"):
        paths = sorted(set(R.get("nbllm_paths", {}).values()))
        w(f"nbllm measured: {R['source']}; imported from {', '.join(f'`{p}`' for p in paths)}.\n")
    w("## Machine\n")
    w(f"- {m['cpu']}, {m['cores']} cores, {m['memory']}, Linux {m['kernel']}, Python {m['python']}")
    la, lb = m["load_before"], m.get("load_after", ("?",) * 3)
    w(f"- load average before / after: {la[0]:.2f} / {lb[0]:.2f} (1 min)")
    noise = R.get("noise", {})
    if noise:
        parts = [f"{k} {v['other_cores']:.2f}" for k, v in noise.items()]
        w(
            "- CPU used by *other* processes during each phase, in cores (0 = quiet machine; 2 = both "
            "cores busy with someone else's work): " + ", ".join(parts)
        )
    w(
        "- network: "
        + (
            "a private network namespace with loopback only (`unshare -n`)"
            if R.get("netns")
            else "the host's; every request went to 127.0.0.1"
        )
    )
    names = {"main": "project venv (`.venv`)", "peers": "peers venv", "clean": "clean venv (nbllm alone)"}
    for venv, vs in R["versions"].items():
        if vs:
            shown = ", ".join(f"{k} {v}" for k, v in vs.items() if v)
            absent = [k for k in ("sniffio",) if not vs.get(k)]
            w(f"- {names.get(venv, venv)}: {shown}" + (f"; **no {', '.join(absent)}**" if absent else ""))
    if R.get("peers_missing"):
        w(f"- could not install: {', '.join(R['peers_missing'])}")
    w("")

    # -------- targets
    w("## Targets\n")
    w("| target | measured | |")
    w("|---|---|---|")
    rows = targets(R, n, levels)
    for what, got, ok, _key in rows:
        w(f"| {what} | {got} | {'met' if ok else 'not measured' if ok is None else '**missed**'} |")
    w("")
    w(explain(R, rows, st, tt, cc, im, n, levels))

    # -------- server
    w("## 1. The demo server is not the bottleneck\n")
    rs, fl = st.get("rawsock", {}), st.get("floor", {})
    if rs.get("wall_us"):
        w(
            f"- A raw socket that reads the 20,000-chunk answer without parsing it gets it in "
            f"{rs['wall_us'] * n / 1e3:.1f} ms: **{1 / rs['wall_us']:.2f} M chunks/s**, "
            f"{f(ratio(fl.get('wall_us'), rs['wall_us']), '{:.0f}')}× the rate of the raw-httpx floor "
            f"({f(fl.get('wall_us'))} µs/chunk wall)."
        )
    srv = med(s["server_us"] for k, s in st.items() if s["server_us"] is not None and k != "rawsock")
    if srv is not None and fl.get("cpu_us"):
        w(
            f"- The server process spent a median **{srv:.2f} µs of CPU per chunk** across all streaming runs, "
            f"{f(ratio(fl['cpu_us'], srv), '{:.0f}')}× less than the fastest parsing client "
            f"(the floor: {fl['cpu_us']:.2f} µs/chunk). It runs in its own process, so on 2 cores it "
            "never takes CPU from the client being measured except for that share."
        )
    utils = [s["util"] for k, s in st.items() if s["util"] and k not in ("rawsock", "httpx-bytes")]
    if utils:
        w(
            f"- Clients' CPU time / wall time while streaming: median {med(utils):.2f} (min {min(utils):.2f}). "
            "A client waiting on a slow server would show far less than 1: they were computing, not waiting."
        )
    for level in levels:
        per = cc.get(str(level), {})
        loads = [s["server_load"] for s in per.values() if s["server_load"] is not None]
        sus = [s["server_us"] for s in per.values() if s["server_us"] is not None]
        if loads:
            w(
                f"- Concurrency {level}: the server used {med(sus):.0f} µs CPU per request "
                f"and at most {max(loads):.2f} of a core (median {med(loads):.2f}): never saturated."
            )
    w("")

    # -------- imports
    w("## 2. Import time\n")
    w(
        "Fresh interpreter per measurement; the time of exactly the `import` (or of "
        "`shell.run_line_magic('load_ext', ...)` in an IPython `InteractiveShell` that was already created), "
        f"median of {max((s['runs'] for s in im.values()), default=0)} interleaved runs after one warm-up. "
        "`process − empty` is the whole `python -c` process minus an empty one, for reference.\n"
    )
    w("| what | venv | wall ms | CPU ms | process − empty, ms | × nbllm |")
    w("|---|---|---:|---:|---:|---:|")
    base_imp = im.get("nbllm", {}).get("ms")
    base_ext = im.get("load_ext nbllm", {}).get("ms")
    for s in im.values():
        if s["error"]:
            w(f"| {s['label']} | {s['venv']} | failed: {s['error'][:120]} | | | |")
            continue
        base = base_ext if s["kind"] == "load_ext" else base_imp
        w(
            f"| {s['label']} | {s['venv']} | {f(s['ms'], '{:.0f}')} | {f(s['cpu_ms'], '{:.0f}')} | "
            f"{f(s['proc_ms'], '{:.0f}')} | {f(ratio(s['ms'], base), '{:.1f}')}× |"
        )
    w(
        "\n`× nbllm`: this time over `import nbllm` (for imports) or over `%load_ext nbllm` (for "
        "`%load_ext`), project venv. `import nbllm` does not import httpx; the first call does, "
        "hence the `+ httpx` row."
    )
    for key in ("load_ext nbllm", "load_ext jupyter_ai_magics"):
        if im.get(key, {}).get("magics"):
            w(f"- {im[key]['label']} registered: {', '.join(im[key]['magics'])}")
    w("")

    # -------- streaming
    w(f"## 3. Streaming one {n:,}-chunk answer\n")
    runs = max((s["runs"] for s in st.values()), default=0)
    w(
        f"CPU time of the client process (`time.process_time`, all threads) per chunk, median of {runs} runs "
        "after a warm-up (litellm: fewer, it takes seconds per run), clients interleaved round by round. "
        "Every run is checked: all 20,000 deltas and 80,000 characters decoded. `best`: the lowest run "
        "(outside load only ever adds); `vs floor, best` compares best runs. `vs floor`: the floor's CPU per chunk / this client's, same venv, "
        "taken per round (the fast clients of a round run back to back, seconds apart) and the median "
        "over rounds; > 1 is cheaper than the floor. Request body identical for all "
        "(`stream_options.include_usage` on, as nbllm sends it).\n"
    )
    w(
        "| client | venv | CPU µs/chunk | best | wall µs/chunk | CPU/wall | vs floor | vs floor, best | "
        "server CPU µs/chunk | runs |"
    )
    w("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for s in st.values():
        if s["error"]:
            w(f"| {s['label']} | {s['venv']} | failed: {s['error'][:150]} | | | | | | | |")
            continue
        w(
            f"| {s['label']} | {s['venv']} | {f(s['cpu_us'])} | {f(s['best_us'])} | {f(s['wall_us'])} | {f(s['util'])} | "
            f"{f(s['ratio'])}× | {f(s['best_ratio'])}× | {f(s['server_us'])} | {s['runs']} |"
        )
    w("")

    # -------- ttft
    w("## 4. Time to first token\n")
    calls = max((s["calls"] for s in tt.values()), default=0)
    w(
        f"Wall time from the call to the first non-empty content delta, {calls} sequential calls per client "
        "on a warm connection (zero-delay server, 3-piece answer), interleaved in blocks; `CPU/call` is the "
        "client's CPU for the whole call. Overhead = this client's median − raw httpx's median (same "
        "sync/async kind).\n"
    )
    w("| client | venv | median TTFT ms | p90 ms | CPU/call ms | overhead vs raw httpx ms | calls |")
    w("|---|---|---:|---:|---:|---:|---:|")
    for key, s in tt.items():
        if s["error"]:
            w(f"| {s['label']} | {s['venv']} | failed: {s['error'][:150]} | | | | |")
            continue
        ref = tt.get("httpx-sync" if key.endswith("-sync") else "floor", {}).get("ms")
        over = None if s["ms"] is None or ref is None else s["ms"] - ref
        w(
            f"| {s['label']} | {s['venv']} | {f(s['ms'], '{:.3f}')} | {f(s['p90'], '{:.3f}')} | "
            f"{f(s['cpu_ms'], '{:.3f}')} | {f(over, '{:+.3f}')} | {s['calls']} |"
        )
    w("")

    # -------- concurrency
    w("## 5. Concurrent non-streaming calls\n")
    any_level = next(iter(cc.values()), {})
    P = R.get("params", {})
    calls, slices, rounds = P.get("conc_calls", 0), P.get("conc_slices", 1), P.get("conc_rounds", 1)
    w(
        f'Non-streaming chat calls ("hello" → "You said: hello", every answer checked) through '
        f"`asyncio.gather` + `asyncio.Semaphore(c)`, one warm client per worker process. Each client makes "
        f"{calls:,} calls per round in {slices} slices of {calls // max(slices, 1):,}, interleaved with the other "
        f"clients' slices, {rounds} round(s) (litellm: {P.get('conc_rounds_slow', 1)}); req/s and CPU µs/req "
        "are medians over the slices. `vs httpx`: raw httpx's (default limits, same venv) wall time per "
        "request / this client's, paired slice by slice, median over slices (> 1: more req/s than raw "
        "httpx). Wall-clock req/s on this shared 2-core machine moves with other people's load; CPU per "
        "request is the steadier figure.\n"
    )
    head = (
        "| client | venv |"
        + "".join(f" c={lv} req/s | vs httpx | CPU µs/req |" for lv in levels)
        + " slices |"
    )
    w(head)
    w("|---|---|" + "---:|---:|---:|" * len(levels) + "---:|")
    for key, s0 in any_level.items():
        cells = []
        nruns = 0
        for lv in levels:
            s = cc.get(str(lv), {}).get(key, {})
            if s.get("error"):
                cells.append(f" failed: {s['error'][:60]} | | |")
                continue
            nruns = max(nruns, s.get("runs", 0))
            cells.append(
                f" {f(s.get('rps'), '{:.0f}')} | {f(s.get('ratio'))}× | {f(s.get('cpu_us'), '{:.0f}')} |"
            )
        w(f"| {s0['label']} | {s0['venv']} |" + "".join(cells) + f" {nruns} |")
    w("")

    # -------- others
    others = R.get("others", {})
    if others.get("skipped"):
        w("## 6. Magics and evaluation benchmarks\n")
        w(
            "Not run: `--quick` skips `bench_magics.py` and `bench_eval.py` (a full run includes their output).\n"
        )
    elif others:
        w("## 6. Magics and evaluation benchmarks (bench_magics.py, bench_eval.py)\n")
        for name, o in others.items():
            if o["rc"] is None and o["output"] == "not present in this tree":
                w(f"- `{name}`: not present in this tree yet.")
                continue
            w(f"### {name} (exit {o['rc']})\n")
            w("```")
            w(o["output"][-6000:])
            w("```")
        w("")
    return "\n".join(L) + "\n"
