"""The load-test driver: ``loadtest()`` / ``aloadtest()`` on nbllm's own calling path.

Each load level runs on one event loop (nbllm's background loop for ``loadtest``, the caller's
for ``aloadtest``):

- a *concurrency* level keeps ``c`` requests in flight (closed loop: ``c`` workers, each sends
  its next request when the previous one ended);
- a *rate* level is an open loop: a scheduler sends request ``i`` at its arrival time (constant
  spacing ``1/rate`` or Poisson: exponential gaps, seeded) without ever waiting for an answer;
  ``max_concurrency`` caps the requests in flight (an arrival then waits for a free slot, and
  the wait shows as ``send_lag_s``).

A level stops after ``requests`` sends or ``duration`` seconds, then waits for the requests in
flight. Requests sent in the first ``warmup`` or the last ``cooldown`` seconds of the sending
window are kept as rows with ``measured=False`` and left out of the summary. Each request goes
through ``astream`` (custom formats and handler providers included) with ``retries`` (default
0) and nothing else: no request goes anywhere but the endpoint the caller named. A response
hook on the level's own httpx clients timestamps the first byte. The CPU of the loop's thread
is measured per level (``resource.getrusage(RUSAGE_THREAD)``). Interrupting (Ctrl-C, or
cancelling ``aloadtest``) cancels the requests in flight and returns every row so far.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import random
import resource
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._base.exceptions import UsageError
from .._base.validate import check_bool, check_int, check_mapping, check_number, check_str
from .._core.endpoint import Endpoint
from .._core.request import estimate_tokens, flatten, normalize_messages
from .._evaluation.progress import Stats, announce, make_progress
from .._evaluation.run import error_text, run_blocking
from .._io.api import astream, check_prompt, resolve
from .._io.client import ssl_context
from .metrics import SLO_KEYS, Record, row, summarize

if TYPE_CHECKING:
    import httpx
    import pandas as pd

__all__ = ["LoadResult", "aloadtest", "loadtest"]

_CURRENT: contextvars.ContextVar[Record | None] = contextvars.ContextVar("nbllm_load_record", default=None)
_RUSAGE_THREAD = getattr(resource, "RUSAGE_THREAD", None)


def thread_cpu() -> float:
    """CPU seconds of the calling thread (the whole process where the OS cannot tell)."""
    if _RUSAGE_THREAD is not None:
        r = resource.getrusage(_RUSAGE_THREAD)
        return r.ru_utime + r.ru_stime
    return time.process_time()  # pragma: no cover - not Linux


async def _on_response(response: httpx.Response) -> None:
    rec = _CURRENT.get()
    if rec is not None and rec.first_byte is None:
        rec.first_byte = time.perf_counter()


def _releaser(slots: asyncio.Semaphore) -> Any:
    def release(_task: asyncio.Task[None]) -> None:
        slots.release()

    return release


PROBE_S = 0.01


async def _probe(lags: list[float]) -> None:
    """How late the client's loop runs: sleep ``PROBE_S`` again and again, note the oversleep."""
    while True:
        t = time.perf_counter()
        await asyncio.sleep(PROBE_S)
        lags.append(max(0.0, time.perf_counter() - t - PROBE_S))


#: Requests in flight per httpx client: httpx's pool cost grows with the requests on it (see
#: _client.ASYNC_POOLS), so a level spreads its requests over ceil(cap / 4) clients.
_PER_CLIENT = 4


def _clients(ep: Endpoint, cap: int | None) -> list[httpx.AsyncClient]:
    """The level's own clients: no connection limit (a load test must never queue requests in
    the client, where the wait would be blamed on the server), a first-byte hook on each."""
    if ep.handler:
        return []
    import httpx

    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    n = max(1, math.ceil((cap or 64) / _PER_CLIENT))
    return [
        httpx.AsyncClient(
            verify=ssl_context(ep.verify),
            limits=limits,
            event_hooks={"request": [], "response": [_on_response]},
        )
        for _ in range(n)
    ]


