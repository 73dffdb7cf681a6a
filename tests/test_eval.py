"""nbllm.evaluate against the real demo server, which injects faults per request."""

from __future__ import annotations

import _thread
import asyncio
import json
import math
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

import nbllm
from nbllm import scorers
from nbllm._evaluation.cache import Cache, default_cache_path
from nbllm._scale import evaluate as _eval
from nbllm._server.demo import DemoServer


@pytest.fixture(autouse=True)
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NBLLM_CONFIG_DIR", str(tmp_path))
    return tmp_path


@pytest.fixture(scope="module")
def srv() -> Iterator[DemoServer]:
    with DemoServer() as server:
        yield server


def add(srv: DemoServer, name: str, **kw: Any) -> nbllm.Endpoint:
    ep = nbllm.Endpoint(name=name, url=srv.url, **{"timeout": 5.0, "retries": 2, **kw})
    nbllm.registry().add(ep)
    return ep


def calls_made(srv: DemoServer, before: int) -> int:
    return srv.request_count - before


FAULTS = [
    # (prompt, error prefix, retries with retries=2, partial output)
    ("ok", "", 0, "You said: ok"),
    ("[[fault:500]] a", "HTTPStatusError: HTTP 500: The demo server was asked to fail", 2, ""),
    ("[[fault:429:0.05]] b", "HTTPStatusError: HTTP 429", 2, ""),
    ("[[fault:drop]] c", "StreamError: the connection dropped mid-response", 0, "You said: c"),
    ("[[fault:malformed]] d", "StreamError: malformed chunk (not JSON)", 0, "You "),
    (
        "[[fault:error-event]] e",
        "StreamError: the server reported an error mid-stream: model overloaded",
        0,
        "You said: ",
    ),
    ("[[fault:hang]] f", "TimeoutError: no answer within 0.3 s", 2, ""),
    ("[[once:500]] g", "", 1, "You said: g"),
    ("[[once:429:0.2]] h", "", 1, "You said: h"),
]


def test_every_fault_kind_is_a_row_with_its_error_and_retries(srv: DemoServer) -> None:
    add(srv, "f", timeout=0.3)
    prompts = [p for p, *_ in FAULTS]
    t0 = time.perf_counter()
    df = nbllm.evaluate(prompts, "f", concurrency=16, progress=False, cache=False)
    elapsed = time.perf_counter() - t0
    assert len(df) == len(FAULTS)
    assert df["prompt"].tolist() == prompts and "input" not in df.columns
    for (prompt, error, retries, output), row in zip(FAULTS, df.itertuples(), strict=True):
        assert row.prompt == prompt
        if error:
            assert row.error.startswith(error), (prompt, row.error)
            assert row.finish_reason == "error"
            assert math.isnan(row.cost) and row.prompt_tokens is pd.NA
        else:
            assert row.error == "" and row.finish_reason == "stop"
            assert row.prompt_tokens > 0 and row.completion_tokens > 0
        assert row.retries == retries, prompt
        assert row.output == output, prompt
        assert not row.cached
    assert elapsed >= 0.2  # [[once:429:0.2]] waited for its Retry-After
    by_prompt = df.set_index("prompt")
    assert by_prompt.loc["[[once:429:0.2]] h", "latency_s"] < 0.2  # latency of the answered attempt
    assert math.isnan(by_prompt.loc["[[fault:500]] a", "ttft_s"])


def test_dtypes_are_exact(srv: DemoServer) -> None:
    add(srv, "d", price_prompt=0.5, price_completion=1.0)
    df = nbllm.evaluate(
        [{"q": "hi", "n": 1, "answer": "You said: hi"}],
        "d",
        prompt="{q}",
        expected="answer",
        scorers=[scorers.exact_match],
        progress=False,
    )
    want = {
        "case": "Int64",
        "q": "string",
        "n": "int64",
        "answer": "string",
        "model": "string",
        "params": "string",
        "repeat": "Int64",
        "prompt": "string",
        "output": "string",
        "error": "string",
        "latency_s": "float64",
        "ttft_s": "float64",
        "prompt_tokens": "Int64",
        "completion_tokens": "Int64",
        "tokens_estimated": "boolean",
        "cost": "float64",
        "finish_reason": "string",
        "retries": "Int64",
        "cached": "boolean",
        "score_exact_match": "float64",
    }
    assert list(df.columns) == list(want)
    for col, dtype in want.items():
        assert df.dtypes[col] == dtype, col
    row = df.iloc[0]
    assert row["score_exact_match"] == 1.0
    assert row["cost"] == pytest.approx((row["prompt_tokens"] * 0.5 + row["completion_tokens"] * 1.0) / 1000)
    assert 0 < row["ttft_s"] <= row["latency_s"]


