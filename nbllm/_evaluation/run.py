"""Run many calls through the public API: per-endpoint worker pools, RPM limits, a budget.

Every call goes through ``nbllm.astream`` (streaming gives the time to first token; an endpoint
whose ``stream`` is ``"off"`` gets a plain JSON request through the same object). Retries with
backoff and ``Retry-After`` happen inside that call (the endpoint's ``retries``); a call that
still fails becomes a row with its error, never an exception.

Each endpoint gets ``concurrency`` workers pulling row numbers from its queue, so a 100k-row
run holds no 100k tasks. httpx's connection pool slows down as the requests queued on one
client grow (it rescans them), so each endpoint's workers are spread over one client per
``_PER_CLIENT`` workers; ``bench/bench_eval.py`` measures the difference.

``run_blocking`` runs a coroutine on a background event-loop thread, kept for the process, and
waits in the calling thread, where Ctrl-C / a kernel interrupt arrives as KeyboardInterrupt:
the run is then stopped (in-flight calls cancelled) and what finished is returned.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import time
from collections import deque
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from .._base.exceptions import NbllmError
from .._base.redact import redact
from .._core.endpoint import Endpoint
from .._core.result import Result
from .._io.api import arepair_placed, astream_placed
from .._io.client import ssl_context
from .._io.loop import background_loop, in_background_thread
from .images import generate_row

if TYPE_CHECKING:
    import httpx

    from .._core.schema import Schema
    from .cache import Cache
    from .progress import Progress, Stats

__all__ = ["Calls", "Outcomes", "Runner", "run_blocking"]

T = TypeVar("T")
_PER_CLIENT = 4  # workers sharing one httpx.AsyncClient (bench: 2-8 alike, 16 is 2x slower)
_FLUSH_EVERY = 1.0  # seconds between cache commits
_FLUSH_ROWS = 256  # ... or sooner, once this many answers wait (bounds re-calls after a crash)


class Gate:
    """A cluster-wide limit around each call (``_eval_dask``): ``enter()`` before, ``leave()``
    after. The in-process limits (worker count, ``RateLimiter``) still apply."""

    async def enter(self) -> None:  # pragma: no cover - interface
        pass

    async def leave(self) -> None:  # pragma: no cover - interface
        pass


@dataclass
class Calls:
    """What to call, one entry per row: endpoint index, prompt, system, params, cache key."""

    ep_idx: list[int]
    prompt: list[Any]
    system: list[str | None]
    params: list[Mapping[str, Any]]
    keys: list[str | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ep_idx)


class Outcomes:
    """The result columns, filled in place by row number (column-wise, no per-row dicts)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.done = [False] * n
        self.output = [""] * n
        self.error = [""] * n
        self.latency = [math.nan] * n
        self.ttft = [math.nan] * n
        self.prompt_tokens: list[int | None] = [None] * n
        self.completion_tokens: list[int | None] = [None] * n
        self.estimated = [False] * n
        self.cost = [math.nan] * n
        self.finish = [""] * n
        self.retries: list[int | None] = [0] * n
        self.cached = [False] * n
        self.images: dict[int, list[dict[str, str]]] = {}  # row -> its saved images (image endpoints)

    # ``done[i]`` is set last: a background run's ``partial()`` reads the columns from another
    # thread and takes only rows marked done, so it never sees a half-filled one.
    def ok(self, i: int, r: Result, *, cached: bool = False) -> None:
        self.output[i] = r.text
        self.latency[i] = _num(r.latency_s)
        self.ttft[i] = _num(r.ttft_s)
        self.prompt_tokens[i] = r.usage.prompt_tokens
        self.completion_tokens[i] = r.usage.completion_tokens
        self.estimated[i] = r.usage.estimated
        self.cost[i] = _num(r.cost)
        self.finish[i] = r.finish_reason or ""
        self.retries[i] = r.retries
        self.cached[i] = cached
        self.done[i] = True

    def fail(self, i: int, error: str, partial: Result | None) -> None:
        self.error[i] = error
        if partial is not None:
            self.output[i] = partial.text
            self.latency[i] = _num(partial.latency_s)
            self.ttft[i] = _num(partial.ttft_s) if partial.text else math.nan
            self.finish[i] = partial.finish_reason or ""
            self.retries[i] = partial.retries
        self.done[i] = True

    def cached_value(self, i: int) -> dict[str, Any]:
        """What the cache keeps for a finished row."""
        return {
            "output": self.output[i],
            "latency_s": _json_num(self.latency[i]),
            "ttft_s": _json_num(self.ttft[i]),
            "prompt_tokens": self.prompt_tokens[i],
            "completion_tokens": self.completion_tokens[i],
            "tokens_estimated": self.estimated[i],
            "cost": _json_num(self.cost[i]),
            "finish_reason": self.finish[i],
            "retries": self.retries[i],
            **({"images": self.images[i]} if i in self.images else {}),
        }

    def load_cached(self, i: int, v: Mapping[str, Any]) -> None:
        self.cached[i] = True
        self.output[i] = v.get("output") or ""
        self.latency[i] = _num(v.get("latency_s"))
        self.ttft[i] = _num(v.get("ttft_s"))
        self.prompt_tokens[i] = v.get("prompt_tokens")
        self.completion_tokens[i] = v.get("completion_tokens")
        self.estimated[i] = bool(v.get("tokens_estimated"))
        self.cost[i] = _num(v.get("cost"))
        self.finish[i] = v.get("finish_reason") or ""
        self.retries[i] = v.get("retries") or 0
        if v.get("images"):
            self.images[i] = list(v["images"])
        self.done[i] = True

    def columns(self) -> dict[str, Any]:
        """Result columns with their dtypes (see ``_eval_frame.RESULT_COLUMNS``)."""
        import numpy as np

        from .frame import bool_array, int_array, text_array

        return {
            "output": text_array(self.output),
            "error": text_array(self.error),
            "latency_s": np.asarray(self.latency, dtype=np.float64),
            "ttft_s": np.asarray(self.ttft, dtype=np.float64),
            "prompt_tokens": int_array(self.prompt_tokens),
            "completion_tokens": int_array(self.completion_tokens),
            "tokens_estimated": bool_array(self.estimated),
            "cost": np.asarray(self.cost, dtype=np.float64),
            "finish_reason": text_array(self.finish),
            "retries": int_array(self.retries),
            "cached": bool_array(self.cached),
        }


