"""Pure statistics for comparing models: intervals and paired tests, numpy only (no I/O).

Every function here is checked against scipy / statsmodels on fixed data and against
hand-computed small cases (tests/test_stats.py); scipy and statsmodels are test-only.

- ``wilson(k, n, level)``: the Wilson score interval of a proportion (no continuity correction;
  statsmodels ``proportion_confint(method="wilson")``).
- ``bootstrap_ci(x, level, ...)``: the bootstrap interval of a mean over the rows of ``x`` (the
  cases), percentile (default) or BCa, from ``numpy.random.default_rng(seed)``; it draws the
  resamples exactly as ``scipy.stats.bootstrap`` does, so with the same seed both give the
  same interval. A paired bootstrap of a mean difference is ``bootstrap_ci(a - b)``: each
  resample keeps a case's two scores together.
- ``mcnemar(b, c)``: the exact McNemar test: two-sided binomial test of ``b`` successes in
  ``b + c`` discordant pairs with p = 1/2, ``p = min(1, 2 * P(X <= min(b, c)))``
  (statsmodels ``mcnemar(exact=True)``; not the mid-p variant).
- ``wilcoxon(d)``: the Wilcoxon signed-rank test with ``scipy.stats.wilcoxon``'s defaults
  (zeros dropped: ``zero_method="wilcox"``; no continuity correction; ``method="auto"``):
  ``"exact"`` for n <= 50 without ties or zeros; ``"exact-permutation"`` (all 2^n sign flips:
  what scipy's permutation test enumerates) for n <= 13 with ties or zeros; ``"normal"``
  otherwise (normal approximation with the tie correction of the variance). n counts the zeros.
- ``rank_biserial(d)``: the matched-pairs rank-biserial correlation ``(R+ - R-) / (R+ + R-)``
  (zeros dropped), in [-1, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    FloatArray = npt.NDArray[np.float64]
    BoolArray = npt.NDArray[np.bool_]

__all__ = [
    "DEFAULT_RESAMPLES",
    "DEFAULT_SEED",
    "TestResult",
    "bootstrap_ci",
    "check_level",
    "mcnemar",
    "rank_biserial",
    "wilcoxon",
    "wilson",
]

DEFAULT_RESAMPLES = 2000
DEFAULT_SEED = 0
_BATCH_CELLS = 1_000_000  # index cells per resampling batch (8 MB): bounded memory for any n


@dataclass(frozen=True)
class TestResult:
    """A test's statistic, two-sided p-value and how it was computed (``method``)."""

    statistic: float
    pvalue: float
    method: str


def check_level(level: Any) -> float:
    from .._base.validate import check_number

    level = check_number("level", level, above=0)
    if not level < 1:
        from .._base.exceptions import UsageError

        raise UsageError(f"must be between 0 and 1 (e.g. 0.95), got {level!r}", field="level")
    return float(level)


def _z(level: float) -> float:
    return NormalDist().inv_cdf(0.5 + level / 2)