def test_grid_params_and_repeats_give_one_row_each(srv: DemoServer) -> None:
    add(srv, "a")
    add(srv, "b", stream="off")
    before = srv.request_count
    df = nbllm.evaluate(
        ["x", "y", "z"],
        ["a", "b"],
        params={"max_tokens": 2},
        grid={"temperature": [0, 0.5]},
        repeats=2,
        progress=False,
    )
    assert len(df) == 3 * 2 * 2 * 2 == calls_made(srv, before)
    assert set(df["params"]) == {'{"max_tokens":2,"temperature":0}', '{"max_tokens":2,"temperature":0.5}'}
    assert sorted(df["repeat"].unique().tolist()) == [0, 1]
    assert (df["output"] == "You said: ").all()  # max_tokens=2 reached the server
    assert (df["finish_reason"] == "length").all()
    sent = [r["json"] for r in srv.requests[-24:]]
    assert {r.get("temperature") for r in sent} == {0, 0.5}
    off = df[df["model"] == "b"]
    # stream "off": the first text arrives with the whole body, so ttft is (about) the latency
    assert ((off["latency_s"] - off["ttft_s"]).abs() < 0.005).all()
    s = df.llm.summary()
    assert list(s.index.names) == ["model", "params"] and len(s) == 4


def test_concurrency_per_endpoint(srv: DemoServer) -> None:
    add(srv, "slow")
    cases = [f"[[ttft:0.2]] c{i}" for i in range(6)]
    t0 = time.perf_counter()
    nbllm.evaluate(cases, "slow", concurrency=2, progress=False, cache=False)
    serial = time.perf_counter() - t0
    t0 = time.perf_counter()
    nbllm.evaluate(cases, "slow", concurrency=6, progress=False, cache=False)
    parallel = time.perf_counter() - t0
    assert serial >= 0.6 and parallel < 0.5


def test_rate_limit_is_respected(srv: DemoServer) -> None:
    add(srv, "r")
    t0 = time.perf_counter()
    df = nbllm.evaluate(
        [f"c{i}" for i in range(7)], "r", rate_limit=600, concurrency=8, progress=False, cache=False
    )
    assert time.perf_counter() - t0 >= 0.6 - 0.02  # 7 starts, 0.1 s apart
    assert (df["error"] == "").all()


def test_budget_stops_the_run_cleanly(srv: DemoServer) -> None:
    add(srv, "p", price_prompt=1.0, price_completion=1.0)
    cases = [f"case {i}" for i in range(12)]
    df = nbllm.evaluate(cases, "p", concurrency=1, budget=0.015, progress=False)
    # each call: 2 prompt + 4 completion tokens at $1 per 1K = $0.006 -> stop after the 3rd
    done = df[df["error"] == ""]
    assert len(df) == 12 and len(done) == 3
    assert (df.loc[df["error"] != "", "error"] == "budget reached").all()
    assert df.attrs["nbllm"]["stopped"] == "budget reached"
    assert done["cost"].sum() == pytest.approx(0.018)


def test_interrupt_returns_finished_rows_and_resume_skips_them(srv: DemoServer) -> None:
    add(srv, "i")
    cases = [f"[[ttft:0.4]] case {i}" for i in range(8)]
    nbllm.evaluate(["warm"], "i", progress=False, cache=False)  # imports done before the timer
    before = srv.request_count
    timer = threading.Timer(0.6, _thread.interrupt_main)
    timer.start()
    t0 = time.perf_counter()
    try:
        df = nbllm.evaluate(cases, "i", concurrency=2, progress=False)
    finally:
        timer.cancel()
    assert time.perf_counter() - t0 < 1.3  # stopped promptly, not after all 8 x 0.4 s / 2
    assert len(df) == 8
    finished = df[df["error"] == ""]
    assert len(finished) == 2  # the first two answered at 0.4 s; the next two were in flight
    assert set(df.loc[df["error"] != "", "error"]) == {"interrupted"}
    assert df.attrs["nbllm"]["stopped"] == "interrupted"
    sent = calls_made(srv, before)
    assert sent == 4
    before = srv.request_count
    again = nbllm.evaluate(cases, "i", concurrency=8, progress=False)
    assert calls_made(srv, before) == 6  # only the unfinished ones
    assert (again["error"] == "").all()
    assert again["cached"].tolist() == [c in set(finished["case"]) for c in again["case"]]
    cached = again[again["cached"]].set_index("case")["latency_s"]
    assert cached.to_dict() == finished.set_index("case")["latency_s"].to_dict()  # original latency


