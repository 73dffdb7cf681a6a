"""``evaluate(dask_frame, ...)``: an evaluation run on a Dask cluster, one partition per task.

The result is a Dask DataFrame with the columns and dtypes of the pandas path (the ``meta`` is
the pandas path run on the empty frame), built with ``map_partitions``: each task runs the
ordinary in-memory evaluation of its partition on the worker (errors as rows, retries, cache),
so ``.compute()`` gives the rows ``evaluate(cases.compute(), ...)`` gives. ``case`` numbers are
global (partition lengths are counted first).

Cluster-wide limits (``_ClusterGate``): every call holds a lease of a ``distributed.Semaphore``
named after the endpoint (``max_leases=concurrency``), so all workers together keep at most
``concurrency`` requests in flight per endpoint; ``rate_limit`` spaces call starts cluster-wide
through a token kept in a ``distributed.Variable`` under a ``distributed.Lock`` (wall-clock
times: keep the nodes' clocks in sync). A dead worker's leases return after the scheduler's
``distributed.scheduler.locks.lease-timeout``.

Secrets: endpoints travel in the graph without their key. A key stored in the endpoint reaches
the workers through a worker plugin (scheduler to worker, not part of any task, never shown on
the dashboard or in logs); ``api_key_env`` endpoints read the variable on the worker.

Faults: a worker killed mid-partition makes Dask re-run the partition elsewhere; the answers the
dead worker had saved come from the cache (which must be a path every worker sees: the default
nbllm config directory on one machine, a shared filesystem on several), so the only rows called
twice are those in flight or not yet flushed (``FLUSH_ROWS``) when it died. A partition never
raises for a failed call: failures are rows with errors.

Nothing here is imported unless a Dask DataFrame is evaluated.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import hashlib
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._base.exceptions import UsageError
from .._base.redact import remember
from .._core.endpoint import Endpoint
from .._evaluation.cache import Cache, default_cache_path, endpoint_fingerprint
from .._evaluation.run import Gate, error_text

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["FLUSH_ROWS", "evaluate_dask"]

FLUSH_ROWS = 8  # a worker commits its answers at least every this many (bounds re-calls on a crash)
_WORKER_KEYS: dict[str, Any] = {}  # endpoint name -> key, filled on each worker by _Secrets


@dataclass
class _Spec:
    """Everything a partition task needs (no secrets: keys travel by ``_Secrets``)."""

    endpoints: list[Endpoint]
    keyed: list[bool]  # endpoint i's key comes from the secrets plugin
    prompt: Any
    opts: dict[str, Any]
    offsets: list[int]
    cache: str | None
    meta: Any
    keep_index: bool
    gates: list[tuple[str, int, float | None]] = field(default_factory=list)  # name, leases, rpm


def _secrets_plugin(keys: dict[str, Any]) -> Any:
    from distributed.diagnostics.plugin import WorkerPlugin

    class Secrets(WorkerPlugin):
        """Puts endpoint keys into the worker's memory (``_WORKER_KEYS``)."""

        def __init__(self, keys: dict[str, Any]) -> None:
            self._keys = keys

        def setup(self, worker: Any) -> None:
            # this class travels by value: reach the worker's module, not a pickled copy
            from nbllm._scale import dask_backend as _eval_dask

            _eval_dask._WORKER_KEYS.update(self._keys)

        def __repr__(self) -> str:
            return f"<nbllm secrets for {sorted(self._keys)}>"

    return Secrets(keys)


def _client() -> Any:
    try:
        return _distributed().default_client()
    except (ImportError, ValueError):  # no distributed, or no Client: Dask's local schedulers
        return None