class LoadResult:
    """What ``loadtest`` returns: ``.requests`` (one row per request), ``.summary`` (one row per
    level), ``.stopped`` ("" or "interrupted"), and ``.plot(kind)``."""

    def __init__(self, rows: list[dict[str, Any]], summary: list[dict[str, Any]], stopped: str) -> None:
        import pandas as pd

        self.requests: pd.DataFrame = pd.DataFrame(rows)
        self.summary: pd.DataFrame = pd.DataFrame(summary)
        self.stopped = stopped

    def plot(self, kind: str = "latency", ax: Any = None) -> Any:
        """``"latency"`` (percentiles vs load), ``"pareto"`` (throughput vs latency) or
        ``"ttft"`` (TTFT distribution per level); returns the matplotlib Axes."""
        from .plot import plot

        return plot(self, kind, ax)

    def __repr__(self) -> str:
        cols = ["level", "ok", "errors", "request_throughput", "output_tok_s", "ttft_p50_s", "itl_p50_s"]
        shown = self.summary[[c for c in cols if c in self.summary]] if len(self.summary) else self.summary
        tail = f" ({self.stopped})" if self.stopped else ""
        return f"<LoadResult {len(self.requests)} requests{tail}>\n{shown.to_string(index=False)}"

    def _repr_html_(self) -> str:
        return str(self.summary.to_html(index=False))


class _Plan:
    """Checked arguments of one load test."""

    def __init__(
        self,
        model: str | Endpoint,
        *,
        concurrency: int | Sequence[int] | None,
        rate: float | Sequence[float] | None,
        max_concurrency: int | None,
        requests: int | None,
        duration: float | None,
        prompt: Any,
        prompt_tokens: int | None,
        max_tokens: int | None,
        arrival: str,
        warmup: float,
        rampup: float,
        cooldown: float,
        slo: Mapping[str, Any] | None,
        retries: int,
        seed: int,
        system: str | None,
        params: Mapping[str, Any] | None,
        progress: bool,
    ) -> None:
        if concurrency is not None and rate is not None:
            raise UsageError(
                "give concurrency= (closed loop) or rate= (open loop), not both",
                field="rate",
                hint="cap an open loop with max_concurrency=",
            )
        if rate is not None:
            rates = [rate] if isinstance(rate, (int, float)) else list(rate)
            self.levels: list[tuple[int | None, float | None]] = [
                (None, check_number(f"rate[{i}]", r, min=0, unit="requests/s")) for i, r in enumerate(rates)
            ]
            if any(r == 0 for _, r in self.levels):
                raise UsageError("every rate must be above 0 requests/s", field="rate")
        else:
            conc = [1, 4, 16, 64] if concurrency is None else concurrency
            cs = [conc] if isinstance(conc, int) else list(conc)
            self.levels = [(check_int(f"concurrency[{i}]", c, min=1), None) for i, c in enumerate(cs)]
        if not self.levels:
            raise UsageError("needs at least one level", field="rate" if rate is not None else "concurrency")
        self.max_concurrency = (
            None if max_concurrency is None else check_int("max_concurrency", max_concurrency, min=1)
        )
        if requests is not None and duration is not None:
            raise UsageError("give requests= or duration=, not both", field="duration")
        self.requests = None if requests is None else check_int("requests", requests, min=1)
        self.duration = (
            None if duration is None else check_number("duration", duration, min=0, unit="seconds")
        )
        if prompt is not None and prompt_tokens is not None:
            raise UsageError("give prompt= or prompt_tokens=, not both", field="prompt_tokens")
        if prompt_tokens is not None:
            n = check_int("prompt_tokens", prompt_tokens, min=1)
            self.prompts: list[Any] = [" ".join(["hello"] * n)]
            self.unique = True
        else:
            if prompt is None:
                prompt = "Say hello."
            self.prompts = (
                list(prompt)
                if isinstance(prompt, (list, tuple)) and all(isinstance(p, str) for p in prompt)
                else [prompt]
            )
            for p in self.prompts:
                check_prompt(p)
            self.unique = False
        self.kwargs: dict[str, Any] = {}
        if max_tokens is not None:
            self.kwargs["max_tokens"] = check_int("max_tokens", max_tokens, min=1)
        self.arrival = check_str("arrival", arrival)
        if self.arrival not in ("constant", "poisson"):
            raise UsageError(f"must be 'constant' or 'poisson', got {arrival!r}", field="arrival")
        self.warmup = check_number("warmup", warmup, min=0, unit="seconds")
        self.rampup = check_number("rampup", rampup, min=0, unit="seconds")
        self.cooldown = check_number("cooldown", cooldown, min=0, unit="seconds")
        self.slo: dict[str, float] = {}
        for key, value in check_mapping("slo", slo or {}).items():
            if key not in SLO_KEYS:
                raise UsageError(f"unknown SLO {key!r}; use {', '.join(SLO_KEYS)}", field="slo")
            self.slo[key] = check_number(f"slo[{key!r}]", value, min=0, unit="seconds")
        self.retries = check_int("retries", retries, min=0)
        self.seed = check_int("seed", seed)
        self.system = None if system is None else check_str("system", system, empty=True)
        self.params = dict(check_mapping("params", params or {}))
        self.progress = check_bool("progress", progress)
        ep = resolve(model)
        self.ep = ep if ep.retries == self.retries else ep.replace(retries=self.retries)

    def count(self, conc: int | None, rate: float | None) -> int | None:
        """Requests to send at this level (None: until ``duration``)."""
        if self.requests is not None:
            return self.requests
        if self.duration is not None:
            return None
        return max(20, 4 * conc) if conc is not None else max(20, math.ceil(10 * (rate or 0)))

    def prompt(self, i: int) -> Any:
        p = self.prompts[i % len(self.prompts)]
        return f"{i} {p}" if self.unique else p


