"""The statistics of comparisons: a mean with its t interval, paired differences, p-values, detectable effects.

Seeds are the unit: a method's accuracy on a seed is the mean over the same evaluation problems, so two
methods run with the same seeds are compared seed by seed (paired: the problems and seeds match):

    d_s = acc_A(s) - acc_R(s),   mean d ± t_{0.975, n-1} * sd(d) / sqrt(n),   t = mean d / (sd(d) / sqrt(n))

The minimum detectable difference of a comparison (two-sided alpha 0.05, power 0.8) is
``(t_{0.975, n-1} + t_{0.8, n-1}) * sd(d) / sqrt(n)``: a true difference smaller than that is likely missed.
No scipy: Student's t quantile by a Cornish-Fisher expansion (exact for 1 and 2 degrees of freedom), its
distribution function by the regularised incomplete beta function (a continued fraction).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd


def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (e.g. p=0.975 for a 95% interval)."""
    if not 0 < p < 1:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if df < 1:
        raise ValueError(f"df must be >= 1, got {df}")
    if df == 1:  # Cauchy
        return math.tan(math.pi * (p - 0.5))
    if df == 2:
        return (2 * p - 1) / math.sqrt(2 * p * (1 - p))
    z = NormalDist().inv_cdf(p)
    n = float(df)
    return (z + (z**3 + z) / (4 * n) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * n**2)
            + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * n**3)
            + (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / (92160 * n**4))


def _betacf(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz), to 1e-12."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                    -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-12:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1) / (a + b + 2):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1 - x) / b


def t_two_sided_p(t: float, df: int) -> float:
    """P(|T| >= |t|) for Student's t with ``df`` degrees of freedom."""
    if not math.isfinite(t):
        return 0.0 if math.isinf(t) else math.nan
    return _betainc(df / 2, 0.5, df / (df + t * t))


def _finite(values) -> np.ndarray:
    x = np.asarray(pd.to_numeric(pd.Series(values, dtype="object"), errors="coerce"), dtype=float)
    return x[np.isfinite(x)]


def mean_ci(values, level: float = 0.95) -> tuple[float, float, int]:
    """``(mean, half_width, n)`` of the finite values: mean ± t_{(1+level)/2, n-1} * s / sqrt(n).

    ``s`` is the sample std (Bessel, n - 1). The half width is NaN for fewer than two values.
    """
    x = _finite(values)
    n = len(x)
    if n == 0:
        return math.nan, math.nan, 0
    if n == 1:
        return float(x[0]), math.nan, 1
    half = t_quantile((1 + level) / 2, n - 1) * float(x.std(ddof=1)) / math.sqrt(n)
    return float(x.mean()), half, n


@dataclass
class Paired:
    """A paired comparison of A against a reference R over the seeds both have."""

    n: int  # seeds in common
    mean_a: float
    mean_ref: float
    diff: float  # mean over seeds of acc_A - acc_R
    half_width: float  # 95% t half-width of diff
    p: float  # two-sided paired t-test
    mdd: float  # minimum detectable difference (alpha 0.05 two-sided, power 0.8)

    def to_dict(self) -> dict:
        return asdict(self)


def paired(a: dict, ref: dict, *, level: float = 0.95, power: float = 0.8) -> Paired:
    """Compare per-seed values ``a`` and ``ref`` ({seed: value}) over their common seeds."""
    seeds = sorted(set(a) & set(ref))
    d = np.array([a[s] - ref[s] for s in seeds], dtype=float)
    n = len(d)
    mean_a = float(np.mean([a[s] for s in seeds])) if n else math.nan
    mean_r = float(np.mean([ref[s] for s in seeds])) if n else math.nan
    if n < 2:
        return Paired(n, mean_a, mean_r, float(d.mean()) if n else math.nan, math.nan, math.nan, math.nan)
    sd = float(d.std(ddof=1))
    se = sd / math.sqrt(n)
    half = t_quantile((1 + level) / 2, n - 1) * se
    if se == 0:
        p = 1.0 if d.mean() == 0 else 0.0
    else:
        p = t_two_sided_p(float(d.mean()) / se, n - 1)
    mdd = (t_quantile((1 + level) / 2, n - 1) + t_quantile(power, n - 1)) * se
    return Paired(n, mean_a, mean_r, float(d.mean()), half, p, mdd)


def verdict(comparison: Paired, *, expect: str = "higher") -> str:
    """``reproduced`` when the interval of A - R lies on the expected side of 0, ``not reproduced`` when it lies
    on the other side, ``mixed`` when it straddles 0 (the data cannot tell at this power)."""
    if comparison.n < 2 or not math.isfinite(comparison.half_width):
        return "mixed"
    low, high = comparison.diff - comparison.half_width, comparison.diff + comparison.half_width
    sign = 1 if expect == "higher" else -1
    if sign * low > 0 and sign * high > 0:
        return "reproduced"
    if sign * low < 0 and sign * high < 0:
        return "not reproduced"
    return "mixed"
