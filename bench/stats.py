"""Small statistics helpers (统计) shared by the bench modules."""

from __future__ import annotations

import math


def percentile(samples: list[float], p: float) -> float:
    """The nearest-rank percentile (0 for no samples)."""
    if not samples:
        return 0.0
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]
