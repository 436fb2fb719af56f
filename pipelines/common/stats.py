"""Summaries of per-seed (or per-fold) figures: mean, spread and the 95 % interval of the mean."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def summarise(values: Sequence[float]) -> dict[str, float]:
    """Mean, sample standard deviation and the 95 % confidence interval of the mean (Student's t,
    n − 1 degrees of freedom); one value has std 0 and no interval."""
    v = np.asarray(values, dtype=np.float64)
    out = {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0, "n": len(v)}
    if len(v) > 1:
        from scipy import stats

        half = float(stats.t.ppf(0.975, len(v) - 1)) * out["std"] / np.sqrt(len(v))
        out.update(ci95_low=out["mean"] - half, ci95_high=out["mean"] + half)
    return out


def mean_std(values: Sequence[float], digits: int = 5) -> tuple[float, float]:
    """`summarise`'s mean and sample standard deviation, rounded for reports."""
    s = summarise(values)
    return round(s["mean"], digits), round(s["std"], digits)


def spearman(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Spearman's rank correlation (ties take their mean rank); None for fewer than 3 pairs or a constant side."""
    if len(a) != len(b) or len(a) < 3:
        return None
    from scipy import stats

    ra, rb = stats.rankdata(a), stats.rankdata(b)
    if ra.std() == 0 or rb.std() == 0:
        return None
    return float(np.corrcoef(ra, rb)[0, 1])