def test_partly_failed_run_resumes_and_errors_are_never_cached(srv: DemoServer, config_dir: Path) -> None:
    add(srv, "o", retries=0)
    cases = ["fine", "[[once:drop]] flaky", "[[fault:500]] broken"]
    df = nbllm.evaluate(cases, "o", progress=False)
    assert df["error"].str.startswith(("", "StreamError", "HTTPStatusError")).all()
    assert (df["error"] != "").tolist() == [False, True, True]
    store = Cache(default_cache_path())
    assert len(store) == 1  # only the answer
    store.close()
    before = srv.request_count
    again = nbllm.evaluate(cases, "o", progress=False)
    assert calls_made(srv, before) == 2
    assert again["cached"].tolist() == [True, False, False]
    assert again["error"].tolist()[:2] == ["", ""] and again["output"][1] == "You said: flaky"


def test_cache_key_follows_request_not_endpoint_name(srv: DemoServer, tmp_path: Path) -> None:
    add(srv, "k1")
    path = tmp_path / "mycache.sqlite3"
    nbllm.evaluate(["same"], "k1", cache=path, progress=False)
    before = srv.request_count
    again = nbllm.evaluate(["same"], "k1", cache=path, params={"max_tokens": 3}, progress=False)
    assert calls_made(srv, before) == 1 and not again["cached"][0]  # params are in the key
    nbllm.registry().update("k1", timeout=9.0)  # not in the key
    assert nbllm.evaluate(["same"], "k1", cache=path, progress=False)["cached"][0]


def test_python_scorers_and_rescore_make_no_calls(srv: DemoServer) -> None:
    add(srv, "s")
    cases = pd.DataFrame({"q": ["2+2", '{"a": 1}', "abc"], "gold": ["You said: 2+2", "1", "B"]})

    def starts_you(output: str) -> bool:
        return output.startswith("You")

    def length_ratio(output: str, expected: Any, row: dict[str, Any]) -> float:
        return len(output) / (len(str(expected)) + len(row["q"]))

    df = nbllm.evaluate(
        cases,
        "s",
        prompt="{q}",
        expected="gold",
        progress=False,
        scorers=[
            scorers.exact_match,
            scorers.contains(ignore_case=True),
            scorers.regex(r"\d"),
            starts_you,
            length_ratio,
        ],
    )
    assert df["score_exact_match"].tolist() == [1.0, 0.0, 0.0]
    assert df["score_contains"].tolist() == [1.0, 1.0, 1.0]  # "b" in "abc" case-insensitively
    assert df["score_regex"].tolist() == [1.0, 1.0, 0.0]
    assert df["score_starts_you"].tolist() == [1.0, 1.0, 1.0]
    assert df["score_length_ratio"][2] == pytest.approx(len("You said: abc") / 4)
    before = srv.request_count
    re = df.llm.rescore([scorers.json_valid, scorers.numeric_close(0.5), "exact_match"])
    assert calls_made(srv, before) == 0
    nc = re["score_numeric_close"].tolist()
    assert nc[:2] == [1.0, 1.0] and math.isnan(nc[2])  # 2 vs 2, 1 vs 1; "B" has no number
    assert re["score_exact_match"].tolist() == df["score_exact_match"].tolist()
    assert "score_json_valid" not in df.columns  # rescore returns a copy


