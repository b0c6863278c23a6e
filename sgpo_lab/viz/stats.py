"""The few statistics the figures need: EMA smoothing here, and a mean with a t confidence interval from
``sgpo_lab.stats`` (the one home of the lab's statistics)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sgpo_lab.stats import mean_ci, t_quantile

__all__ = ["ema", "ema_by", "mean_ci", "t_quantile"]


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
