"""Multi-objective helpers, all objectives minimised: non-dominated sorting (NSGA-II's fronts) and
the hypervolume a set of points dominates up to a reference point."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """`a` is no worse than `b` on every objective and better on one (minimisation)."""
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True))


def fronts(points: Sequence[Sequence[float]]) -> list[list[int]]:
    """Indices of `points` by non-dominated front: the first front dominates the rest, and so on."""
    left = list(range(len(points)))
    out = []
    while left:
        front = [i for i in left if not any(dominates(points[j], points[i]) for j in left if j != i)]
        out.append(front)
        left = [i for i in left if i not in front]
    return out


def hypervolume(points: Sequence[Sequence[float]], reference: Sequence[float]) -> float:
    """The volume dominated by `points` and bounded by `reference` (every objective minimised).

    Exact, by slicing along the last objective (each slice a hypervolume one dimension down);
    points not strictly better than the reference on every objective add nothing. Fine for the
    tens of points a search front holds."""
    ref = np.asarray(reference, dtype=np.float64)
    pts = np.asarray([p for p in points if np.all(np.asarray(p, dtype=np.float64) < ref)], dtype=np.float64)
    if len(pts) == 0:
        return 0.0
    if pts.shape[1] == 1:
        return float(ref[0] - pts[:, 0].min())
    pts = pts[np.argsort(pts[:, -1])]
    volume = 0.0
    for i, p in enumerate(pts):
        top = pts[i + 1, -1] if i + 1 < len(pts) else ref[-1]
        if top > p[-1]:
            volume += hypervolume(pts[: i + 1, :-1], ref[:-1]) * (top - p[-1])
    return float(volume)