class _Driver:
    def __init__(self, plan: _Plan, stats: Stats) -> None:
        self.plan = plan
        self.stats = stats
        self.records: list[Record] = []
        self.rows: list[dict[str, Any]] = []
        self.summary: list[dict[str, Any]] = []
        self.stopped = ""
        self.tasks: set[asyncio.Task[None]] = set()
        self.t0 = time.perf_counter()
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self.stopped = "interrupted"
        self.stats.stopped = "interrupted"
        self._stop.set()
        for t in list(self.tasks):
            t.cancel()

    async def run(self) -> None:
        try:
            for i, (conc, rate) in enumerate(self.plan.levels):
                if self.stopped:
                    break
                await self._level(i, conc, rate)
        except asyncio.CancelledError:
            self.stop()

    async def _level(self, i: int, conc: int | None, rate: float | None) -> None:
        plan = self.plan
        label = f"c={conc}" if conc is not None else f"rate={rate:g}"
        if rate is not None and plan.max_concurrency is not None:
            label += f" max_c={plan.max_concurrency}"
        cap = conc if conc is not None else plan.max_concurrency
        clients = _clients(plan.ep, cap)
        recs: list[Record] = []
        n = plan.count(conc, rate)
        loop_lags: list[float] = []
        probe = asyncio.ensure_future(_probe(loop_lags))
        cpu0, wall0 = thread_cpu(), time.perf_counter()
        t_start = wall0
        deadline = None if plan.duration is None else t_start + plan.duration
        sent = 0

        def more() -> bool:
            if self.stopped:
                return False
            if n is not None:
                return sent < n
            return deadline is not None and time.perf_counter() < deadline

        def launch(scheduled: float | None, slot: int) -> asyncio.Task[None]:
            nonlocal sent
            rec = Record(label, sent, start=time.perf_counter(), scheduled=scheduled)
            client = clients[slot % len(clients)] if clients else None
            sent += 1
            recs.append(rec)
            task = asyncio.ensure_future(self._one(rec, plan.prompt(rec.index), client))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            return task

        try:
            if conc is not None:

                async def worker(k: int) -> None:
                    if plan.rampup:  # start the workers spread out: no synchronized waves
                        await asyncio.sleep(plan.rampup * k / conc)
                    while more():
                        await launch(None, k)  # worker k always uses pool k % pools

                workers = [asyncio.ensure_future(worker(k)) for k in range(conc)]
                self.tasks.update(workers)
                await asyncio.gather(*workers, return_exceptions=True)
            else:
                assert rate is not None
                rng = random.Random(plan.seed + i)
                slots = asyncio.Semaphore(plan.max_concurrency) if plan.max_concurrency else None
                at = t_start
                pending: list[asyncio.Task[None]] = []
                while more():
                    wait = at - time.perf_counter()
                    if wait > 0:
                        if deadline is not None and at >= deadline:
                            break
                        await asyncio.sleep(wait)
                        if not more():
                            break
                    if slots is not None:
                        await slots.acquire()
                    task = launch(at, sent)
                    if slots is not None:
                        task.add_done_callback(_releaser(slots))
                    pending.append(task)
                    at += rng.expovariate(rate) if plan.arrival == "poisson" else 1.0 / rate
                await asyncio.gather(*pending, return_exceptions=True)
        except asyncio.CancelledError:
            self.stop()
            await asyncio.gather(*list(self.tasks), return_exceptions=True)
        finally:
            cpu = thread_cpu() - cpu0
            wall = time.perf_counter() - wall0
            probe.cancel()
            self._close_level(label, recs, conc, rate, cpu, wall, t_start, deadline, loop_lags)
            for c in clients:
                await c.aclose()

    def _close_level(
        self,
        label: str,
        recs: list[Record],
        conc: int | None,
        rate: float | None,
        cpu: float,
        wall: float,
        t_start: float,
        deadline: float | None,
        loop_lags: list[float],
    ) -> None:
        plan = self.plan
        window = None
        if recs:
            last_send = deadline if deadline is not None else max(r.start for r in recs)
            lo, hi = t_start + plan.warmup, last_send - plan.cooldown
            if plan.warmup or plan.cooldown:
                window = (lo, hi)
            for r in recs:
                r.measured = lo <= r.start <= hi or (plan.warmup == 0 and plan.cooldown == 0)
        rows = [row(r, self.t0) for r in recs]
        self.records.extend(recs)
        self.rows.extend(rows)
        self.summary.append(
            summarize(
                label,
                rows,
                recs,
                concurrency=conc if conc is not None else plan.max_concurrency,
                offered_rps=rate,
                slo=plan.slo or None,
                client_cpu_s=cpu,
                wall_s=wall,
                loop_lags=loop_lags,
                window=window,
            )
        )

    async def _one(self, rec: Record, prompt: Any, client: httpx.AsyncClient | None) -> None:
        plan = self.plan
        token = _CURRENT.set(rec)
        try:
            s = astream(plan.ep, prompt, system=plan.system, params=plan.params, client=client, **plan.kwargs)
            rec.start = time.perf_counter()
            async with s:
                async for batch in s.abatches():
                    t = time.perf_counter()
                    content = False
                    for kind, text in batch:
                        if not text:
                            continue
                        if kind == "text":
                            content = True
                        elif rec.first_reasoning is None:
                            rec.first_reasoning = t
                    if content:
                        if rec.first_text is None:
                            rec.first_text = t
                        rec.chunk_times.append(t)
            rec.end = time.perf_counter()
            result = s.result
            assert result is not None
            rec.retries = result.retries
            self._tokens(rec, prompt, result.text, result.usage)
        except asyncio.CancelledError:
            rec.end = time.perf_counter()
            rec.status = "interrupted"
            raise
        except Exception as exc:
            rec.end = time.perf_counter()
            rec.status = "error"
            rec.error = error_text(exc)
            self.stats.errors += 1
        finally:
            _CURRENT.reset(token)
            self.stats.done += 1

    def _tokens(self, rec: Record, prompt: Any, text: str, usage: Any) -> None:
        if usage is not None and not usage.estimated and usage.completion_tokens is not None:
            rec.output_tokens, rec.prompt_tokens, rec.tokens_source = (
                usage.completion_tokens,
                usage.prompt_tokens,
                "server",
            )
            return
        tok = self.plan.ep.tokenizer
        out, est = estimate_tokens(text, tok)
        inp, _ = estimate_tokens(flatten(normalize_messages(prompt, self.plan.system)), tok)
        rec.output_tokens, rec.prompt_tokens = out, inp
        rec.tokens_source = "estimate" if est else "tokenizer"