def evaluate_dask(cases: Any, models: Any, prompt: Any, **opts: Any) -> Any:
    """The Dask DataFrame of results (see the module docstring)."""
    import numpy as np

    from .._evaluation.api import evaluate
    from .._evaluation.plan import _models, check_cache

    if opts.get("budget") is not None:
        raise UsageError(
            "budget= is not supported on a Dask cluster (each worker would spend it)",
            field="budget",
            hint="run a sample with the pandas path to measure the cost first",
        )
    check_cache(opts.get("cache", True))
    eps = _models(models)
    client = _client()
    keyed = [ep.secret is not None and client is not None for ep in eps]
    keys = {ep.name: ep.secret for ep, k in zip(eps, keyed, strict=True) if k}
    if client is not None:  # an LLM judge's own Endpoint key travels the same way
        opts = {**opts, "scorers": _strip_judge_keys(opts.get("scorers", ()), keys)}
    if keys:
        assert client is not None
        name = "nbllm-secrets-" + hashlib.sha256(repr(sorted(keys)).encode()).hexdigest()[:12]
        client.register_plugin(_secrets_plugin(keys), name=name)
    sent = [ep.replace(api_key=None) if k else ep for ep, k in zip(eps, keyed, strict=True)]
    keep_index = cases.index.name is not None
    empty = cases._meta
    empty = empty.reset_index() if keep_index else empty.reset_index(drop=True)
    inner = {**opts, "cache": False, "progress": False}
    meta = evaluate(empty, sent, prompt, **inner)
    meta.attrs.clear()
    lengths = cases.map_partitions(len).compute()
    offsets = [0, *np.cumsum(list(lengths)).tolist()]
    conc, rpm = _limits(opts, sent)
    spec = _Spec(
        endpoints=sent,
        keyed=keyed,
        prompt=prompt,
        opts=inner,
        offsets=[int(o) for o in offsets],
        cache=_cache_path(opts.get("cache", True)),
        meta=meta,
        keep_index=keep_index,
        gates=[
            (f"nbllm:{endpoint_fingerprint(ep)[:16]}:{ep.name}:{c}", c, r)
            for ep, c, r in zip(sent, conc, rpm, strict=True)
        ]
        if client is not None
        else [],
    )
    return cases.map_partitions(_run_partition, spec, meta=meta, align_dataframes=False)


_JUDGE = "judge:"  # the secrets plugin's key prefix for a judge's endpoint


def _strip_judge_keys(scorers: Any, keys: dict[str, Any]) -> Any:
    """``scorers`` with each LLM judge's Endpoint key taken out (into ``keys``, for the plugin):
    a judge given as an Endpoint with a literal key would otherwise be pickled into the graph."""
    from ..scorers import Judge, PairwiseJudge

    items = list(scorers) if isinstance(scorers, (list, tuple)) else [scorers]
    out = []
    for s in items:
        if isinstance(s, (Judge, PairwiseJudge)) and isinstance(s.model, Endpoint) and s.model.secret:
            keys[_JUDGE + s.model.name] = s.model.secret
            s = dataclasses.replace(s, model=s.model.replace(api_key=None))
        out.append(s)
    return out if isinstance(scorers, (list, tuple)) else out[0]


def _restore_judge_keys(scorers: Any) -> Any:
    """On the worker: the judges' keys back from the secrets plugin."""
    from ..scorers import Judge, PairwiseJudge

    items = list(scorers) if isinstance(scorers, (list, tuple)) else [scorers]
    out = []
    for s in items:
        if isinstance(s, (Judge, PairwiseJudge)) and isinstance(s.model, Endpoint):
            key: Any = _WORKER_KEYS.get(_JUDGE + s.model.name)
            raw = key.reveal() if hasattr(key, "reveal") else key
            if raw:
                remember(raw)
                s = dataclasses.replace(s, model=s.model.replace(api_key=raw))
        out.append(s)
    return out if isinstance(scorers, (list, tuple)) else out[0]


def _limits(opts: dict[str, Any], eps: list[Endpoint]) -> tuple[list[int], list[float | None]]:
    from .._evaluation.plan import _concurrency, _per_model, _rpm

    conc = opts.get("concurrency", 8)
    rate = opts.get("rate_limit")
    return _per_model(conc, eps, 8, "concurrency", _concurrency), _per_model(
        rate, eps, None, "rate_limit", _rpm
    )


def _cache_path(cache: Any) -> str | None:
    """The cache as a path the workers open (a Cache object cannot travel)."""
    if cache is None or cache is False:
        return None
    if cache is True:
        return str(default_cache_path())
    if isinstance(cache, Cache):
        return str(cache.path)
    return str(os.fspath(cache))


# ---- on the worker ----------------------------------------------------------------------------