def _num(v: Any) -> float:
    return math.nan if v is None else float(v)


def _json_num(v: float) -> float | None:
    return None if math.isnan(v) else v


def error_text(exc: BaseException) -> str:
    """``Type: message`` on one line (no URL, no hint: the row already names the model), with
    keys and URL credentials masked (any exception's text may quote them, not just nbllm's)."""
    msg = exc.message if isinstance(exc, NbllmError) else redact(str(exc))
    return f"{type(exc).__name__}: {msg}".splitlines()[0]


class RateLimiter:
    """Spaces call starts ``60/rpm`` seconds apart (bursts of one)."""

    def __init__(self, rpm: float) -> None:
        self.interval = 60.0 / rpm
        self.next = 0.0

    async def wait(self) -> None:
        now = time.monotonic()
        at = max(now, self.next)
        self.next = at + self.interval
        if at > now:
            await asyncio.sleep(at - now)


def make_clients(ep: Endpoint, workers: int) -> list[httpx.AsyncClient]:
    import httpx

    if ep.handler:
        return []
    n = max(1, math.ceil(workers / _PER_CLIENT))
    per = math.ceil(workers / n)
    limits = httpx.Limits(max_connections=per + 4, max_keepalive_connections=per + 4)
    return [httpx.AsyncClient(verify=ssl_context(ep.verify), limits=limits) for _ in range(n)]


