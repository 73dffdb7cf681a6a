"""Load-test metrics (pure, no I/O): one ``Record`` per request -> a row; rows -> a level summary.

Every time is ``time.perf_counter()`` seconds; per-request times are relative to that request's
send (``start``). The definitions (docs/loadtest.md maps them to vllm bench serve, GuideLLM and
AIPerf, which disagree with each other):

- ``ttft_s``   send -> first *non-empty content* delta (a role-only or empty chunk does not count).
- ``ttfb_s``   send -> response headers (first byte); ``ttfr_s`` send -> first reasoning delta.
- ``e2e_s``    send -> end of the stream (the last byte).
- ITL gaps     the times between consecutive content-bearing network chunks after the first one
               (vLLM's ``itl``: one gap per chunk, not per token). Per request: ``itl_mean_s``,
               ``itl_p50_s``, ``itl_p99_s``; per level the gaps of all measured requests are pooled.
- ``tpot_s``   (e2e - ttft) / (output_tokens - 1): vLLM's TPOT, AIPerf's "ITL"; None for 1 token.
- ``output_tokens`` / ``prompt_tokens`` with ``tokens_source``: ``server`` (usage reported, the
  stream asked for it), ``tokenizer`` (the endpoint's tokenizer), ``estimate`` (~4 chars/token).

Per load level (``summarize``), over the *measured* requests (warm-up and cool-down excluded):
``duration_s`` first measured send -> last measured end (vLLM's duration), or, when warm-up or
cool-down windows were given, the window itself (sends after warm-up to the last send before
cool-down); ``request_throughput`` = successful requests / duration, counting in the windowed
case the requests that *ended* inside the window, measured or not (steady-state rate: a drain
tail does not dilute it); ``output_tok_s`` = their output tokens / duration; ``p50/p90/p99`` of TTFT,
ITL (pooled gaps), TPOT and E2E (linear interpolation, as ``numpy.percentile``); ``error_rate``;
``goodput_rps`` = successful requests meeting *every* SLO / duration; for a rate level
``offered_rps`` and ``achieved_rps`` = measured sends / (send span) with
``achieved_ratio`` = achieved / offered and the scheduler's lateness (``send_lag_p99_s``);
``client_cpu_s`` and ``client_cpu_util`` (CPU of the client's event-loop thread / wall time; one
Python event loop cannot use more than one core); ``loop_lag_p99_s``: how late a 10 ms timer on
the client's loop fired (p99): a loop that is busy, or starved of CPU by other processes, reads
every chunk late; and ``client_bound``: true when the thread was busy >= ``CLIENT_BOUND_UTIL`` of
the time, or sends or the loop ran late (p99 > ``LAG_BOUND_S``), so a client-limited number is
flagged instead of being reported as the server's.

SLO keys (all optional, in seconds): ``ttft_s`` (request TTFT), ``itl_s`` (the request's p99 gap),
``tpot_s``, ``e2e_s``. A request meets them when it succeeded and each bound holds.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CLIENT_BOUND_UTIL",
    "LAG_BOUND_S",
    "SLO_KEYS",
    "Record",
    "meets_slo",
    "percentile",
    "row",
    "summarize",
]

CLIENT_BOUND_UTIL = 0.85
LAG_BOUND_S = 0.05
SLO_KEYS = ("ttft_s", "itl_s", "tpot_s", "e2e_s")


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100) with linear interpolation (numpy's default); None if empty."""
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * q / 100.0
    lo = math.floor(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


@dataclass
class Record:
    """What the driver saw of one request (absolute perf_counter times; None: did not happen)."""

    level: str
    index: int
    start: float  # when the request was sent
    scheduled: float | None = None  # when an open-loop arrival wanted it sent
    first_byte: float | None = None
    first_text: float | None = None
    first_reasoning: float | None = None
    end: float | None = None
    chunk_times: list[float] = field(default_factory=list)  # one per content-bearing chunk
    output_tokens: int | None = None
    prompt_tokens: int | None = None
    tokens_source: str = "estimate"
    status: str = "ok"  # "ok" | "error" | "interrupted"
    error: str = ""
    retries: int = 0
    measured: bool = True  # False: in a warm-up or cool-down window

    def gaps(self) -> list[float]:
        t = self.chunk_times
        return [b - a for a, b in itertools.pairwise(t)]


def _since(t: float | None, start: float) -> float | None:
    return None if t is None else t - start


def row(rec: Record, t0: float) -> dict[str, Any]:
    """One frame row: times relative to the request's send (``start_s`` relative to ``t0``)."""
    gaps = rec.gaps()
    ttft = _since(rec.first_text, rec.start)
    e2e = _since(rec.end, rec.start)
    tpot = None
    if ttft is not None and e2e is not None and rec.output_tokens and rec.output_tokens > 1:
        tpot = (e2e - ttft) / (rec.output_tokens - 1)
    return {
        "level": rec.level,
        "request": rec.index,
        "measured": rec.measured,
        "start_s": rec.start - t0,
        "send_lag_s": None if rec.scheduled is None else rec.start - rec.scheduled,
        "ttfb_s": _since(rec.first_byte, rec.start),
        "ttft_s": ttft,
        "ttfr_s": _since(rec.first_reasoning, rec.start),
        "itl_mean_s": _mean(gaps),
        "itl_p50_s": percentile(gaps, 50),
        "itl_p99_s": percentile(gaps, 99),
        "tpot_s": tpot,
        "e2e_s": e2e,
        "chunks": len(rec.chunk_times),
        "output_tokens": rec.output_tokens,
        "prompt_tokens": rec.prompt_tokens,
        "tokens_source": rec.tokens_source,
        "status": rec.status,
        "error": rec.error,
        "retries": rec.retries,
    }


def meets_slo(r: Mapping[str, Any], slo: Mapping[str, float]) -> bool:
    """True when the row succeeded and every SLO bound holds (a missing metric fails it)."""
    if r["status"] != "ok":
        return False
    metric = {"ttft_s": "ttft_s", "itl_s": "itl_p99_s", "tpot_s": "tpot_s", "e2e_s": "e2e_s"}
    for key, bound in slo.items():
        value = r.get(metric[key])
        if key == "itl_s" and value is None and r.get("chunks", 0) <= 1:
            continue  # a one-chunk answer has no gap to miss
        if key == "tpot_s" and value is None and (r.get("output_tokens") or 0) <= 1:
            continue
        if value is None or value > bound:
            return False
    return True


def _stats(name: str, values: Sequence[float], out: dict[str, Any]) -> None:
    out[f"{name}_mean_s"] = _mean(values)
    for q in (50, 90, 99):
        out[f"{name}_p{q}_s"] = percentile(values, q)


def summarize(
    level: str,
    rows: Sequence[Mapping[str, Any]],
    records: Sequence[Record],
    *,
    concurrency: int | None,
    offered_rps: float | None,
    slo: Mapping[str, float] | None,
    client_cpu_s: float,
    wall_s: float,
    loop_lags: Sequence[float] = (),
    cores: int = 1,
    window: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """The summary of one load level from its rows (and records, for the pooled ITL gaps)."""
    measured = [(r, rec) for r, rec in zip(rows, records, strict=True) if r["measured"]]
    ok = [r for r, _ in measured if r["status"] == "ok"]
    starts = [rec.start for _, rec in measured]
    ends = [rec.end for _, rec in measured if rec.end is not None]
    duration = (max(ends) - min(starts)) if starts and ends else 0.0
    done = ok  # the requests the rates count
    if window is not None and window[1] > window[0]:
        # steady state: every request (measured or not) that *ended* inside the window
        lo, hi = window
        duration = hi - lo
        done = [
            r
            for r, rec in zip(rows, records, strict=True)
            if r["status"] == "ok" and lo <= (rec.end or 0) <= hi
        ]
    out: dict[str, Any] = {
        "level": level,
        "concurrency": concurrency,
        "offered_rps": offered_rps,
        "requests": len(measured),
        "ok": len(ok),
        "errors": len(measured) - len(ok),
        "error_rate": (len(measured) - len(ok)) / len(measured) if measured else None,
        "duration_s": duration,
    }
    per_s = (lambda n: n / duration) if duration > 0 else (lambda n: None)
    out["request_throughput"] = per_s(len(done))
    out["output_tok_s"] = per_s(sum(r["output_tokens"] or 0 for r in done))
    _stats("ttft", [r["ttft_s"] for r in ok if r["ttft_s"] is not None], out)
    _stats("itl", [g for r, rec in measured if r["status"] == "ok" for g in rec.gaps()], out)
    _stats("tpot", [r["tpot_s"] for r in ok if r["tpot_s"] is not None], out)
    _stats("e2e", [r["e2e_s"] for r in ok if r["e2e_s"] is not None], out)
    out["goodput_rps"] = per_s(sum(meets_slo(r, slo) for r in done)) if slo else None
    lags = [r["send_lag_s"] for r, _ in measured if r["send_lag_s"] is not None]
    span = (max(starts) - min(starts)) if len(starts) > 1 else 0.0
    achieved = (len(starts) - 1) / span if span > 0 else None
    out["achieved_rps"] = achieved if offered_rps is not None else out["request_throughput"]
    out["achieved_ratio"] = achieved / offered_rps if offered_rps and achieved is not None else None
    out["send_lag_p99_s"] = percentile(lags, 99)
    util = client_cpu_s / wall_s if wall_s > 0 else None
    out["client_cpu_s"] = client_cpu_s
    out["client_cpu_util"] = util
    out["loop_lag_p99_s"] = percentile(loop_lags, 99)
    lags99 = [v for v in (out["send_lag_p99_s"], out["loop_lag_p99_s"]) if v is not None]
    out["client_bound"] = bool(
        (util is not None and util >= CLIENT_BOUND_UTIL * cores) or any(v > LAG_BOUND_S for v in lags99)
    )
    return out