def _total(plan: _Plan) -> int:
    """Requests the run will send, for the progress bar (a rate level with a duration: its
    expected count; a concurrency level with a duration cannot be known and counts 0)."""
    total = 0
    for c, r in plan.levels:
        n = plan.count(c, r)
        if n is None and r is not None and plan.duration is not None:
            n = math.ceil(r * plan.duration)
        total += n or 0
    return total


def _announce(plan: _Plan) -> str:
    from .._base.redact import mask_url

    where = f"handler {plan.ep.handler}" if plan.ep.handler else mask_url(plan.ep.url or "")
    levels = ", ".join(f"c={c}" if c is not None else f"{r:g}/s" for c, r in plan.levels)
    return f"load test of {plan.ep.name} ({where}): levels {levels}"


def loadtest(model: str | Endpoint, **kwargs: Any) -> LoadResult:
    """Measure what an endpoint sustains: see ``aloadtest`` for the arguments (the same)."""
    plan = _Plan(model, **_defaults(kwargs))
    stats = Stats(_total(plan), label="requests")
    announce(_announce(plan), plan.progress)
    bar = make_progress(stats, plan.progress)

    async def main() -> _Driver:
        driver = _Driver(plan, stats)
        holder.append(driver)
        await driver.run()
        return driver

    holder: list[_Driver] = []
    try:
        run_blocking(main(), stop=lambda: holder[0].stop() if holder else None, progress=bar)
    finally:
        bar.close()
    driver = holder[0]
    return LoadResult(driver.rows, driver.summary, driver.stopped)