def test_scorer_units() -> None:
    em = scorers.as_scorer(scorers.exact_match)
    assert em(" a ", "a") == 1.0 and em("A", "a") == 0.0 and math.isnan(em("a", None))
    assert scorers.exact_match(ignore_case=True)("A", "a") == 1.0
    assert scorers.contains(ignore_case=False)("abc", "B") == 0.0
    assert scorers.regex()("order 66", r"\d+") == 1.0
    jv = scorers.json_valid()
    assert jv('```json\n{"a": [1]}\n```') == 1.0 and jv("{a: 1}") == 0.0
    nc = scorers.numeric_close(0.01)
    assert nc("It is 1,234.001.", "1234") == 1.0 and nc("none", "3") == 0.0 and math.isnan(nc("3", "x"))
    assert scorers.numeric_close(rel_tol=0.1)("105", "100") == 1.0
    with pytest.raises(ValueError, match="lambda"):
        scorers.scorer(lambda o: 1)
    assert scorers.scorer(lambda o: True, name="yes")("x") == 1.0
    with pytest.raises(ValueError, match="unknown scorer"):
        scorers.as_scorer("nope")
    judge = scorers.llm_judge("x", scale=5)
    assert judge.parse("fine.\nSCORE: 4") == 0.8 and judge.parse("Score = 9 of 5") == 1.0
    assert math.isnan(judge.parse("no idea"))


