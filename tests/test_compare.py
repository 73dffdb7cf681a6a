"""summary() intervals, df.llm.compare / disagreements, the pairwise judge, repeats and the cache."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

import nbllm
import nbllm._scale.evaluate
from nbllm import scorers
from nbllm._evaluation import stats as _stats
from nbllm._server.demo import DemoServer

scipy_stats = pytest.importorskip("scipy.stats")
sm_prop = pytest.importorskip("statsmodels.stats.proportion")
sm_tables = pytest.importorskip("statsmodels.stats.contingency_tables")


def frame(scores: dict[str, list[list[float]]], *, errors: dict[str, set[int]] | None = None) -> pd.DataFrame:
    """A result frame: ``scores[model][case]`` lists one score per repeat (column score_s)."""
    rows = []
    for model, per_case in scores.items():
        for case, reps in enumerate(per_case):
            for r, v in enumerate(reps):
                failed = case in (errors or {}).get(model, set())
                rows.append(
                    {
                        "case": case,
                        "model": model,
                        "params": "{}",
                        "repeat": r,
                        "prompt": f"question {case}",
                        "output": f"{model}-{case}-{r}",
                        "error": "HTTPStatusError: HTTP 500" if failed else "",
                        "latency_s": 0.1,
                        "ttft_s": 0.05,
                        "prompt_tokens": 1,
                        "completion_tokens": 1,
                        "cost": np.nan,
                        "retries": 0,
                        "cached": False,
                        "score_s": np.nan if failed else v,
                    }
                )
    df = pd.DataFrame(rows)
    for col in ("case", "repeat", "prompt_tokens", "completion_tokens", "retries"):
        df[col] = df[col].astype("Int64")
    return df


RNG = np.random.default_rng(2024)
A_BIN = (RNG.random(30) < 0.8).astype(float)
B_BIN = (RNG.random(30) < 0.5).astype(float)
A_CONT = RNG.random(30).round(3)
B_CONT = (RNG.random(30) * 0.8).round(3)


def one(values: Any) -> list[list[float]]:
    return [[float(v)] for v in values]


# --- summary --------------------------------------------------------------------------------


def test_summary_pass_rate_has_the_wilson_interval_of_statsmodels() -> None:
    df = frame({"a": one(A_BIN), "b": one(B_BIN)}, errors={"b": {0, 1}})
    s = df.llm.summary(level=0.9)
    for model in ("a", "b"):
        g = df[df["model"] == model]
        k = int(((g["error"] == "") & (g["score_s"] >= 0.5)).sum())
        want = sm_prop.proportion_confint(k, len(g), alpha=0.1, method="wilson")
        assert (s.loc[model, "pass_rate_ci_low"], s.loc[model, "pass_rate_ci_high"]) == pytest.approx(want)
    assert "score_s_spread" not in s.columns  # one repeat: no spread


def test_summary_score_interval_is_the_bootstrap_over_cases() -> None:
    df = frame({"a": one(A_CONT)})
    s = df.llm.summary(seed=5)
    want = scipy_stats.bootstrap(
        (A_CONT,), np.mean, n_resamples=2000, method="percentile", rng=np.random.default_rng(5)
    )
    row = s.loc["a"]
    assert row["score_s"] == pytest.approx(A_CONT.mean())
    assert (row["score_s_ci_low"], row["score_s_ci_high"]) == pytest.approx(
        (want.confidence_interval.low, want.confidence_interval.high), abs=1e-12
    )
    assert row["score_s_ci_low"] < row["score_s"] < row["score_s_ci_high"]
    narrow = df.llm.summary(level=0.5, seed=5).loc["a"]
    assert (
        row["score_s_ci_low"] < narrow["score_s_ci_low"] < narrow["score_s_ci_high"] < row["score_s_ci_high"]
    )


def test_summary_with_repeats_resamples_cases_not_rows() -> None:
    # 4 cases x 3 repeats: case means 0, 1/3, 2/3, 1; spread: mean within-case std (ddof=1)
    reps = [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [1.0, 1.0, 1.0]]
    s = frame({"a": reps}).llm.summary().loc["a"]
    case_means = np.array([0, 1 / 3, 2 / 3, 1])
    assert s["score_s"] == pytest.approx(0.5)
    assert (s["score_s_ci_low"], s["score_s_ci_high"]) == pytest.approx(_stats.bootstrap_ci(case_means))
    rows_ci = _stats.bootstrap_ci(np.array(reps).ravel())
    assert (s["score_s_ci_low"], s["score_s_ci_high"]) != pytest.approx(rows_ci)  # rows would be too narrow
    std_13 = float(np.std([1, 0, 0], ddof=1))
    assert s["score_s_spread"] == pytest.approx((0 + std_13 + std_13 + 0) / 4)
    assert s["pass_rate_spread"] == pytest.approx(s["score_s_spread"])
    assert (s["pass_rate_ci_low"], s["pass_rate_ci_high"]) == pytest.approx(_stats.bootstrap_ci(case_means))


def test_summary_rejects_a_bad_level() -> None:
    df = frame({"a": one(A_BIN)})
    for bad in (1, 0, 95, "0.95"):
        with pytest.raises(ValueError, match="level"):
            df.llm.summary(level=bad)


# --- compare --------------------------------------------------------------------------------


def test_compare_pass_fail_uses_exact_mcnemar() -> None:
    df = frame({"a": one(A_BIN), "b": one(B_BIN)})
    c = df.llm.compare("a", "b")
    row = c.loc["score_s"]
    only_a = int(((A_BIN == 1) & (B_BIN == 0)).sum())
    only_b = int(((A_BIN == 0) & (B_BIN == 1)).sum())
    table = [
        [int(((A_BIN == 1) & (B_BIN == 1)).sum()), only_a],
        [only_b, int(((A_BIN == 0) & (B_BIN == 0)).sum())],
    ]
    assert row["test"] == "mcnemar-exact"
    assert row["p_value"] == pytest.approx(sm_tables.mcnemar(table, exact=True).pvalue)
    assert (row["wins"], row["losses"], row["ties"]) == (only_a, only_b, 30 - only_a - only_b)
    assert row["n"] == 30 and row["mean_a"] == pytest.approx(A_BIN.mean())
    assert row["diff"] == pytest.approx(A_BIN.mean() - B_BIN.mean()) == pytest.approx(row["effect"])
    assert row["effect_size"] == "diff_in_proportions"
    assert (row["diff_ci_low"], row["diff_ci_high"]) == pytest.approx(_stats.bootstrap_ci(A_BIN - B_BIN))
    assert list(c.index) == ["score_s", "pass"]
    assert c.loc["pass", "p_value"] == row["p_value"]  # one score: pass is that score >= 0.5


def test_compare_scores_use_wilcoxon_like_scipy() -> None:
    df = frame({"a": one(A_CONT), "b": one(B_CONT)})
    row = df.llm.compare("a", "b", scorers=["s"]).loc["score_s"]
    d = A_CONT - B_CONT
    assert row["p_value"] == pytest.approx(scipy_stats.wilcoxon(A_CONT, B_CONT).pvalue, rel=1e-9)
    assert row["test"] in ("wilcoxon-exact", "wilcoxon-normal")  # normal when |d| ties
    assert row["effect"] == pytest.approx(_stats.rank_biserial(d)) and row["effect_size"] == "rank_biserial"
    assert row["diff_ci_low"] < row["diff"] < row["diff_ci_high"]
    # swapping a and b mirrors everything
    rev = df.llm.compare("b", "a", scorers="score_s").loc["score_s"]
    assert rev["diff"] == pytest.approx(-row["diff"]) and rev["p_value"] == pytest.approx(row["p_value"])
    assert (rev["wins"], rev["losses"]) == (row["losses"], row["wins"])
    assert rev["effect"] == pytest.approx(-row["effect"])


def test_compare_by_hand() -> None:
    # a-b per case: +1, +0.5, 0, -0.25, NaN (b failed): n=4, wins 2, ties 1, losses 1
    df = frame({"a": one([1, 1, 0.5, 0.25, 1]), "b": one([0, 0.5, 0.5, 0.5, 1])}, errors={"b": {4}})
    row = df.llm.compare("a", "b", scorers=["s"]).loc["score_s"]
    assert row["n"] == 4 and (row["wins"], row["ties"], row["losses"]) == (2, 1, 1)
    assert row["diff"] == pytest.approx((1 + 0.5 + 0 - 0.25) / 4)
    # ranks of |d| over non-zero d: 0.25 -> 1, 0.5 -> 2, 1 -> 3; R+ = 5, R- = 1
    assert row["effect"] == pytest.approx((5 - 1) / 6)
    assert row["test"] == "wilcoxon-exact-permutation"  # a zero difference: scipy permutes
    assert row["p_value"] == pytest.approx(scipy_stats.wilcoxon([1, 0.5, 0, -0.25]).pvalue)


def test_compare_with_repeats_averages_each_case_first() -> None:
    a = [[1, 1], [1, 0], [1, 1], [0, 0], [1, 1], [1, 0]]
    b = [[0, 0], [0, 0], [1, 0], [0, 0], [0, 1], [0, 0]]
    row = frame({"a": a, "b": b}).llm.compare("a", "b", scorers=["s"]).loc["score_s"]
    d = np.mean(a, axis=1) - np.mean(b, axis=1)
    assert row["n"] == 6 and row["diff"] == pytest.approx(d.mean())
    assert row["test"].startswith("wilcoxon")  # case means are no longer 0/1
    assert row["p_value"] == pytest.approx(scipy_stats.wilcoxon(d).pvalue)
    with pytest.raises(ValueError, match="mcnemar"):
        frame({"a": a, "b": b}).llm.compare("a", "b", scorers=["s"], test="mcnemar")


def test_compare_every_pair_and_bad_arguments() -> None:
    df = frame({"a": one(A_BIN), "b": one(B_BIN), "c": one(A_CONT > 0.5)})
    c = df.llm.compare()
    assert list(c.index.names) == ["a", "b", "scorer"]
    assert [k[:2] for k in c.index[::2]] == [("a", "b"), ("a", "c"), ("b", "c")]
    assert c.loc[("a", "b", "score_s"), "p_value"] == df.llm.compare("a", "b").loc["score_s", "p_value"]
    with pytest.raises(ValueError, match="'z' is not a model in this frame; models: a, b, c"):
        df.llm.compare("a", "z")
    with pytest.raises(ValueError, match="same model"):
        df.llm.compare("a", "a")
    with pytest.raises(ValueError, match="both a and b"):
        df.llm.compare("a")
    with pytest.raises(ValueError, match="'nope' is not a score"):
        df.llm.compare("a", "b", scorers=["nope"])
    with pytest.raises(ValueError, match="test"):
        df.llm.compare("a", "b", test="t")


def test_compare_names_params_sets() -> None:
    df = pd.concat(
        [frame({"m": one(A_BIN)}).assign(params='{"t":0}'), frame({"m": one(B_BIN)}).assign(params='{"t":1}')]
    )
    c = df.llm.compare(("m", '{"t":0}'), ("m", '{"t":1}'))
    assert c.loc["score_s", "a"] == 'm {"t":0}' and c.loc["score_s", "mean_b"] == pytest.approx(B_BIN.mean())
    with pytest.raises(ValueError, match=r"several params sets: pass \(model, params\)"):
        df.llm.compare("m", ("m", '{"t":1}'))


def test_disagreements_are_the_largest_differences() -> None:
    df = frame({"a": one([1, 0.2, 0.5, 0.9]), "b": one([0.1, 0.9, 0.5, 0.8])})
    d = df.llm.disagreements("a", "b", n=2)
    assert d["case"].tolist() == [0, 1]
    assert d["diff"].tolist() == pytest.approx([0.9, -0.7])
    assert d["output_a"].tolist() == ["a-0-0", "a-1-0"] and d["output_b"].tolist() == ["b-0-0", "b-1-0"]
    everything = df.llm.disagreements("a", "b", scorer="s")
    assert everything["case"].tolist() == [0, 1, 3]  # equal scores are not disagreements
    assert df.llm.disagreements("a", "b", scorer="pass")["case"].tolist() == [0, 1]


# --- against the demo server: repeats and the cache; the pairwise judge ----------------------


@pytest.fixture(scope="module")
def srv() -> Iterator[DemoServer]:
    with DemoServer() as server:
        yield server


def add(srv: DemoServer, name: str, **kw: Any) -> nbllm.Endpoint:
    ep = nbllm.Endpoint(name=name, url=srv.url, **{"timeout": 5.0, "retries": 0, **kw})
    nbllm.registry().add(ep)
    return ep


def test_repeats_make_every_call_once_then_come_from_the_cache(srv: DemoServer) -> None:
    # the cache key holds the repeat index: 5 repeats are 5 calls, not 1 call reused 5 times
    add(srv, "rep")
    before = srv.request_count
    first = nbllm.evaluate(["x", "y"], "rep", repeats=5, progress=False)
    assert srv.request_count - before == 10 and not first["cached"].any()
    assert sorted(first["repeat"].tolist()) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    before = srv.request_count
    again = nbllm.evaluate(["x", "y"], "rep", repeats=5, progress=False)
    assert srv.request_count - before == 0 and again["cached"].all()
    before = srv.request_count
    more = nbllm.evaluate(["x", "y"], "rep", repeats=6, progress=False)
    assert srv.request_count - before == 2  # only the new repeat index is called
    assert int((~more["cached"]).sum()) == 2


class LongerWins(nbllm.Handler):
    """A judge that prefers the longer answer (a tie when equally long), whatever its position."""

    def __init__(self) -> None:
        self.prompts: list[str] = []

    def completion(self, messages: list[dict[str, Any]], **params: Any) -> Any:
        text = str(messages[-1]["content"])
        self.prompts.append(text)
        a = text.split("Answer A: ", 1)[1].split("\nAnswer B: ", 1)[0]
        b = text.split("\nAnswer B: ", 1)[1].split("\nExplain", 1)[0]
        verdict = "TIE" if len(a) == len(b) else ("A" if len(a) > len(b) else "B")
        return {
            "text": f"Longer wins.\nVERDICT: {verdict}",
            "usage": {"prompt_tokens": 10, "completion_tokens": 2},
        }


def test_pairwise_judge_with_a_python_handler_feeds_compare() -> None:
    handler = LongerWins()
    nbllm.register_provider("cmp-longer", handler)
    judge_ep = nbllm.Endpoint(name="pj", handler="cmp-longer", price_prompt=1.0, price_completion=2.0)
    df = frame({"a": one([1, 1, 1, 1, 0]), "b": one([0, 1, 0, 1, 1])}, errors={"b": {4}})
    long = (df["model"] == "a") & (df["case"] != 3)
    df.loc[long, "output"] = "a long, detailed answer"  # case 3: both "x-3-0", equally long
    judged = df.llm.judge_pairs(scorers.pairwise(judge_ep, criteria="Be thorough."), "a", "b", cache=False)
    assert len(handler.prompts) == 2 * 4  # 4 pairs without error, both orders; none for case 4
    assert "Criteria: Be thorough." in handler.prompts[0]
    by = judged.set_index(["model", "case"])["score_pairwise"]
    assert [by[("a", c)] for c in range(4)] == [1.0, 1.0, 1.0, 0.5]
    assert [by[("b", c)] for c in range(4)] == [0.0, 0.0, 0.0, 0.5]
    assert math.isnan(by[("a", 4)]) and math.isnan(by[("b", 4)])
    assert (
        judged.loc[judged["case"] == 4, "pairwise_judge_error"]
        .eq("not judged: a call of this pair failed")
        .all()
    )
    ok = judged[judged["case"] < 4]
    assert (ok["pairwise_judge_prompt_tokens"] == 10).all() and (
        ok["pairwise_judge_completion_tokens"] == 2
    ).all()
    assert ok["pairwise_judge_cost"].to_numpy() == pytest.approx([(10 * 1.0 + 2 * 2.0) / 1000] * 8)
    assert (
        ok["pairwise_judge_output"].str.endswith("VERDICT: A").sum()
        + ok["pairwise_judge_output"].str.endswith("VERDICT: B").sum()
        == 6
    )
    assert df.columns.difference(judged.columns).empty and "score_pairwise" not in df.columns  # a copy
    s = judged.llm.summary()
    assert s.loc["a", "pairwise_judge_cost"] == pytest.approx(4 * 0.014)
    c = judged.llm.compare("a", "b")
    row = c.loc["score_pairwise"]
    assert (row["n"], row["wins"], row["ties"], row["losses"]) == (4, 3, 1, 0)
    assert row["mean_a"] == pytest.approx(3.5 / 4) and row["test"].startswith("wilcoxon")


def test_pairwise_cancels_position_bias_and_is_cached(srv: DemoServer) -> None:
    add(srv, "pm")
    add(srv, "rep")
    df = nbllm.evaluate(["one", "two", "[[fault:500]] three"], ["pm", "rep"], progress=False, cache=False)
    add(srv, "biased")  # the echo server says "VERDICT: A" whatever it is shown
    judge = scorers.pairwise("biased", template="Compare {output_a} with {output_b}. VERDICT: A")
    before = srv.request_count
    judged = df.llm.judge_pairs(judge, "pm", "rep")
    assert srv.request_count - before == 2 * 2  # two pairs, both orders; the failed case is skipped
    ok = judged[judged["error"] == ""]
    assert ok["score_pairwise"].tolist() == [0.5] * 4  # "A" in both orders: a win and a loss
    assert ok["pairwise_judge_output"].str.startswith("You said: Compare You said: ").all()
    before = srv.request_count
    again = df.llm.judge_pairs(judge, "pm", "rep")
    assert srv.request_count - before == 0  # the verdicts come from the cache
    assert again["score_pairwise"].equals(judged["score_pairwise"])


def test_pairwise_is_not_a_per_row_scorer() -> None:
    judge = scorers.pairwise("x")
    assert judge.parse("hmm VERDICT: b\nverdict: tie") == "TIE" and judge.parse("no idea") is None
    with pytest.raises(ValueError, match=r"df.llm.judge_pairs\(judge, 'model_a', 'model_b'\)"):
        nbllm.evaluate(["a"], "x", scorers=[judge], progress=False)
    with pytest.raises(ValueError, match="judge_pairs"):
        nbllm.evaluate(["a"], "x", scorers={"p": judge}, progress=False)
    with pytest.raises(ValueError, match="must be a pairwise judge"):
        frame({"a": one([1]), "b": one([0])}).llm.judge_pairs(scorers.llm_judge("x"), "a", "b")
    with pytest.raises(ValueError, match="identifier"):
        scorers.pairwise("x", name="bad name")


def test_plot_draws_the_summary_intervals_as_error_bars() -> None:
    pytest.importorskip("matplotlib")
    df = frame({"a": one(A_CONT), "b": one(B_CONT)})
    s = df.llm.summary(level=0.9)
    fig = df.llm.plot(level=0.9)
    ax = fig.axes[0]
    assert "90% CI" in ax.get_title()
    from matplotlib.container import BarContainer

    bars = [c for c in ax.containers if isinstance(c, BarContainer)]  # score_s, then pass_rate
    segments = bars[0].errorbar.lines[2][0].get_segments()
    for model, seg in zip(["a", "b"], segments, strict=True):
        assert [seg[0][1], seg[1][1]] == pytest.approx(
            [s.loc[model, "score_s_ci_low"], s.loc[model, "score_s_ci_high"]]
        )
    pass_bars = bars[1].errorbar.lines[2][0].get_segments()
    assert pass_bars[0][1][1] == pytest.approx(s.loc["a", "pass_rate_ci_high"])


def test_level_none_skips_the_intervals() -> None:
    df = frame({"a": [[1.0, 0.0], [1.0, 1.0]]})
    s = df.llm.summary(level=None)
    assert not [c for c in s.columns if "_ci_" in c]
    assert s.loc["a", "score_s"] == pytest.approx(0.75) and "score_s_spread" in s.columns
    assert df.llm.plot(level=None).axes[0].get_title() == "mean score (rows without error)"


def test_no_pairs_gives_no_test_and_pairwise_scores_do_not_decide_passing() -> None:
    df = frame({"a": one([1, 1]), "b": one([0, 1])}, errors={"b": {0, 1}})
    row = df.llm.compare("a", "b", scorers=["s"]).loc["score_s"]
    assert row["n"] == 0 and row["test"] == "none" and math.isnan(row["p_value"])
    # a pairwise judge's column is relative: it is left out of pass / pass_rate
    nbllm.register_provider("cmp-longer2", LongerWins())
    ok = frame({"a": one([1, 1]), "b": one([1, 1]), "c": one([1, 0])})
    ok.loc[ok["model"] == "a", "output"] = "a longer answer"  # a wins every pair: b scores 0
    judged = ok.llm.judge_pairs(scorers.pairwise("cmp-longer2/j"), "a", "b", cache=False)
    assert judged.attrs["nbllm"]["pairwise"] == ["pairwise"]
    assert judged.loc[judged["model"] == "b", "score_pairwise"].tolist() == [0.0, 0.0]
    s = judged.llm.summary()
    assert s["pass_rate"].tolist() == [1.0, 1.0, 0.5]  # b's losses and c's NaN do not fail them
    assert judged.llm.compare("a", "c").loc["pass", "wins"] == 1


def test_two_pairwise_judges_keep_their_own_columns() -> None:
    nbllm.register_provider("cmp-longer3", LongerWins())
    judge_ep = nbllm.Endpoint(name="pj3", handler="cmp-longer3", price_prompt=1.0, price_completion=2.0)
    df = frame({"a": one([1, 1]), "b": one([1, 1]), "c": one([1, 1])})
    df.loc[df["model"] == "a", "output"] = "the longest answer"
    ab = df.llm.judge_pairs(scorers.pairwise(judge_ep), "a", "b", cache=False)
    both = ab.llm.judge_pairs(scorers.pairwise(judge_ep, name="vs_c"), "a", "c", cache=False)
    assert both.attrs["nbllm"]["pairwise"] == ["pairwise", "vs_c"]
    assert both["score_pairwise"].equals(ab["score_pairwise"])  # the first verdicts are kept
    assert both.loc[both["model"] == "c", "score_vs_c"].tolist() == [0.0, 0.0]
    s = both.llm.summary()
    assert s.loc["a", "pairwise_judge_cost"] == pytest.approx(2 * 0.014)
    assert s.loc["a", "vs_c_judge_cost"] == pytest.approx(2 * 0.014)
    assert math.isnan(s.loc["c", "pairwise_judge_cost"]) and s.loc["c", "vs_c_judge_cost"] == pytest.approx(
        0.028
    )