def wilson(k: float, n: float, level: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval for ``k`` successes in ``n`` trials (NaNs when n == 0)."""
    if n <= 0:
        return (math.nan, math.nan)
    z = _z(level)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def _means_of_resamples(x: FloatArray, resamples: int, seed: int) -> FloatArray:
    """The mean of each bootstrap resample of ``x`` (indices drawn as scipy draws them)."""
    import numpy as np

    n = len(x)
    rng = np.random.default_rng(seed)
    batch = max(1, _BATCH_CELLS // n)
    out = np.empty(resamples)
    for start in range(0, resamples, batch):
        size = min(batch, resamples - start)
        idx = rng.integers(0, n, (size, n))
        out[start : start + size] = x[idx].mean(axis=-1)
    return out


def bootstrap_ci(
    x: Any,
    level: float = 0.95,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    method: str = "percentile",
) -> tuple[float, float]:
    """The bootstrap confidence interval of the mean of ``x`` (NaNs dropped; NaNs when empty).

    ``method``: ``"percentile"`` (the alpha/2 and 1 - alpha/2 quantiles of the resampled means,
    linear interpolation) or ``"bca"`` (bias-corrected and accelerated, the acceleration from
    the jackknife). All values equal: the interval is that value."""
    import numpy as np

    if method not in ("percentile", "bca"):
        from .._base.exceptions import UsageError

        raise UsageError(f"must be 'percentile' or 'bca', got {method!r}", field="method")
    arr = np.asarray(x, dtype=float)
    arr = arr[~np.isnan(arr)]
    n = len(arr)
    if n == 0:
        return (math.nan, math.nan)
    if np.all(arr == arr[0]):
        return (float(arr[0]), float(arr[0]))
    theta = _means_of_resamples(arr, resamples, seed)
    alpha = (1 - level) / 2
    lo_q, hi_q = alpha, 1 - alpha
    if method == "bca":
        lo_q, hi_q = _bca_quantiles(arr, theta, alpha)
    lo, hi = np.quantile(theta, [lo_q, hi_q])
    return (float(lo), float(hi))


def _bca_quantiles(x: FloatArray, theta: FloatArray, alpha: float) -> tuple[float, float]:
    """The BCa-adjusted quantile levels (as scipy.stats.bootstrap(method="BCa") for the mean)."""
    import numpy as np

    nd = NormalDist()
    observed = float(x.mean())
    share = (np.count_nonzero(theta < observed) + np.count_nonzero(theta <= observed)) / (2 * len(theta))
    if share <= 0 or share >= 1:
        return (math.nan, math.nan)
    z0 = nd.inv_cdf(share)
    n = len(x)
    jack = (x.sum() - x) / (n - 1)  # leave-one-out means
    dev = jack.mean() - jack
    den = 6 * (dev**2).sum() ** 1.5
    a = float((dev**3).sum() / den) if den else 0.0
    out = []
    for q in (alpha, 1 - alpha):
        zq = nd.inv_cdf(q)
        out.append(nd.cdf(z0 + (z0 + zq) / (1 - a * (z0 + zq))))
    return (out[0], out[1])


def _binom_cdf_half(k: int, n: int) -> float:
    """P(X <= k) for X ~ Binomial(n, 1/2), exactly (integer arithmetic, then one division)."""
    return float(sum(math.comb(n, i) for i in range(k + 1)) / 2**n)


def mcnemar(b: int, c: int) -> TestResult:
    """Exact McNemar test on the discordant pairs: ``b`` (only A passed), ``c`` (only B passed).
    The statistic is ``min(b, c)``; with no discordant pair p = 1."""
    b, c = int(b), int(c)
    n = b + c
    if n == 0:
        return TestResult(0.0, 1.0, "mcnemar-exact")
    k = min(b, c)
    return TestResult(float(k), min(1.0, 2 * _binom_cdf_half(k, n)), "mcnemar-exact")


def _signed_ranks(d: FloatArray) -> tuple[FloatArray, BoolArray, bool]:
    """Average ranks of |d| over the non-zero differences, their signs' mask, and whether
    any |d| ties."""
    import numpy as np

    nz = d[d != 0]
    absd = np.abs(nz)
    order = np.argsort(absd, kind="mergesort")
    sorted_abs = absd[order]
    ranks = np.empty(len(nz))
    i, ties = 0, False
    while i < len(nz):
        j = i
        while j + 1 < len(nz) and sorted_abs[j + 1] == sorted_abs[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j + 2) / 2  # the average of ranks i+1 .. j+1
        ties = ties or j > i
        i = j + 1
    return ranks, nz > 0, ties


def _signflip_p(ranks: FloatArray, r_plus: float) -> float:
    """Two-sided p of R+ over all 2^n equally likely sign assignments of ``ranks``:
    ``min(1, 2 * min(P(T >= R+), P(T <= R+)))`` (counts of subset sums, by dynamic programming
    on doubled ranks, which are integers)."""
    doubled = [round(2 * r) for r in ranks]
    counts = [0] * (sum(doubled) + 1)
    counts[0] = 1
    top = 0
    for r in doubled:
        for s in range(top, -1, -1):
            if counts[s]:
                counts[s + r] += counts[s]
        top += r
    total = 2 ** len(doubled)
    t = 2 * r_plus
    lower = sum(c for s, c in enumerate(counts) if s <= t + 1e-9)
    upper = sum(c for s, c in enumerate(counts) if s >= t - 1e-9)
    return float(min(1.0, 2 * min(lower, upper) / total))


def wilcoxon(d: Any) -> TestResult:
    """Wilcoxon signed-rank test of the paired differences ``d`` (NaNs dropped), as
    ``scipy.stats.wilcoxon(d)`` with its defaults. The statistic is ``min(R+, R-)``."""
    import numpy as np

    arr = np.asarray(d, dtype=float)
    arr = arr[~np.isnan(arr)]
    n = len(arr)
    ranks, pos, ties = _signed_ranks(arr)
    zeros = n - len(ranks)
    if len(ranks) == 0:
        return TestResult(math.nan, math.nan, "none")
    r_plus = float(ranks[pos].sum())
    r_minus = float(ranks[~pos].sum())
    stat = min(r_plus, r_minus)
    if n <= 50 and not ties and not zeros:
        return TestResult(stat, _signflip_p(ranks, r_plus), "exact")
    if n <= 13:
        return TestResult(stat, _signflip_p(ranks, r_plus), "exact-permutation")
    m = len(ranks)
    mean = m * (m + 1) / 4
    _, tie_counts = np.unique(ranks, return_counts=True)
    var = (m * (m + 1) * (2 * m + 1) - ((tie_counts**3 - tie_counts).sum()) / 2) / 24
    if var <= 0:
        return TestResult(stat, 1.0, "normal")
    z = (r_plus - mean) / math.sqrt(var)
    return TestResult(stat, min(1.0, math.erfc(abs(z) / math.sqrt(2))), "normal")


def rank_biserial(d: Any) -> float:
    """Matched-pairs rank-biserial correlation of the differences ``d`` (NaN when all zero)."""
    import numpy as np

    arr = np.asarray(d, dtype=float)
    ranks, pos, _ = _signed_ranks(arr[~np.isnan(arr)])
    total = float(ranks.sum())
    if total == 0:
        return math.nan
    return float((ranks[pos].sum() - ranks[~pos].sum()) / total)