def test_a_raising_scorer_scores_nan_and_keeps_the_rows(
    srv: DemoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    add(srv, "x")

    def broken(output: str) -> float:
        raise RuntimeError("bug")

    df = nbllm.evaluate(["a", "b"], "x", scorers=[broken], progress=False)
    assert df["score_broken"].isna().all() and (df["error"] == "").all()
    assert "scorer 'broken' raised on 2 row(s)" in capsys.readouterr().err


def test_llm_judge_tokens_and_cost_are_kept_apart(srv: DemoServer) -> None:
    add(srv, "m")  # no prices: the model's cost stays NaN
    add(srv, "judge", price_prompt=1.0, price_completion=2.0)
    judge = scorers.llm_judge("judge", template="Grade {output} against {expected}. SCORE: {grade}")
    cases = [
        {"q": "one", "answer": "You said: one", "grade": 7},
        {"q": "[[fault:500]] two", "answer": "x", "grade": 3},
    ]
    before = srv.request_count
    df = nbllm.evaluate(
        cases,
        "m",
        prompt="{q}",
        expected="answer",
        progress=False,
        scorers=[scorers.exact_match, judge],
        cache=False,
    )
    assert calls_made(srv, before) == 1 + 3 + 1  # 2 model calls (one retried twice) + 1 judge call
    ok = df.iloc[0]
    assert ok["score_judge"] == pytest.approx(0.7) and ok["score_exact_match"] == 1.0
    assert math.isnan(ok["cost"]) and ok["judge_cost"] > 0
    assert ok["judge_cost"] == pytest.approx(
        (ok["judge_prompt_tokens"] * 1.0 + ok["judge_completion_tokens"] * 2.0) / 1000
    )
    assert ok["judge_output"].startswith("You said: Grade You said: one against You said: one")
    assert ok["judge_error"] == ""
    failed = df.iloc[1]
    assert math.isnan(failed["score_judge"]) and failed["judge_prompt_tokens"] is pd.NA
    assert df.dtypes["judge_prompt_tokens"] == "Int64" and df.dtypes["judge_cost"] == "float64"
    assert df.llm.summary()["judge_cost"].iloc[0] == pytest.approx(ok["judge_cost"])


def _mixed_frame(srv: DemoServer) -> pd.DataFrame:
    add(srv, "e1", price_prompt=0.1, price_completion=0.2)
    add(srv, "e2", retries=0)
    cases = pd.DataFrame(
        {
            "text": ["hi", "NA", "[[fault:500]] x", "[[once:429:0.01]] y"],
            "n": [1, 2, 3, 4],
            "w": [0.5, None, 1.5, 2.5],
            "gold": ["You said: hi", "You said: NA", "-", "You said: y"],
        }
    )
    return nbllm.evaluate(
        cases,
        ["e1", "e2"],
        prompt="{text}",
        expected="gold",
        progress=False,
        system="Answer {n}",
        scorers=[scorers.exact_match, scorers.contains],
    )


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_export_and_reload_give_the_same_frame(srv: DemoServer, tmp_path: Path, suffix: str) -> None:
    df = _mixed_frame(srv)
    path = df.llm.save(tmp_path / f"results{suffix}")
    back = nbllm.load_results(path)
    assert_frame_equal(back, df, check_exact=suffix != ".csv")
    if suffix == ".jsonl":
        first = json.loads(path.read_text().splitlines()[0])
        assert first["model"] == "e1" and first["error"] == "" and first["w"] == 0.5


def test_summary_matches_hand_computation(srv: DemoServer) -> None:
    df = _mixed_frame(srv)
    s = df.llm.summary()
    for model in ("e1", "e2"):
        g = df[df["model"] == model]
        ok = g[g["error"] == ""]
        row = s.loc[model]
        assert row["calls"] == 4
        assert row["errors"] == (g["error"] != "").sum()
        assert row["error_rate"] == pytest.approx(row["errors"] / 4)
        assert row["score_exact_match"] == pytest.approx(ok["score_exact_match"].mean())
        passed = ((g["error"] == "") & (g["score_exact_match"] >= 0.5) & (g["score_contains"] >= 0.5)).sum()
        assert row["pass_rate"] == pytest.approx(passed / 4)
        lat = sorted(ok["latency_s"])
        assert row["latency_p50"] == pytest.approx(pd.Series(lat).quantile(0.5))
        assert row["ttft_p95"] == pytest.approx(ok["ttft_s"].quantile(0.95))
        assert row["prompt_tokens"] == ok["prompt_tokens"].sum()
        assert row["retries"] == g["retries"].sum()
    assert s.loc["e1", "cost"] == pytest.approx(df.loc[df["model"] == "e1", "cost"].sum())
    assert math.isnan(s.loc["e2", "cost"])
    assert s.loc["e1", "errors"] == 1


def test_side_by_side_and_plot(srv: DemoServer) -> None:
    df = _mixed_frame(srv)
    wide = df.llm.side_by_side()
    assert list(wide.columns) == ["text", "n", "w", "gold", "prompt", "e1", "e2"]
    assert len(wide) == 4
    assert wide.loc[0, "e1"] == "You said: hi"
    scores = df.llm.side_by_side("score_exact_match")
    assert scores.loc[0, "e2"] == 1.0
    fig = df.llm.plot()
    assert len(fig.axes) == 2
    assert fig.axes[0].get_title().startswith("mean score")
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    assert buf.getvalue()[:4] == b"\x89PNG"


def test_case_sources(srv: DemoServer, tmp_path: Path) -> None:
    add(srv, "c")
    csv = tmp_path / "cases.csv"
    pd.DataFrame({"question": ["a", "b"], "expected": ["You said: a", "no"]}).to_csv(csv, index=False)
    df = nbllm.evaluate(csv, "c", prompt="{question}", scorers=["exact_match"], progress=False)
    assert df["score_exact_match"].tolist() == [1.0, 0.0]  # "expected" column used by default
    jsonl = tmp_path / "cases.jsonl"
    jsonl.write_text('{"prompt": "p1", "id": 7}\n{"prompt": "p2", "id": 8}\n')
    df = nbllm.evaluate(jsonl, "c", progress=False)
    assert df["prompt"].tolist() == ["p1", "p2"] and df["id"].tolist() == [7, 8]
    indexed = pd.DataFrame({"text": ["z"]}, index=pd.Index(["row-a"], name="key"))
    df = nbllm.evaluate(indexed, "c", prompt="{text} {key}", progress=False)
    assert df["key"][0] == "row-a" and df["output"][0] == "You said: z row-a"
    clash = [{"model": "mine", "output": "theirs", "q": "hi"}]
    df = nbllm.evaluate(clash, "c", prompt="{q} {model}", progress=False)
    assert df["case_model"][0] == "mine" and df["model"][0] == "c" and df["case_output"][0] == "theirs"
    msgs = nbllm.evaluate(
        ["m"], "c", prompt=lambda row: [{"role": "user", "content": row["input"] + "!"}], progress=False
    )
    assert msgs["output"][0] == "You said: m!" and json.loads(msgs["prompt"][0])[0]["content"] == "m!"


def test_bad_arguments_fail_before_any_call(srv: DemoServer) -> None:
    add(srv, "v")
    before = srv.request_count
    with pytest.raises(nbllm.ConfigError, match=r"\{lang\}, which is not a column"):
        nbllm.evaluate([{"text": "x"}], "v", prompt="{text} into {lang}", progress=False)
    with pytest.raises(nbllm.UnknownModelError):
        nbllm.evaluate(["x"], ["v", "nope"], progress=False)
    with pytest.raises(nbllm.ConfigError, match="expected"):
        nbllm.evaluate(["x"], "v", expected="gold", progress=False)
    with pytest.raises(nbllm.ConfigError, match="given twice"):
        nbllm.evaluate(["x"], ["v", "v"], progress=False)
    assert calls_made(srv, before) == 0
    # JSON braces in a template are left alone; {{ }} are literal braces
    df = nbllm.evaluate([{"t": "x"}], "v", prompt='{"a": 1} {{t}} {t}', progress=False, cache=False)
    assert df["prompt"][0] == '{"a": 1} {t} x'


def test_progress_output_and_preflight_estimate(srv: DemoServer, capsys: pytest.CaptureFixture[str]) -> None:
    add(srv, "pp", price_prompt=1.0, price_completion=2.0, params={"max_tokens": 10})
    nbllm.evaluate(["abcdefgh", "[[fault:500]] x"], "pp", cache=False)
    out, err = capsys.readouterr()
    assert out.startswith("nbllm.evaluate: 2 calls (2 cases x 1 model); 0 cached, 2 to run")
    assert "est. cost ≤ $0.046 " in out  # (2 + 4 prompt tokens) x $1/1K + 2 x 10 x $2/1K
    assert "2/2 calls" in err and "errors 1" in err and "retries 2" in err
    nbllm.evaluate(["y"], "pp", progress=False)
    assert capsys.readouterr() == ("", "")


def test_aevaluate_runs_on_the_callers_loop(srv: DemoServer) -> None:
    add(srv, "as")

    async def main() -> pd.DataFrame:
        loop = asyncio.get_running_loop()
        df = await nbllm.aevaluate(["a", "[[fault:500]] b"], "as", progress=False)
        assert asyncio.get_running_loop() is loop
        return df

    df = asyncio.run(main())
    assert df["output"][0] == "You said: a" and df["error"][1].startswith("HTTPStatusError")


def test_aevaluate_cancelled_saves_finished_rows(srv: DemoServer) -> None:
    add(srv, "ac")
    cases = ["quick", "[[ttft:5]] slow"]

    async def main() -> None:
        task = asyncio.ensure_future(nbllm.aevaluate(cases, "ac", progress=False))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    before = srv.request_count
    df = nbllm.evaluate(cases[:1], "ac", progress=False)
    assert df["cached"][0] and calls_made(srv, before) == 0


def test_evaluate_works_while_a_loop_runs_in_this_thread(srv: DemoServer) -> None:
    add(srv, "nb")

    async def cell() -> pd.DataFrame:  # like a notebook cell: ipykernel's loop is running
        return nbllm.evaluate(["x"], "nb", progress=False)

    assert asyncio.run(cell())["output"][0] == "You said: x"


def test_handler_provider_endpoints_work() -> None:
    class Upper(nbllm.Handler):
        def completion(self, messages: list[dict[str, Any]], **params: Any) -> str:
            return str(messages[-1]["content"]).upper()

        async def astreaming(self, messages: list[dict[str, Any]], **params: Any) -> Any:
            for ch in str(messages[-1]["content"]).upper():
                yield ch

    nbllm.register_provider("upper-eval", Upper())
    df = nbllm.evaluate(["abc"], "upper-eval/x", progress=False)
    assert df["output"][0] == "ABC" and df["model"][0] == "upper-eval/x"


def test_import_nbllm_does_not_import_pandas() -> None:
    code = (
        "import sys, nbllm, nbllm.scorers; "
        "assert not {'pandas', 'ipywidgets', 'matplotlib'} & set(sys.modules), 'heavy import'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_evaluate_is_exported() -> None:
    assert nbllm.evaluate is _eval.evaluate and nbllm.aevaluate is _eval.aevaluate


def test_an_interrupt_while_the_progress_is_drawn_still_stops_the_run_cleanly() -> None:
    """Ctrl-C can land while run_blocking redraws the progress (inside its wait-timeout
    handler): it must still call stop() and wait for the run, not escape as a bare
    KeyboardInterrupt (seen in a kernel under load: the cell failed instead of returning rows)."""
    from nbllm._evaluation.run import run_blocking
    from nbllm._io.loop import background_loop

    stopped = asyncio.Event()
    loop = background_loop()

    async def run() -> str:
        await asyncio.wait_for(stopped.wait(), 30)
        return "wrapped up"

    class Bar:
        calls = 0

        def update(self, force: bool = False) -> None:
            Bar.calls += 1
            if Bar.calls == 2:
                raise KeyboardInterrupt

    stops: list[int] = []

    def stop() -> None:
        stops.append(1)
        loop.call_soon(stopped.set)

    assert run_blocking(run(), stop=stop, progress=Bar()) == "wrapped up"  # type: ignore[arg-type]
    assert stops == [1]
