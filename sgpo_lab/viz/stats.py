"""The few statistics the figures need: a mean with a t confidence interval, and EMA smoothing.

No scipy: the t quantile is exact for 1 and 2 degrees of freedom and a four-term Cornish-Fisher
expansion above (within 1% of the tables from 3 degrees of freedom up). Pure numpy/pandas.
"""

from __future__ import annotations

import math
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


def mean_ci(values, level: float = 0.95) -> tuple[float, float, int]:
    """``(mean, half_width, n)`` of the finite values: mean ± t_{(1+level)/2, n-1} * s / sqrt(n).

    ``s`` is the sample std (Bessel, n - 1). The half width is NaN for fewer than two values.
    """
    x = np.asarray(pd.to_numeric(pd.Series(values, dtype="object"), errors="coerce"), dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return math.nan, math.nan, 0
    if n == 1:
        return float(x[0]), math.nan, 1
    half = t_quantile((1 + level) / 2, n - 1) * float(x.std(ddof=1)) / math.sqrt(n)
    return float(x.mean()), half, n


def ema_by(values, keys, smooth: float) -> np.ndarray:
    """``ema`` applied to each run of equal consecutive ``keys`` separately (rows sorted by key, then x).

    One pass over the rows, so smoothing many runs costs no more than smoothing their concatenation.
    """
    x = np.asarray(pd.to_numeric(pd.Series(values, dtype="object"), errors="coerce"), dtype=float)
    keys = list(keys)
    if not 0 <= smooth < 1:
        raise ValueError(f"smooth must be in [0, 1), got {smooth}")
    if smooth == 0:
        return x
    out = np.full_like(x, np.nan)
    avg = weight = 0.0
    for i, (v, k) in enumerate(zip(x, keys)):
        if i == 0 or k != keys[i - 1]:
            avg = weight = 0.0
        if not np.isfinite(v):
            continue
        avg = smooth * avg + (1 - smooth) * v
        weight = smooth * weight + (1 - smooth)
        out[i] = avg / weight
    return out


def ema(values, smooth: float) -> np.ndarray:
    """TensorBoard-style exponential moving average, debiased, skipping NaNs (they stay NaN).

    ``smooth`` in [0, 1): 0 returns the values unchanged; 0.9 averages over roughly the last ten points.
    """
    x = np.asarray(pd.to_numeric(pd.Series(values, dtype="object"), errors="coerce"), dtype=float)
    if not 0 <= smooth < 1:
        raise ValueError(f"smooth must be in [0, 1), got {smooth}")
    if smooth == 0:
        return x
    out = np.full_like(x, np.nan)
    avg, weight = 0.0, 0.0
    for i, v in enumerate(x):
        if not np.isfinite(v):
            continue
        avg = smooth * avg + (1 - smooth) * v
        weight = smooth * weight + (1 - smooth)
        out[i] = avg / weight  # debias: early points are not pulled towards 0
    return out
