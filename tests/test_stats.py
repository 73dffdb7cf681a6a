"""nbllm._evaluation.stats against scipy / statsmodels on fixed data, and against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nbllm._evaluation import stats as _stats

scipy_stats = pytest.importorskip("scipy.stats")
sm_prop = pytest.importorskip("statsmodels.stats.proportion")
sm_contingency = pytest.importorskip("statsmodels.stats.contingency_tables")


# --- Wilson ---------------------------------------------------------------------------------


def test_wilson_by_hand() -> None:
    # k=0, n=10, z=1.959964: centre = (z^2/20)/(1+z^2/10), half the same -> [0, 2*centre]
    z = 1.959963984540054
    centre = (z * z / 20) / (1 + z * z / 10)
    lo, hi = _stats.wilson(0, 10)
    assert lo == pytest.approx(0.0, abs=1e-15) and hi == pytest.approx(2 * centre, abs=1e-12)
    assert hi == pytest.approx(0.27753279, abs=1e-8)
    assert _stats.wilson(5, 10)[0] + _stats.wilson(5, 10)[1] == pytest.approx(1.0)  # symmetric at 1/2
    assert all(math.isnan(v) for v in _stats.wilson(0, 0))


@pytest.mark.parametrize(("k", "n"), [(0, 1), (1, 1), (3, 7), (17, 20), (50, 100), (999, 1000), (1, 3000)])
@pytest.mark.parametrize("level", [0.8, 0.95, 0.99])
def test_wilson_matches_statsmodels(k: int, n: int, level: float) -> None:
    want = sm_prop.proportion_confint(k, n, alpha=1 - level, method="wilson")
    assert _stats.wilson(k, n, level) == pytest.approx(want, abs=1e-12)


# --- bootstrap ------------------------------------------------------------------------------

DATA = np.array([0.1, 0.9, 0.4, 0.4, 1.0, 0.0, 0.75, 0.3, 0.8, 0.55, 0.2, 0.95, 0.6])


@pytest.mark.parametrize("method", ["percentile", "bca"])
@pytest.mark.parametrize("level", [0.9, 0.95])
def test_bootstrap_matches_scipy_with_the_same_seed(method: str, level: float) -> None:
    res = scipy_stats.bootstrap(
        (DATA,),
        np.mean,
        n_resamples=2000,
        confidence_level=level,
        method="BCa" if method == "bca" else method,
        rng=np.random.default_rng(7),
    )
    got = _stats.bootstrap_ci(DATA, level, resamples=2000, seed=7, method=method)
    want = (res.confidence_interval.low, res.confidence_interval.high)
    assert got == pytest.approx(want, abs=1e-12)


def test_bootstrap_batches_draw_the_same_resamples(monkeypatch: pytest.MonkeyPatch) -> None:
    whole = _stats.bootstrap_ci(DATA, resamples=500, seed=3)
    monkeypatch.setattr(_stats, "_BATCH_CELLS", 13 * 7)  # 7 resamples per batch
    assert _stats.bootstrap_ci(DATA, resamples=500, seed=3) == pytest.approx(whole, abs=1e-15)


def test_bootstrap_edge_cases() -> None:
    assert _stats.bootstrap_ci([0.5, 0.5, 0.5]) == (0.5, 0.5)
    assert all(math.isnan(v) for v in _stats.bootstrap_ci([]))
    assert _stats.bootstrap_ci([1.0, float("nan"), 1.0]) == (1.0, 1.0)  # NaN dropped
    lo, hi = _stats.bootstrap_ci(DATA)
    assert lo < DATA.mean() < hi
    # a different seed moves the interval a little, the same seed never does
    assert _stats.bootstrap_ci(DATA, seed=1) != _stats.bootstrap_ci(DATA, seed=2)
    assert _stats.bootstrap_ci(DATA, seed=1) == _stats.bootstrap_ci(DATA, seed=1)
    with pytest.raises(ValueError, match="percentile"):
        _stats.bootstrap_ci(DATA, method="basic")


def test_bootstrap_two_point_by_hand() -> None:
    # x = [0, 1]: a resample's mean is 0, 1/2 or 1 with probabilities 1/4, 1/2, 1/4, so the
    # 95% percentile interval of many resamples is [0, 1] and the 40% one is [1/2, 1/2].
    assert _stats.bootstrap_ci([0.0, 1.0], 0.95, resamples=4000) == (0.0, 1.0)
    assert _stats.bootstrap_ci([0.0, 1.0], 0.4, resamples=4000) == (0.5, 0.5)


# --- McNemar --------------------------------------------------------------------------------


def test_mcnemar_by_hand() -> None:
    # b=0, c=5: p = 2 * P(X <= 0 | n=5) = 2/32
    assert _stats.mcnemar(0, 5).pvalue == pytest.approx(2 / 32)
    # b=2, c=3: 2 * P(X <= 2 | 5) = 2 * 16/32 = 1
    assert _stats.mcnemar(2, 3).pvalue == 1.0
    # b=1, c=9: 2 * (1 + 10)/1024
    assert _stats.mcnemar(1, 9).pvalue == pytest.approx(22 / 1024)
    assert _stats.mcnemar(0, 0).pvalue == 1.0


@pytest.mark.parametrize(("b", "c"), [(0, 1), (1, 9), (4, 4), (7, 20), (30, 12), (100, 140)])
def test_mcnemar_matches_statsmodels(b: int, c: int) -> None:
    want = sm_contingency.mcnemar([[10, b], [c, 10]], exact=True)
    got = _stats.mcnemar(b, c)
    assert got.pvalue == pytest.approx(want.pvalue, rel=1e-12)
    assert got.statistic == want.statistic
    assert got.method == "mcnemar-exact"


# --- Wilcoxon -------------------------------------------------------------------------------


def test_wilcoxon_by_hand() -> None:
    # d = [1, 2, 3]: ranks 1, 2, 3 all positive: R+ = 6, the largest of 8 equally likely sums,
    # so p = 2 * 1/8
    r = _stats.wilcoxon([1.0, 2.0, 3.0])
    assert (r.statistic, r.pvalue, r.method) == (0.0, 0.25, "exact")
    # d = [1, -2, 3]: R+ = 4; sums of subsets of {1,2,3}: 0,1,2,3,3,4,5,6 -> P(T>=4) = 3/8
    r = _stats.wilcoxon([1.0, -2.0, 3.0])
    assert (r.statistic, r.pvalue) == (2.0, 0.75)
    assert _stats.rank_biserial([1.0, 2.0, 3.0]) == 1.0
    assert _stats.rank_biserial([1.0, -2.0, 3.0]) == pytest.approx((4 - 2) / 6)
    assert math.isnan(_stats.wilcoxon([0.0, 0.0]).pvalue)


RNG = np.random.default_rng(12345)
CASES = {
    "exact small": RNG.normal(0.3, 1, 9),
    "exact n=50": RNG.normal(0.2, 1, 50),
    "ties small": np.array([0.5, 0.5, -0.5, 1.0, 1.0, 1.0, -0.25, 0.25, 0.5]),
    "zeros small": np.array([0.0, 0.5, 0.2, -0.1, 0.3, 0.0, 0.7, 0.4]),
    "ties n=13": np.round(RNG.normal(0.2, 1, 13), 1),
    "ties n=30": np.round(RNG.normal(0.3, 1, 30), 1),
    "n=80": RNG.normal(0.1, 1, 80),
    "scores 0/1 n=40": np.array([1, 0, 0, 1, -1, 0, 1, 1] * 5, dtype=float),
    "zeros n=60": np.concatenate([np.zeros(10), RNG.normal(0.2, 1, 50)]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_wilcoxon_matches_scipy_defaults(name: str) -> None:
    d = CASES[name]
    want = scipy_stats.wilcoxon(d)
    got = _stats.wilcoxon(d)
    assert got.statistic == pytest.approx(want.statistic, abs=1e-9)
    assert got.pvalue == pytest.approx(want.pvalue, rel=1e-9, abs=1e-15), got.method


def test_wilcoxon_modes() -> None:
    assert _stats.wilcoxon(CASES["exact n=50"]).method == "exact"
    assert _stats.wilcoxon(CASES["ties small"]).method == "exact-permutation"
    assert _stats.wilcoxon(CASES["ties n=30"]).method == "normal"
    assert _stats.wilcoxon(CASES["n=80"]).method == "normal"


def test_rank_biserial_matches_its_definition_on_scipy_ranks() -> None:
    d = CASES["ties n=30"]
    nz = d[d != 0]
    ranks = scipy_stats.rankdata(np.abs(nz))
    want = (ranks[nz > 0].sum() - ranks[nz < 0].sum()) / ranks.sum()
    assert _stats.rank_biserial(d) == pytest.approx(want, abs=1e-12)


def test_level_is_checked() -> None:
    assert _stats.check_level(0.9) == 0.9
    for bad in (0, 1, 1.5, -0.1, "0.9", True):
        with pytest.raises((ValueError, TypeError), match="level"):
            _stats.check_level(bad)
