"""Latency summaries: percentiles by the nearest-rank rule, plus a 101-point CDF kept for charts and reruns."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (q in 0..100); NaN for no values."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


def summarize(values_ms: Sequence[float], until_last_ms: float | None = None) -> dict[str, Any]:
    """count, p50/p95/p99/max and the 0..100 CDF (ms); `until_last_ms` is the span until the last arrival."""
    ordered = sorted(values_ms)
    out: dict[str, Any] = {"count": len(ordered)}
    for name, q in (("p50", 50.0), ("p95", 95.0), ("p99", 99.0), ("max", 100.0)):
        out[name] = round(percentile(ordered, q), 3) if ordered else None
    out["until_last"] = round(until_last_ms, 3) if until_last_ms is not None else out["max"]
    out["cdf"] = [round(percentile(ordered, q), 3) for q in range(101)] if ordered else []
    return out


def ns_to_ms(values_ns: Sequence[int]) -> list[float]:
    return [v / 1e6 for v in values_ns]


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b rounded, or None when either is missing or b is zero."""
    if a is None or b is None or b == 0 or math.isnan(a) or math.isnan(b):
        return None
    return round(a / b, 2)