async def aloadtest(
    model: str | Endpoint,
    *,
    concurrency: int | Sequence[int] | None = None,
    rate: float | Sequence[float] | None = None,
    max_concurrency: int | None = None,
    requests: int | None = None,
    duration: float | None = None,
    prompt: Any = None,
    prompt_tokens: int | None = None,
    max_tokens: int | None = None,
    arrival: str = "constant",
    warmup: float = 0.0,
    rampup: float = 0.0,
    cooldown: float = 0.0,
    slo: Mapping[str, float] | None = None,
    retries: int = 0,
    seed: int = 0,
    system: str | None = None,
    params: Mapping[str, Any] | None = None,
    progress: bool = False,
) -> LoadResult:
    """Load-test ``model`` (a registered name, ``"provider/model"`` or an Endpoint).

    ``concurrency``: closed-loop levels (default ``[1, 4, 16, 64]``); or ``rate``: open-loop
    levels in requests/s, ``arrival`` ``"constant"`` or ``"poisson"`` (seeded by ``seed``),
    optionally capped by ``max_concurrency``. Per level: ``requests`` sends or ``duration``
    seconds (default ``max(20, 4*c)`` requests, or 10 s worth of a rate). ``prompt`` (a string,
    a list of strings used in turn, or a message list) or ``prompt_tokens`` (a synthetic prompt
    of about that many tokens, unique per request); ``max_tokens``; ``warmup`` / ``cooldown``
    seconds excluded from the summary; ``rampup``: a concurrency level starts its workers spread
    over that many seconds (all at once, they stay in lock-step waves that burst the client and
    the server alike; use ``warmup >= rampup``); ``slo`` ``{"ttft_s", "itl_s", "tpot_s", "e2e_s"}`` for
    goodput; ``retries`` (0: a load test measures failures, it does not hide them).
    Metrics are defined in ``nbllm._loadtest.metrics`` and docs/loadtest.md.
    """
    plan = _Plan(
        model,
        **_defaults(
            {
                "concurrency": concurrency,
                "rate": rate,
                "max_concurrency": max_concurrency,
                "requests": requests,
                "duration": duration,
                "prompt": prompt,
                "prompt_tokens": prompt_tokens,
                "max_tokens": max_tokens,
                "arrival": arrival,
                "warmup": warmup,
                "rampup": rampup,
                "cooldown": cooldown,
                "slo": slo,
                "retries": retries,
                "seed": seed,
                "system": system,
                "params": params,
                "progress": progress,
            }
        ),
    )
    driver = _Driver(plan, Stats(_total(plan), label="requests"))
    try:
        await driver.run()
    except asyncio.CancelledError:
        driver.stop()
    return LoadResult(driver.rows, driver.summary, driver.stopped)


_DEFAULTS: dict[str, Any] = {
    "concurrency": None,
    "rate": None,
    "max_concurrency": None,
    "requests": None,
    "duration": None,
    "prompt": None,
    "prompt_tokens": None,
    "max_tokens": None,
    "arrival": "constant",
    "warmup": 0.0,
    "rampup": 0.0,
    "cooldown": 0.0,
    "slo": None,
    "retries": 0,
    "seed": 0,
    "system": None,
    "params": None,
    "progress": True,
}


def _defaults(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(kwargs) - set(_DEFAULTS))
    if unknown:
        raise UsageError(
            f"unknown argument{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}",
            field=unknown[0],
            hint=f"loadtest takes {', '.join(_DEFAULTS)}",
        )
    return {**_DEFAULTS, **kwargs}