def _run_partition(part: pd.DataFrame, spec: _Spec, partition_info: dict[str, Any] | None = None) -> Any:
    from .._evaluation.api import _finish_sync, _start
    from .._evaluation.plan import make_plan
    from .._evaluation.run import run_blocking

    number = partition_info["number"] if partition_info else 0
    frame = part.reset_index() if spec.keep_index else part.reset_index(drop=True)
    eps = []
    for ep, keyed in zip(spec.endpoints, spec.keyed, strict=True):
        if keyed:
            key: Any = _WORKER_KEYS.get(ep.name)
            raw = key.reveal() if hasattr(key, "reveal") else key
            if raw:
                remember(raw)
            ep = ep.replace(api_key=raw)
        eps.append(ep)
    opts = {**spec.opts, "cache": spec.cache if spec.cache is not None else False}
    if opts.get("scorers"):
        opts["scorers"] = _restore_judge_keys(opts["scorers"])
    try:
        plan = make_plan(frame, eps, spec.prompt, **opts)
    except Exception as exc:  # a prompt function or template failing on this partition's rows:
        # its rows carry the error; the graph (and the other partitions) go on
        return _error_frame(frame, spec, error_text(exc), number)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=2 * sum(plan.concurrency) + 2)
    try:
        out, stats, runner = _start(plan)
        if spec.gates:
            runner.gates = [_ClusterGate(name, leases, rpm, pool) for name, leases, rpm in spec.gates]
        runner.flush_rows = FLUSH_ROWS
        if stats.done < stats.total:
            run_blocking(runner.run(), stop=lambda: runner.stop("interrupted"))
        df = _finish_sync(plan, out, stats)
    finally:
        plan.close()
        pool.shutdown(wait=False)
    df["case"] = df["case"] + spec.offsets[number]
    return _like_meta(df, spec.meta)


def _like_meta(df: pd.DataFrame, meta: pd.DataFrame) -> pd.DataFrame:
    df.attrs.clear()
    df = df[list(meta.columns)]
    for name, dtype in meta.dtypes.items():
        if df[name].dtype != dtype:
            df[name] = df[name].astype(dtype)
    return df


def _error_frame(frame: pd.DataFrame, spec: _Spec, error: str, number: int) -> pd.DataFrame:
    """Every row of a partition that could not be planned, with ``error`` set."""
    import pandas as pd

    meta = spec.meta
    n_eps = len(spec.endpoints)
    reps = int(spec.opts.get("repeats", 1))
    rows = len(frame) * n_eps * reps
    data: dict[str, Any] = {}
    for name in meta.columns:
        if name == "case":
            data[name] = [spec.offsets[number] + c for c in range(len(frame)) for _ in range(n_eps * reps)]
        elif name in frame.columns:
            data[name] = [v for v in frame[name].tolist() for _ in range(n_eps * reps)]
        elif name == "model":
            data[name] = [ep.name for _ in range(len(frame)) for ep in spec.endpoints for _ in range(reps)]
        elif name == "repeat":
            data[name] = [r for _ in range(len(frame) * n_eps) for r in range(reps)]
        elif name == "error":
            data[name] = [error] * rows
        elif str(meta[name].dtype) == "string":
            data[name] = [""] * rows
        elif name in ("tokens_estimated", "cached"):
            data[name] = [False] * rows
        else:
            data[name] = [None] * rows
    return pd.DataFrame(data).astype(dict(meta.dtypes))


def _distributed() -> Any:
    import distributed

    return distributed


class _ClusterGate(Gate):
    """A lease of the endpoint's cluster-wide semaphore around each call, after a shared
    rate-limit slot. The blocking ``distributed`` calls run in ``pool`` (sized for every worker
    coroutine of the partition, so a waiting acquire never starves a release)."""

    def __init__(
        self, name: str, leases: int, rpm: float | None, pool: concurrent.futures.ThreadPoolExecutor
    ) -> None:
        dist: Any = _distributed()
        self.sem = dist.Semaphore(max_leases=leases, name=name)
        self.rate = _SharedRate(name, rpm) if rpm else None
        self.pool = pool

    async def enter(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self.pool, self.sem.acquire)
        if self.rate is not None:
            at = await loop.run_in_executor(self.pool, self.rate.slot)
            delay = at - time.time()
            if delay > 0:
                await asyncio.sleep(delay)

    async def leave(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self.pool, self.sem.release)


class _SharedRate:
    """Call starts ``60/rpm`` s apart across the cluster: the next free start time lives in a
    ``distributed.Variable``, read and advanced under a ``distributed.Lock``."""

    def __init__(self, name: str, rpm: float) -> None:
        dist: Any = _distributed()
        self.lock = dist.Lock(name + ":rate-lock")
        self.next = dist.Variable(name + ":rate-next")
        self.interval = 60.0 / rpm

    def slot(self) -> float:
        """Take the next start time (wall clock); the caller sleeps until then."""
        with self.lock:
            try:
                nxt = float(self.next.get(timeout=0.05))
            except (TimeoutError, asyncio.TimeoutError):
                nxt = 0.0
            at = max(time.time(), nxt)
            self.next.set(at + self.interval)
            return at
