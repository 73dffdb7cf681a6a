"""nbllm.loadtest against a known latency profile, and side by side with GuideLLM.

    .venv/bin/python bench/bench_loadtest.py            # about 4 minutes; writes bench/RESULTS-loadtest.md
    .venv/bin/python bench/bench_loadtest.py --quick    # a smoke run (fewer levels and rates)
    .venv/bin/python bench/bench_loadtest.py --plot     # only redraw docs/loadtest.png

The demo server runs in its own process (``python -m nbllm._server.demo --profile ...``), so it never
shares a GIL with a client. Its CPU is read from /proc for every level: a level where it was
busy >= 90% of one core is marked server-bound (then neither client's number counts).

Part 1, accuracy: nbllm's measured TTFT, ITL, E2E and request throughput against what the
profile makes them (TTFT = ttft, every gap = itl, E2E = ttft + (tokens - 1) * itl, throughput
= c / E2E), at 1 to 256 concurrent streams, plus a queueing run (``queue_at``).

Part 2, GuideLLM (PyPI ``guidellm``, in its own venv ``bench/.work/guidellm-venv``, built on the
first run with the local CPU torch wheel; tokenizer: the locally built tiny-llama one from
scripts/setup_realservers.sh, offline): the same server and profile, constant-rate arrivals,
a rate sweep. Metrics compared where the definitions agree; each client's highest sustained
rate (achieved/offered >= 0.95, achieved = (sends - 1) / send span) and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work"
GVENV = WORK / "guidellm-venv"
TOKENIZER = Path(os.environ.get("NBLLM_REALSERVERS_DIR", Path.home() / ".cache/nbllm-realservers")) / (
    "models/tiny-llama"
)
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _proc import machine_busy, proc_cpu  # noqa: E402

import nbllm  # noqa: E402

SUSTAINED = 0.95


class Server:
    def __init__(self, profile: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.log = open(WORK / "loadtest-demo.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nbllm._server.demo", "--port", "0", "--profile", profile],
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            env=env,
            cwd=str(WORK),
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("nbllm demo server on "):
            raise RuntimeError(f"demo server did not start: {line!r}")
        self.url = line.split()[-1]
        self.profile = profile

    def cpu(self) -> float:
        return proc_cpu(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


def pct(measured: float | None, expected: float) -> str:
    if measured is None:
        return "n/a"
    return f"{(measured - expected) / expected * 100:+.1f}%"


def ms(v: float | None) -> str:
    return "n/a" if v is None else f"{v * 1000:.1f}"


# ---- part 1: accuracy ----------------------------------------------------------------------------


def accuracy(quick: bool) -> tuple[list[str], Any]:
    ttft, itl, tokens = 0.2, 0.05, 12
    e2e = ttft + (tokens - 1) * itl
    profile = f"ttft={ttft},itl={itl},tokens={tokens}"
    srv = Server(profile)
    levels = [1, 16, 256] if quick else [1, 4, 16, 64, 256]
    out = [
        f"Profile `{profile}` (server in its own process). Expected: TTFT {ms(ttft)} ms, every ITL gap "
        f"{ms(itl)} ms, TPOT {ms(itl)} ms, E2E {ms(e2e)} ms, throughput c / {e2e:g} s. Per level: "
        "max(16, 5c) requests, closed loop, the workers started over one E2E (`rampup`), the sends of "
        "the ramp-up (which also open the connections) and of the last E2E (when workers run out of "
        "requests) left out (`warmup`, `cooldown`); throughput = requests ended inside that window / "
        "its length.",
        "",
        "| c | requests | TTFT p50 ms (err) | ITL p50 ms (err) | TPOT p50 ms (err) | E2E p50 ms (err) "
        "| req/s (err) | first byte p50 ms | client CPU (util) | server CPU util | machine busy | client loop lag p99 ms | client-bound |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    ep = nbllm.Endpoint(name="bench", url=srv.url)
    last = None
    try:
        for c in levels:
            cpu0, busy0, t0 = srv.cpu(), machine_busy(), time.perf_counter()
            rampup = e2e if c > 1 else 0.0
            res = nbllm.loadtest(
                ep,
                concurrency=c,
                requests=max(16, 5 * c),
                rampup=rampup,
                warmup=rampup + 0.05,
                cooldown=e2e,
                progress=False,
            )
            wall = time.perf_counter() - t0
            server_util = (srv.cpu() - cpu0) / wall
            busy = (machine_busy() - busy0) / wall / (os.cpu_count() or 1)
            ttfb = res.requests[res.requests["measured"]]["ttfb_s"].median()
            s = res.summary.iloc[0]
            thr = c / e2e
            out.append(
                f"| {c} | {s['requests']} | {ms(s['ttft_p50_s'])} ({pct(s['ttft_p50_s'], ttft)}) "
                f"| {ms(s['itl_p50_s'])} ({pct(s['itl_p50_s'], itl)}) "
                f"| {ms(s['tpot_p50_s'])} ({pct(s['tpot_p50_s'], itl)}) "
                f"| {ms(s['e2e_p50_s'])} ({pct(s['e2e_p50_s'], e2e)}) "
                f"| {s['request_throughput']:.1f} ({pct(s['request_throughput'], thr)}) | {ms(ttfb)} "
                f"| {s['client_cpu_s']:.2f} s ({s['client_cpu_util']:.0%}) | {server_util:.0%} | {busy:.0%} | {ms(s['loop_lag_p99_s'])} "
                f"| {'yes' if s['client_bound'] else 'no'} |"
            )
            print(out[-1], flush=True)
            last = res
        # queueing: 32 slots, so at c=64 half the requests wait one whole answer first
        q = "[[profile:ttft=0.1,itl=0.02,tokens=16,queue_at=32]]"
        res = nbllm.loadtest(ep, concurrency=[16, 32, 64], requests=128, prompt=q, warmup=0.3, progress=False)
        out += [
            "",
            f"Queueing (`{q}`: 32 requests served at once, the rest wait for a slot): TTFT grows once "
            "c > 32, ITL does not.",
            "",
            "| level | TTFT p50 ms | TTFT p90 ms | ITL p50 ms | req/s |",
            "|---|---|---|---|---|",
        ]
        for _, s in res.summary.iterrows():
            out.append(
                f"| {s['level']} | {ms(s['ttft_p50_s'])} | {ms(s['ttft_p90_s'])} | {ms(s['itl_p50_s'])} "
                f"| {s['request_throughput']:.1f} |"
            )
    finally:
        srv.stop()
    return out, last


# ---- part 2: nbllm vs GuideLLM -----------------------------------------------------------------


def guidellm_available() -> str:
    exe = GVENV / "bin" / "guidellm"
    if exe.exists():
        return ""
    py = sys.executable
    log = WORK / "guidellm-install.log"
    with open(log, "w") as f:
        steps = [
            [py, "-m", "venv", str(GVENV)],
            [str(GVENV / "bin/pip"), "install", "torch==2.13.0"],  # the local CPU wheel, not CUDA
            [str(GVENV / "bin/pip"), "install", "guidellm==0.8.1"],
        ]
        for step in steps:
            if subprocess.call(step, stdout=f, stderr=subprocess.STDOUT) != 0:
                return f"`{' '.join(step[-2:])}` failed (see {log})"
    return ""


def run_guidellm(
    url: str, rates: list[float], seconds: float, out: Path
) -> tuple[dict[float, dict[str, Any]], str]:
    target = url.removesuffix("/v1")
    cmd = [
        str(GVENV / "bin/guidellm"),
        "run",
        "--backend",
        f"kind=openai_http,target={target},model=demo,validate_backend=false",
        "--profile",
        f"kind=constant,rate={rates[0]:g}",
        "--override",
        "profile.rate",
        ",".join(f"{r:g}" for r in rates),
        "--constraint",
        f"kind=max_duration,seconds={seconds:g}",
        "--data",
        "kind=synthetic_text,prompt_tokens=16,output_tokens=8",
        "--tokenizer",
        f"kind=hf_auto,model={TOKENIZER}",
        "--output",
        f"kind=json,path={out}",
        "--disable-progress",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    for k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        env.pop(k, None)
    t0 = time.perf_counter()
    with open(WORK / "guidellm-run.log", "w") as log:
        rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(WORK))
    if rc != 0 or not out.exists():
        return {}, f"guidellm exited {rc} (see bench/.work/guidellm-run.log)"
    data = json.loads(out.read_text())
    by_rate: dict[float, dict[str, Any]] = {}
    for b in data["benchmarks"]:
        rate = float(b["config"]["strategy"]["rate"])
        reqs = (
            b["requests"]["successful"]
            + b["requests"].get("errored", [])
            + b["requests"].get("incomplete", [])
        )
        starts = sorted(r["request_start_time"] for r in reqs if r.get("request_start_time"))
        ok = b["requests"]["successful"]
        achieved = (len(starts) - 1) / (starts[-1] - starts[0]) if len(starts) > 1 else None
        lags = [r["info"]["timings"]["request_start"] - r["info"]["timings"]["targeted_start"] for r in ok]
        m = b["metrics"]
        by_rate[rate] = {
            "achieved": achieved,
            "ok": len(ok),
            "errors": len(b["requests"].get("errored", [])),
            "ttft_p50_s": m["time_to_first_token_ms"]["successful"]["median"] / 1000,
            "itl_p50_s": m["inter_token_latency_ms"]["successful"]["median"] / 1000,
            "tpot_p50_s": m["time_per_output_token_ms"]["successful"]["median"] / 1000,
            "e2e_p50_s": m["request_latency"]["successful"]["median"],
            "lag_p50_s": sorted(lags)[len(lags) // 2] if lags else None,
            "workers": b["config"]["strategy"].get("worker_count"),
        }
    print(f"guidellm: {time.perf_counter() - t0:.0f} s", flush=True)
    return by_rate, ""


def run_nbllm(url: str, rates: list[float], seconds: float) -> dict[float, dict[str, Any]]:
    ep = nbllm.Endpoint(name="bench", url=url)
    out: dict[float, dict[str, Any]] = {}
    for rate in rates:
        res = nbllm.loadtest(ep, rate=rate, duration=seconds, max_tokens=8, progress=False)
        s = res.summary.iloc[0]
        rows = res.requests[res.requests["status"] == "ok"]
        # GuideLLM's definitions computed from nbllm's rows (docs/loadtest.md)
        g_itl = ((rows["e2e_s"] - rows["ttft_s"]) / (rows["output_tokens"] - 1)).median()
        g_tpot = (rows["e2e_s"] / rows["output_tokens"]).median()
        out[rate] = {
            "achieved": s["achieved_rps"],
            "ok": int(s["ok"]),
            "errors": int(s["errors"]),
            "ttft_p50_s": s["ttft_p50_s"],
            "itl_p50_s": s["itl_p50_s"],
            "g_itl_p50_s": g_itl,
            "g_tpot_p50_s": g_tpot,
            "tpot_p50_s": s["tpot_p50_s"],
            "e2e_p50_s": s["e2e_p50_s"],
            "lag_p50_s": res.requests["send_lag_s"].median(),
            "cpu_util": s["client_cpu_util"],
            "client_bound": bool(s["client_bound"]),
        }
        print(f"nbllm rate {rate:g}: achieved {s['achieved_rps']:.1f}", flush=True)
    return out


def max_sustained(results: dict[float, dict[str, Any]], *, strict: bool = False) -> float | None:
    """The highest rate with achieved/offered >= 0.95; ``strict``: the highest before the first
    rate that missed (on a shared machine one noisy level can miss between two that held)."""
    best = None
    for rate in sorted(results):
        a = results[rate]["achieved"]
        if a is not None and a / rate >= SUSTAINED:
            best = rate
        elif strict:
            break
    return best


def compare(quick: bool) -> list[str]:
    profile = "ttft=0.05,itl=0.02,tokens=8"
    rates = [20.0, 80.0, 320.0] if quick else [20.0, 50.0, 100.0, 200.0, 300.0, 400.0, 600.0, 800.0]
    seconds = 3.0 if quick else 5.0
    out = [
        f"Profile `{profile}`; constant-rate arrivals, {seconds:g} s per rate, 16-token prompts, 8 output "
        "tokens. Achieved rate = (sends - 1) / send span, from each tool's per-request send times "
        "(GuideLLM's `request_start_time`). Sustained: achieved/offered >= 0.95.",
        "",
    ]
    why = guidellm_available()
    if not why and not (TOKENIZER / "tokenizer.json").exists():
        why = f"the local tokenizer {TOKENIZER} is missing: run scripts/setup_realservers.sh first"
    srv = Server(profile)
    try:
        busy0, sc0, t0 = machine_busy(), srv.cpu(), time.perf_counter()
        nb = run_nbllm(srv.url, rates, seconds)
        nb_server = (srv.cpu() - sc0) / (time.perf_counter() - t0)
        g: dict[float, dict[str, Any]] = {}
        g_server = None
        if not why:
            sc0, t1 = srv.cpu(), time.perf_counter()
            g, why = run_guidellm(srv.url, rates, seconds, WORK / "guidellm-results.json")
            g_server = (srv.cpu() - sc0) / (time.perf_counter() - t1)
        busy = (machine_busy() - busy0) / (time.perf_counter() - t0)
    finally:
        srv.stop()
    out += [
        "| offered req/s | nbllm achieved | ratio | nbllm send lag p50 ms | nbllm CPU util | GuideLLM achieved "
        "| ratio | GuideLLM send lag p50 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for rate in rates:
        n = nb[rate]
        gr = g.get(rate)
        out.append(
            f"| {rate:g} | {n['achieved']:.1f} | {n['achieved'] / rate:.2f} | {ms(n['lag_p50_s'])} "
            f"| {n['cpu_util']:.0%} | "
            + (
                f"{gr['achieved']:.1f} | {gr['achieved'] / rate:.2f} | {ms(gr['lag_p50_s'])} |"
                if gr and gr["achieved"]
                else "n/a | n/a | n/a |"
            )
        )
    nb_max, g_max = max_sustained(nb), max_sustained(g) if g else None
    out += [
        "",
        f"Highest sustained rate from this 2-core machine: **nbllm {nb_max:g} req/s**"
        if nb_max
        else "nbllm sustained none of the rates",
    ]
    if g:
        out[-1] += f", **GuideLLM {g_max:g} req/s**" if g_max else ", GuideLLM none of the rates"
        if nb_max and g_max:
            out[-1] += f": ratio nbllm/GuideLLM = **{nb_max / g_max:.1f}x**"
        nb_s, g_s = max_sustained(nb, strict=True), max_sustained(g, strict=True)
        if nb_s and g_s:
            out[-1] += (
                f"; counting only up to each client's first missed rate: nbllm {nb_s:g}, GuideLLM {g_s:g}, "
                f"**{nb_s / g_s:.1f}x**"
            )
        out[-1] += (
            " (to within the sweep's step; GuideLLM ran "
            f"{next(iter(g.values()))['workers']} worker processes, nbllm one event loop)."
        )
    else:
        out[-1] += f". GuideLLM did not run: {why}."
    out.append(
        f"Demo server CPU during the sweeps: nbllm's {nb_server:.0%}"
        + (f", GuideLLM's {g_server:.0%}" if g_server is not None else "")
        + f" of one core; the whole machine had {busy:.1f} of its {os.cpu_count()} cores busy on average"
        " (other users' work included)."
    )
    if g:
        low = rates[0]
        n, gr = nb[low], g[low]
        out += [
            "",
            f"Metrics at {low:g} req/s (neither client bound), medians in ms; rows where the definitions agree:",
            "",
            "| metric | definition | nbllm | GuideLLM | expected from the profile |",
            "|---|---|---|---|---|",
            f"| TTFT | send -> first content token | {ms(n['ttft_p50_s'])} | {ms(gr['ttft_p50_s'])} | 50.0 |",
            f"| E2E | send -> last byte | {ms(n['e2e_p50_s'])} | {ms(gr['e2e_p50_s'])} | 190.0 |",
            f"| GuideLLM ITL = nbllm TPOT | (E2E - TTFT) / (tokens - 1) | {ms(n['g_itl_p50_s'])} "
            f"| {ms(gr['itl_p50_s'])} | 20.0 |",
            f"| GuideLLM TPOT | E2E / tokens (first token included) | {ms(n['g_tpot_p50_s'])} "
            f"| {ms(gr['tpot_p50_s'])} | 23.8 |",
            f"| nbllm ITL (vLLM's) | each gap between content chunks | {ms(n['itl_p50_s'])} | (not reported) | 20.0 |",
        ]
    return out


def plot() -> None:
    """docs/loadtest.png: latency vs load and throughput vs latency, 1 to 128 streams, 32 slots."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nbllm._loadtest.run import LoadResult

    srv = Server("ttft=0.1,itl=0.02,tokens=16,queue_at=32")
    try:
        ep = nbllm.Endpoint(name="vllm-like", url=srv.url)
        parts = [
            nbllm.loadtest(ep, concurrency=c, requests=max(12, 4 * c), warmup=0.05, progress=False)
            for c in (1, 4, 16, 32, 64, 128)
        ]
    finally:
        srv.stop()
    rows = [r for p in parts for r in p.requests.to_dict("records")]
    res = LoadResult(rows, [s for p in parts for s in p.summary.to_dict("records")], "")
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    res.plot("latency", ax=a)
    res.plot("pareto", ax=b)
    fig.suptitle(
        "nbllm.loadtest on the demo server (ttft=0.1 s, itl=0.02 s, 16 tokens, 32 slots)", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(ROOT / "docs" / "loadtest.png", dpi=90)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", choices=["accuracy", "compare"])
    ap.add_argument("--plot", action="store_true", help="only redraw docs/loadtest.png")
    ap.add_argument(
        "--nice",
        type=int,
        default=0,
        help="run this process and its children (server, GuideLLM) at this niceness, e.g. -10 as root "
        "on a machine shared with other jobs, so their CPU bursts delay the measured processes less",
    )
    args = ap.parse_args()
    if args.nice:
        os.nice(args.nice)
    WORK.mkdir(parents=True, exist_ok=True)
    if args.plot:
        plot()
        return
    load0 = os.getloadavg()
    sections = [
        "# nbllm.loadtest: accuracy and nbllm vs GuideLLM",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, `python bench/bench_loadtest.py"
        f"{' --quick' if args.quick else ''}{f' --nice {args.nice}' if args.nice else ''}`; {os.cpu_count()} cores shared with other users; load average "
        f"at the start {load0[0]:.2f} (1 min), {load0[1]:.2f} (5 min)"
        + (f"; the bench, the demo server and GuideLLM ran at nice {args.nice}" if args.nice else "")
        + ".",
        "",
    ]
    plot_res = None
    if args.only != "compare":
        acc, plot_res = accuracy(args.quick)
        sections += ["## 1. Measured against the configured profile", "", *acc, ""]
    if args.only != "accuracy":
        sections += ["## 2. nbllm vs GuideLLM, same server and profile", "", *compare(args.quick), ""]
    load1 = os.getloadavg()
    sections.append(f"Load average at the end: {load1[0]:.2f} (1 min), {load1[1]:.2f} (5 min).")
    sections += [
        "",
        "## Reading these numbers",
        "",
        "- *first byte*: the demo server sends the response headers the moment it has read the request, "
        "so a first byte that is late (more than a few ms) means a process did not get the CPU when it "
        "needed it: the client sending or reading, or the server reading. *client loop lag p99*: how "
        "late a 10 ms timer on the client's event loop fired (nbllm's `loop_lag_p99_s`); above 50 ms the "
        "level is flagged client-bound. *machine busy*: the share of both cores busy with any process.",
        "- When those say the machine was saturated (other jobs on this shared VM; `/proc/pressure/cpu` "
        "read `some avg60` near 90% while these ran), TTFT and E2E grow and the numbers describe the "
        "machine, not the profile; the client says so (`client_bound`) instead of reporting a slow server.",
    ]
    (ROOT / "bench" / "RESULTS-loadtest.md").write_text("\n".join(sections) + "\n")
    print("\n".join(sections))
    _ = plot_res


if __name__ == "__main__":
    main()