class Runner:
    """Runs ``calls`` into ``out``; ``stop(reason)`` ends the run early (thread: the loop's)."""

    def __init__(
        self,
        endpoints: Sequence[Endpoint],
        calls: Calls,
        out: Outcomes,
        stats: Stats,
        *,
        concurrency: Sequence[int],
        rpm: Sequence[float | None],
        cache: Cache | None = None,
        budget: float | None = None,
        schema: Schema | None = None,
        repair: int = 0,
    ) -> None:
        self.endpoints = list(endpoints)
        self.schema = schema  # placed in each request; answers re-asked up to ``repair`` times
        self.repair = repair
        self.calls = calls
        self.out = out
        self.stats = stats
        self.concurrency = list(concurrency)
        self.rpm = list(rpm)
        self.cache = cache
        self.budget = budget
        self.stopped = ""
        self._tasks: list[asyncio.Task[None]] = []
        self.gates: list[Gate | None] = [None] * len(self.endpoints)
        self.flush_rows = _FLUSH_ROWS

    # -- before the run ------------------------------------------------------------------
    def load_cache(self) -> int:
        """Fill rows whose answer is cached; returns how many."""
        if self.cache is None:
            return 0
        keys = self.calls.keys
        found = self.cache.get_many(k for k in keys if k)
        for i, key in enumerate(keys):
            if key and key in found and not self.out.done[i]:
                self.out.load_cached(i, found[key])
        hits = sum(self.out.cached)
        self.stats.cached = self.stats.done = hits
        return hits

    # -- the run -------------------------------------------------------------------------
    async def run(self) -> Outcomes:
        queues: list[deque[int]] = [deque() for _ in self.endpoints]
        for i, e in enumerate(self.calls.ep_idx):
            if not self.out.done[i]:
                queues[e].append(i)
        clients: list[httpx.AsyncClient] = []
        try:
            for e, ep in enumerate(self.endpoints):
                if not queues[e]:
                    continue
                workers = max(1, min(self.concurrency[e], len(queues[e])))
                pool = make_clients(ep, workers)
                clients += pool
                rpm = self.rpm[e]
                limiter = RateLimiter(rpm) if rpm else None
                for w in range(workers):
                    client = pool[w % len(pool)] if pool else None
                    coro = self._worker(queues[e], client, limiter)
                    self._tasks.append(asyncio.ensure_future(coro))
            ticker = asyncio.ensure_future(self._flush_loop())
            try:
                if self._tasks:
                    await asyncio.wait(self._tasks)
            except asyncio.CancelledError:  # aevaluate's caller was cancelled
                self.stop("interrupted")
                if self._tasks:
                    await asyncio.wait(self._tasks)
                raise
            finally:
                ticker.cancel()
            for t in self._tasks:  # a worker can only fail through a bug: surface it
                if not t.cancelled() and t.exception() is not None:
                    raise t.exception()  # type: ignore[misc]
        finally:
            self._finish()
            for c in clients:
                await c.aclose()
        return self.out

    def stop(self, reason: str) -> None:
        """Stop taking rows; ``"interrupted"`` also cancels the calls in flight."""
        if not self.stopped:
            self.stopped = self.stats.stopped = reason
        if reason == "interrupted":
            for t in self._tasks:
                t.cancel()

    def _finish(self) -> None:
        reason = self.stopped or "interrupted"
        for i, done in enumerate(self.out.done):
            if not done:
                self.out.fail(i, reason, None)
                self.stats.errors += 1
                self.stats.done += 1
        if self.cache is not None:
            self.cache.flush()

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(_FLUSH_EVERY)
            if self.cache is not None:
                self.cache.flush()

    async def _worker(
        self, queue: deque[int], client: httpx.AsyncClient | None, limiter: RateLimiter | None
    ) -> None:
        while queue and not self.stopped:
            i = queue.popleft()
            if limiter is not None:
                await limiter.wait()
                if self.stopped:
                    return
            gate = self.gates[self.calls.ep_idx[i]]
            if gate is None:
                await self._call(i, client)
                continue
            await gate.enter()
            try:
                if not self.stopped:
                    await self._call(i, client)
            finally:
                await gate.leave()

    async def _call(self, i: int, client: httpx.AsyncClient | None) -> None:
        c, out, stats = self.calls, self.out, self.stats
        ep = self.endpoints[c.ep_idx[i]]
        s = None
        r: Result
        try:
            if ep.type == "image":  # one row per image in the frame (see _image_eval)
                r, out.images[i] = await generate_row(ep, c.prompt[i], c.params[i], client)
            else:
                s = astream_placed(
                    ep, c.prompt[i], system=c.system[i], params=c.params[i], client=client, schema=self.schema
                )
                r = await s.until_done()
                if self.schema is not None and self.repair:
                    r = await arepair_placed(
                        ep,
                        c.prompt[i],
                        system=c.system[i],
                        params=c.params[i],
                        client=client,
                        schema=self.schema,
                        repair=self.repair,
                        first=r,
                    )
        except asyncio.CancelledError:
            out.fail(i, "interrupted", s.result if s is not None else None)
            stats.errors += 1
            stats.done += 1
            raise
        except Exception as exc:  # every failure becomes the row's error
            partial = s.result if s is not None else None
            out.fail(i, error_text(exc), partial)
            stats.errors += 1
            stats.retries += partial.retries if partial is not None else 0
        else:
            out.ok(i, r)
            stats.retries += r.retries
            if r.cost:
                stats.cost += r.cost
            key = c.keys[i] if c.keys else None
            if self.cache is not None and key and self.cache.put(key, out.cached_value(i)) >= self.flush_rows:
                self.cache.flush()
        stats.done += 1
        stats.fresh_done += 1
        if self.budget is not None and stats.cost >= self.budget:
            self.stop("budget reached")


# ---- waiting for a run on nbllm's background loop ------------------------------------------


def run_blocking(
    coro: Coroutine[Any, Any, T],
    *,
    stop: Callable[[], None],
    progress: Progress | None = None,
    grace: float = 10.0,
) -> T | None:
    """Run ``coro`` on the background loop and wait, drawing ``progress``.

    On KeyboardInterrupt, ``stop()`` is called on the loop and the wait goes on (up to
    ``grace`` seconds) for the coroutine to wrap up; a second interrupt, or the grace running
    out, returns None at once (the coroutine finishes on its own).
    """
    if in_background_thread():
        coro.close()
        raise RuntimeError(
            "nbllm.evaluate() cannot be called from inside a scorer or handler "
            "running on the evaluation loop; use aevaluate()"
        )
    loop = background_loop()
    fut = asyncio.run_coroutine_threadsafe(coro, loop)
    deadline: float | None = None
    while True:
        # the interrupt may land anywhere in here, drawing the progress included: one outer
        # handler takes it (an interrupt raised inside an ``except TimeoutError`` clause is not
        # caught by a sibling ``except KeyboardInterrupt``)
        try:
            try:
                result = fut.result(timeout=0.1)
            except concurrent.futures.TimeoutError:
                if progress is not None:
                    progress.update()
                if deadline is not None and time.monotonic() > deadline:
                    return None
                continue
            if progress is not None:
                progress.update(force=True)
            return result
        except KeyboardInterrupt:
            if deadline is not None:
                return None
            loop.call_soon_threadsafe(stop)
            deadline = time.monotonic() + grace
