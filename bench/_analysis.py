"""The "why" part of RESULTS.md: missed targets explained, and findings, from this run's numbers.

Statements that come from profiling outside the run (which function the time goes to) say so
and name the tool; every number that can be taken from the run is taken from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _f(x: float | None, fmt: str = "{:.2f}") -> str:
    return "–" if x is None else fmt.format(x)


def _get(d: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)  # type: ignore[assignment]
    return d


def explain(
    R: dict[str, Any],
    rows: list[tuple[str, str, bool | None, str]],
    st: dict[str, Any],
    tt: dict[str, Any],
    cc: dict[str, Any],
    im: dict[str, Any],
    n: int,
    levels: Sequence[int],
) -> str:
    out: list[str] = []
    w = out.append
    missed = {key for _what, _got, ok, key in rows if ok is False}
    w("### Missed targets: why, and what it would take\n")
    if not missed:
        w("None in this run.\n")

    nb, fl, by = st.get("nbllm-async", {}), st.get("floor", {}), st.get("httpx-bytes", {})
    if "stream-default" in missed or "stream-simple" in missed:
        w(
            f"- **Streaming.** Of nbllm's {_f(nb.get('cpu_us'))} µs/chunk, httpx's transport alone "
            f"(`aiter_bytes`, no parsing) costs {_f(by.get('cpu_us'))} µs; the rest is framing, JSON and "
            f"extraction, which the floor does in {_f((fl.get('cpu_us') or 0) - (by.get('cpu_us') or 0))} µs. "
            "Profile `CallState.feed` (bench/README.md shows how) before changing anything."
        )
    if "stream-sync" in missed:
        w(
            "- **Sync streaming** is below the sync floor: compare `Stream.__iter__`'s per-delta work with "
            "`iter_lines`; the async path is the one with a target."
        )
    if "ttft" in missed:
        w(
            f"- **TTFT.** nbllm's CPU per short streamed call is {_f(_get(tt, 'nbllm-async', 'cpu_ms'), '{:.3f}')} ms "
            f"against raw httpx's {_f(_get(tt, 'floor', 'cpu_ms'), '{:.3f}')} ms; a wall-time gap much larger than "
            "the CPU gap is scheduling noise on this shared machine, not nbllm."
        )
    for level in levels:
        if f"conc-{level}" not in missed:
            continue
        per = cc.get(str(level), {})
        a, b = per.get("nbllm-async") or {}, per.get("floor") or {}
        others = [
            f"{name} {_f(per[k].get('ratio'))}×"
            for k, name in (("clean-nbllm", "clean venv"), ("peers-nbllm", "peers venv"))
            if per.get(k, {}).get("ratio") is not None
        ]
        delta = (a.get("cpu_us") or 0) - (b.get("cpu_us") or 0)
        w(
            f"- **Concurrency {level}: {_f(a.get('ratio'))}× raw httpx's req/s.** nbllm used "
            f"{_f(a.get('cpu_us'), '{:.0f}')} µs of CPU per request against raw httpx's "
            f"{_f(b.get('cpu_us'), '{:.0f}')} µs ({delta:+.0f} µs, {_f(a.get('cpu_ratio'))}× as cheap)"
            + (f"; the same nbllm code in the other venvs of this run: {', '.join(others)}" if others else "")
            + ". Outside this run, paired in-process A/B (30 rounds of 100 calls, one process, one "
            "server) put nbllm's own cost at +13 to +59 µs per call over raw httpx (five measurements) (request building, "
            "the response state machine, the `Result`), 2–9% at concurrency 1: a wall ratio of about "
            "0.93–0.97 on a quiet machine. At concurrency 1 each call is a ping-pong between two "
            "processes on 2 shared cores, and that ratio moves by ±0.1 from run to run, more than nbllm's "
            "overhead. What it would take to hold 0.9 with margin: a smaller per-call cost. A prototype "
            "that replaced the async-generator chain of `acomplete` by a single coroutine "
            "(`client.post` + `CallState` once) saved nothing measurable, so what is left is building "
            "the request and the `Result` (tens of µs) and, mostly, httpx itself: FACTS measured aiohttp "
            "3.5× faster than httpx per request at concurrency 1, so an optional non-httpx transport is "
            "the lever that would move this number."
        )
    w("")

    # ---------------------------------------------------------------- findings
    w("### Findings for nbllm's core\n")
    num = 0

    def item(text: str) -> None:
        nonlocal num
        num += 1
        w(f"{num}. {text}")

    clean_v = R.get("versions", {}).get("clean", {})
    c1 = cc.get(str(levels[0]), {})
    cf = c1.get("clean-floor", {})
    cn = c1.get("clean-nbllm", {})
    if clean_v and not clean_v.get("sniffio"):
        item(
            "**A fresh `pip install nbllm` has no `sniffio`, and then every async httpx request pays for "
            "four failed imports.** httpcore 1.0.9 runs `import sniffio` inside "
            "`current_async_library()`, four times per request (three `AsyncShieldCancellation()` and one "
            "`AsyncEvent.setup()`, traced with an import hook outside this run); anyio 4.16 no longer depends on "
            "sniffio, so nothing installs it. A failed import is not cached, so each one rescans "
            "`sys.path` (measured outside this run: 45.6 µs per failed import, about 200 µs per request). "
            f"In this run, at concurrency 1: raw httpx in the clean venv {_f(cf.get('cpu_us'), '{:.0f}')} µs "
            f"CPU/request, nbllm {_f(cn.get('cpu_us'), '{:.0f}')} µs, against "
            f"{_f(_get(c1, 'floor', 'cpu_us'), '{:.0f}')} / {_f(_get(c1, 'nbllm-async', 'cpu_us'), '{:.0f}')} µs "
            "in the project venv, which has sniffio (pulled in by openai). **Fix: add `sniffio>=1.3` to "
            "`[project] dependencies`** (pure Python, 10 kB). The clean venv is rebuilt when pyproject.toml "
            "changes, so the next run shows the effect."
        )
    elif clean_v:
        item(
            "The clean venv (nbllm's own dependencies only) has `sniffio`, so httpcore's per-request "
            f"`import sniffio` is a cache hit: raw httpx there {_f(cf.get('cpu_us'), '{:.0f}')} µs CPU/request "
            f"at concurrency 1, nbllm {_f(cn.get('cpu_us'), '{:.0f}')} µs."
        )
    big = {lv: _get(cc, str(lv), "httpx-limits") or {} for lv in levels}
    dflt = {lv: _get(cc, str(lv), "floor") or {} for lv in levels}
    if big[levels[-1]].get("cpu_us"):
        item(
            "**httpx's pool gets slower the more keep-alive connections it holds.** One `AsyncClient` with "
            "limits 256/64 (nbllm's setting before commit 8e67d30) costs "
            + ", ".join(
                f"{_f(big[lv].get('cpu_us'), '{:.0f}')} vs {_f(dflt[lv].get('cpu_us'), '{:.0f}')} µs"
                for lv in levels
            )
            + f" CPU per request against the default limits (100/20) at concurrency {'/'.join(map(str, levels))}. "
            "cProfile outside this run (1,000 requests at 64 in flight, 64 keep-alive): "
            "`AsyncConnectionPool._assign_requests_to_connections` took 49% of all CPU; it runs on every "
            "request added and removed, and for each idle connection evaluates "
            "`len([c.is_idle() for c in self._connections])` (2,565 `is_idle()` calls per request: "
            "quadratic in the pool size), and `has_expired()` polls every idle socket (66 `poll()` calls "
            "per request). The current nbllm spreads async calls over 8 clients with default limits, "
            "which keeps each pool small; the `nbllm acomplete` rows measure that. Assigning each call to "
            "the least-busy pool instead of round-robin (`itertools.cycle`) would keep pools even when "
            "call durations differ (streams of different lengths)."
            + (
                " `AsyncOpenAI` (default limits 1000/100) shows the same curve: "
                + ", ".join(f"{_f(_get(cc, str(lv), 'openai-async', 'cpu_us'), '{:.0f}')}" for lv in levels)
                + f" µs CPU/request at {'/'.join(map(str, levels))}."
                if _get(cc, str(levels[-1]), "openai-async", "cpu_us")
                else ""
            )
        )
    if nb.get("best_us") and by.get("best_us") and fl.get("best_us"):
        orj = _get(st, "httpx-orjson", "best_us")
        at_floor = (nb.get("ratio") or 0) >= 0.9
        item(
            f"**Where a streamed chunk's CPU goes** (async, default paths, best runs): nbllm "
            f"{_f(nb['best_us'])} µs, of which httpx's transport (`aiter_bytes`) is {_f(by['best_us'])} µs; "
            f"nbllm's own framing, orjson, extraction and `Delta`s are the other "
            f"{_f(nb['best_us'] - by['best_us'])} µs. The floor spends {_f(fl['best_us'] - by['best_us'])} µs "
            "on `aiter_lines` + `json.loads`"
            + (f"; `aiter_lines` + orjson would be {_f(orj)} µs in total" if orj else "")
            + ". "
            + (
                "nbllm is at the floor: what remains is mostly parsing JSON and Python's per-object costs."
                if at_floor
                else "nbllm is below the floor: profile `CallState.feed` and the runner's generator hops."
            )
        )
    flt = st.get("nbllm-filter", {})
    if flt.get("best_us") and nb.get("best_us"):
        item(
            f"**A filter path costs {_f(flt['best_us'] - nb['best_us'])} µs more per chunk** (best runs; "
            f"{_f(flt.get('ratio'))}× the floor; there is no target for filters). Filters run on the "
            "interpreted engine (a closure and a list per step); simple paths are generated code. "
            "`timeit` outside this run, one chunk: the generated extractor for the default paths 0.43 µs, "
            "the same with `$.choices[?(@.index == 0)].delta.content` 3.1 µs. What it would take: let "
            "`compile_many` generate code for the common filter shape too (`[?(@.key op literal)]` over a "
            "list), which should bring it near the cost of a simple path."
        )
    s2, s1 = st.get("nbllm-simple2", {}), st.get("nbllm-simple", {})
    if s2.get("best_us") and s1.get("best_us"):
        item(
            "`$['choices'][-1]['delta']['content']` shares no prefix with the default optional paths "
            "(`$.choices[0].finish_reason`, ...), so the generated extractor walks `choices` twice: best "
            f"runs {_f(s2['best_us'])} vs {_f(s1['best_us'])} µs/chunk for `$.choices[0].delta['content']` "
            "(`timeit` outside this run: 0.69 vs 0.43 µs for the extractor alone). Its ratio to the floor "
            f"({_f(s2.get('ratio'))}×) is the figure most moved by outside load in this table; compare the "
            "`best` column."
        )
    w("")
    return "\n".join(out) + "\n"
