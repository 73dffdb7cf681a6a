"""``evaluate`` on a real ``distributed.LocalCluster`` (2 worker processes): same rows and dtypes
as the pandas path, cluster-wide concurrency, keys never in the graph, a killed worker.

Assertions are counts and bounds (the machine is shared), never durations.
"""

from __future__ import annotations

import collections
import itertools
import os
import pickle
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import nbllm
from nbllm._scale import dask_backend as _eval_dask

dask = pytest.importorskip("dask")
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

KEY = "sk-dask-secret-7f3a9c"
CONC = 3


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    # leases of a killed worker come back after 2 s instead of 30 s (workers inherit the config)
    with (
        dask.config.set(
            {
                "distributed.scheduler.locks.lease-timeout": "2s",
                "distributed.scheduler.locks.lease-validation-interval": "0.5s",
                "distributed.scheduler.allowed-failures": 5,
            }
        ),
        distributed.LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None, silence_logs=40
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c


def _cases(n: int) -> pd.DataFrame:
    qs = [f"case {i}" + (" [[fault:400]]" if i % 97 == 5 else "") for i in range(n)]
    return pd.DataFrame({"q": qs, "n": list(range(n))})


def _endpoints(srv: nbllm.DemoServer) -> list[nbllm.Endpoint]:
    return [nbllm.Endpoint(name=m, url=srv.url, model=m, api_key=KEY, retries=1) for m in ("alpha", "beta")]


def test_2000_cases_x_2_models_every_row_with_its_error_and_at_most_concurrency_in_flight(
    client: Any, tmp_path: Path
) -> None:
    cases = _cases(2000)
    with nbllm.demo_server(api_key=KEY, first_token_delay=0.003, log_requests=True) as srv:
        eps = _endpoints(srv)
        ddf = dd.from_pandas(cases, npartitions=6)
        result = nbllm.evaluate(ddf, eps, "Say {q}", concurrency=CONC, cache=tmp_path / "c.sqlite3")
        # the key reaches the workers by plugin, never through the task graph
        graph = pickle.dumps(dict(result.__dask_graph__()))
        assert KEY.encode() not in graph
        df = result.compute()
        seen = dict(srv.max_inflight)
        local = nbllm.evaluate(cases.iloc[:5], eps, "Say {q}", concurrency=CONC, cache=False, progress=False)
    assert len(df) == 4000
    pairs = set(zip(df["case"].tolist(), df["model"].tolist(), strict=True))
    assert pairs == {(c, m) for c in range(2000) for m in ("alpha", "beta")}
    bad = df[df["error"] != ""]
    assert sorted(set(bad["case"])) == [i for i in range(2000) if i % 97 == 5]
    assert bad["error"].str.contains("HTTP 400").all() and len(bad) == 2 * len(set(bad["case"]))
    good = df[df["error"] == ""]
    assert (good["output"].str.len() > 0).all()
    # cluster-wide limit: 2 workers together never exceeded CONC requests per model
    assert set(seen) == {"alpha", "beta"} and max(seen.values()) <= CONC
    # same columns and dtypes as the pandas path
    assert list(df.columns) == list(local.columns)
    assert df.dtypes.to_dict() == local.dtypes.to_dict()
    assert result.dtypes.to_dict() == local.dtypes.to_dict()  # the lazy frame's meta too
    first = df[df["case"] < 5].sort_values(["case", "model"]).reset_index(drop=True)
    same = ["case", "q", "n", "model", "params", "repeat", "prompt", "output", "error"]
    pd.testing.assert_frame_equal(
        first[same], local.sort_values(["case", "model"]).reset_index(drop=True)[same]
    )


def test_a_worker_killed_mid_run_still_gives_every_row_and_re_calls_only_in_flight_rows(
    client: Any, tmp_path: Path
) -> None:
    cases = _cases(1200)
    cases["q"] = cases["q"].str.replace(" [[fault:400]]", "", regex=False)
    with nbllm.demo_server(api_key=KEY, first_token_delay=0.01, log_requests=True) as srv:
        ddf = dd.from_pandas(cases, npartitions=4)
        result = nbllm.evaluate(
            ddf, _endpoints(srv), "Say {q}", concurrency=CONC, cache=tmp_path / "c.sqlite3"
        )
        fut = client.compute(result)
        pids = client.run(os.getpid)
        deadline = time.monotonic() + 60
        while srv.request_count < 600 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert srv.request_count >= 600 and not fut.done()
        victim = sorted(pids.values())[0]
        os.kill(victim, signal.SIGKILL)
        df = fut.result(timeout=120)
        log = list(srv.request_log)
    assert victim not in client.run(os.getpid).values()  # it really died (the nanny started another)
    assert len(df) == 2400 and (df["error"] == "").all()
    assert set(zip(df["case"], df["model"], strict=True)) == {
        (c, m) for c in range(1200) for m in ("alpha", "beta")
    }
    counts = collections.Counter(log)
    twice = sum(n - 1 for n in counts.values() if n > 1)
    # only what the dead worker had in flight (≤ CONC per model, cluster-wide) or answered but
    # not yet committed (< FLUSH_ROWS) is called again
    assert twice <= 2 * CONC + _eval_dask.FLUSH_ROWS
    assert len(counts) == 2400


def test_the_shared_rate_limiter_spaces_starts_across_workers(client: Any) -> None:
    def take(n: int) -> list[float]:
        gate = _eval_dask._SharedRate("nbllm-test-rate", 6000.0)  # 10 ms apart
        return [gate.slot() for _ in range(n)]

    futs = [
        client.submit(take, 15, pure=False, workers=[w]) for w in sorted(client.scheduler_info()["workers"])
    ]
    slots = sorted(t for f in futs for t in f.result(timeout=60))
    assert len(slots) == 30
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert min(gaps) >= 0.01 - 1e-6  # granted start times, not measured ones: exact


def test_budget_is_refused_on_a_cluster(client: Any) -> None:
    ddf = dd.from_pandas(_cases(4), npartitions=1)
    with pytest.raises(nbllm.ConfigError, match="budget"):
        nbllm.evaluate(ddf, nbllm.Endpoint(name="x", url="http://127.0.0.1:9/v1"), "{q}", budget=1.0)


def test_a_partition_whose_prompt_fails_gives_error_rows_not_a_failed_graph(
    client: Any, demo: nbllm.DemoServer
) -> None:
    def prompt(row: dict[str, Any]) -> str:
        if row["n"] == 7:
            raise ValueError("no prompt for case 7")
        return f"Say {row['q']}"

    ddf = dd.from_pandas(_cases(20), npartitions=2)  # case 7 is in the first partition
    ep = nbllm.Endpoint(name="d", url=demo.url)
    df = nbllm.evaluate(ddf, ep, prompt, cache=False).compute()
    assert len(df) == 20 and df["case"].tolist() == list(range(20))
    first, second = df[df["case"] < 10], df[df["case"] >= 10]
    assert (first["error"] == "ValueError: no prompt for case 7").all()
    assert (second["error"] == "").all() and second["output"].str.startswith("You said: Say case").all()


def test_an_llm_judges_endpoint_key_stays_out_of_the_graph_and_reaches_the_workers(
    client: Any, tmp_path: Path
) -> None:
    """A judge given as an Endpoint with a literal key: its key travels by the secrets plugin
    like the models' (not pickled into the graph), and the judge calls on the workers carry it."""
    cases = _cases(12)
    cases["q"] = cases["q"].str.replace(" [[fault:400]]", "", regex=False)
    with nbllm.demo_server(api_key=KEY) as srv:
        judge = nbllm.scorers.llm_judge(nbllm.Endpoint(name="judge", url=srv.url, api_key=KEY, retries=0))
        ddf = dd.from_pandas(cases, npartitions=2)
        result = nbllm.evaluate(ddf, _endpoints(srv)[:1], "Say {q}", scorers=[judge], cache=False)
        assert KEY.encode() not in pickle.dumps(dict(result.__dask_graph__()))
        df = result.compute()
    assert len(df) == 12 and (df["error"] == "").all()
    # the judge was answered (the demo echoes, so no SCORE to parse): no 401, the key arrived
    assert not df["judge_error"].str.contains("HTTP|401|key").any(), df["judge_error"].tolist()
    assert (df["judge_prompt_tokens"] > 0).all()
