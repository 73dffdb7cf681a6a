"""``evaluate(cases, ..., output=DIR)``: partitions read, run and written one at a time; resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import nbllm
from nbllm._evaluation import api as _eval  # the in-memory run each partition goes through
from nbllm._scale import partitions as _eval_partitions

pytest.importorskip("pyarrow")


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(_eval_partitions, "PARTITION_ROWS", 40)
    monkeypatch.setattr(_eval_partitions.iter_partitions, "__defaults__", (40,))
    return 40


def _cases(start: int, n: int) -> pd.DataFrame:
    return pd.DataFrame({"q": [f"q{i}" for i in range(start, start + n)], "k": range(start, start + n)})


def _parquet_dataset(d: Path, sizes: list[int]) -> Path:
    d.mkdir()
    start = 0
    for i, n in enumerate(sizes):
        _cases(start, n).to_parquet(d / f"f{i}.parquet", index=False)
        start += n
    return d


def test_a_parquet_glob_runs_in_partitions_with_the_rows_of_the_pandas_path(
    demo: nbllm.DemoServer, tmp_path: Path, small_parts: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _parquet_dataset(tmp_path / "src", [100, 30, 70])
    eps = [nbllm.Endpoint(name=m, url=demo.url, model=m) for m in ("a", "b")]
    sizes: list[int] = []
    real = _eval.evaluate

    def spy(cases: Any, *a: Any, **kw: Any) -> Any:
        if isinstance(cases, pd.DataFrame):  # a partition (not the outer call with the glob)
            sizes.append(len(cases))
        return real(cases, *a, **kw)

    monkeypatch.setattr(_eval, "evaluate", spy)
    res = nbllm.evaluate(str(src / "*.parquet"), eps, "Say {q}", output=tmp_path / "out", progress=False)
    monkeypatch.setattr(_eval, "evaluate", real)
    assert max(sizes) <= small_parts and sum(sizes) == 200  # never more than a partition at once
    assert res.rows == 400 and res.partitions == len(sizes) == 6 and res.skipped == 0
    got = nbllm.load_results(tmp_path / "out")
    whole = nbllm.evaluate(pd.concat([_cases(0, 200)]), eps, "Say {q}", cache=False, progress=False)
    assert got.dtypes.to_dict() == whole.dtypes.to_dict()
    keep = ["case", "q", "k", "model", "prompt", "output", "error"]
    pd.testing.assert_frame_equal(got[keep], whole[keep])  # same order, global case numbers
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == ["_nbllm.json", *[f"part-{i:05d}.parquet" for i in range(6)]]  # no temp left


def test_rerun_skips_finished_partitions_without_any_call(demo: nbllm.DemoServer, tmp_path: Path) -> None:
    ep = nbllm.Endpoint(name="d", url=demo.url)
    chunks = [_cases(i * 25, 25) for i in range(4)]
    out = tmp_path / "out"
    first = nbllm.evaluate(iter(chunks[:2]), ep, "Say {q}", output=out, cache=False, progress=False)
    assert first.partitions == 2
    before = demo.request_count
    again = nbllm.evaluate(iter(chunks), ep, "Say {q}", output=out, cache=False, progress=False)
    # without a cache, only the manifest can have spared the first two partitions
    assert demo.request_count - before == 50
    assert again.skipped == 2 and again.rows == 100
    df = nbllm.load_results(out)
    assert df["case"].tolist() == list(range(100)) and df["q"].tolist() == [f"q{i}" for i in range(100)]


def test_an_unfinished_partition_resumes_from_the_cache(demo: nbllm.DemoServer, tmp_path: Path) -> None:
    ep = nbllm.Endpoint(name="d", url=demo.url)
    cases = _cases(0, 60)
    # what a killed run left behind: 20 answers of the partition saved to the cache, no part file
    nbllm.evaluate(cases.iloc[:20], ep, "Say {q}", cache=tmp_path / "c", progress=False)
    before = demo.request_count
    res = nbllm.evaluate(cases, ep, "Say {q}", output=tmp_path / "out", cache=tmp_path / "c", progress=False)
    assert demo.request_count - before == 40
    df = res.load()
    assert len(df) == 60 and int(df["cached"].sum()) == 20


def test_a_partition_with_errors_is_run_again_on_resume(demo: nbllm.DemoServer, tmp_path: Path) -> None:
    ep = nbllm.Endpoint(name="d", url=demo.url, retries=0)
    chunks = [pd.DataFrame({"q": ["a", "b"]}), pd.DataFrame({"q": ["c", "d [[once:500]]"]})]
    out = tmp_path / "out"
    first = nbllm.evaluate(iter(chunks), ep, "Say {q}", output=out, cache=tmp_path / "c", progress=False)
    assert first.errors == 1
    manifest = json.loads((out / "_nbllm.json").read_text())
    assert manifest["parts"]["part-00001.parquet"]["errors"] == 1
    before = demo.request_count
    again = nbllm.evaluate(iter(chunks), ep, "Say {q}", output=out, cache=tmp_path / "c", progress=False)
    assert demo.request_count - before == 1  # only the errored row; its partition mate is cached
    assert again.skipped == 1 and again.errors == 0
    assert (nbllm.load_results(out)["error"] == "").all()


def test_csv_and_jsonl_sources(demo: nbllm.DemoServer, tmp_path: Path, small_parts: int) -> None:
    ep = nbllm.Endpoint(name="d", url=demo.url)
    _cases(0, 50).to_csv(tmp_path / "a.csv", index=False)
    _cases(50, 50).to_json(tmp_path / "b.jsonl", orient="records", lines=True)
    src = tmp_path / "src"
    src.mkdir()
    for name in ("a.csv", "b.jsonl"):
        (tmp_path / name).rename(src / name)
    res = nbllm.evaluate(src, ep, "Say {q}", output=tmp_path / "out", cache=False, progress=False)
    assert res.rows == 100 and res.partitions == 4  # 40 + 10 per file
    df = nbllm.load_results(tmp_path / "out")
    assert df["k"].tolist() == list(range(100)) and (df["error"] == "").all()


def test_an_output_of_another_run_is_refused(demo: nbllm.DemoServer, tmp_path: Path) -> None:
    ep = nbllm.Endpoint(name="d", url=demo.url)
    nbllm.evaluate(_cases(0, 5), ep, "Say {q}", output=tmp_path / "out", cache=False, progress=False)
    with pytest.raises(nbllm.ConfigError, match="different evaluation"):
        nbllm.evaluate(_cases(0, 5), ep, "Shout {q}", output=tmp_path / "out", cache=False, progress=False)
    with pytest.raises(nbllm.ConfigError, match=r"no \.parquet"):
        nbllm.evaluate(str(tmp_path / "nothing*.parquet"), ep, "{q}", output=tmp_path / "o2", progress=False)
