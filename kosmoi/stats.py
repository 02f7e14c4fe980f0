"""Confidence intervals for the rates of ``kosmoi.metrics``.

Episodes are not independent: the attempts of one campaign share an attacker
(and the court contains a campaign after its first breach), the requests of
one benign identity share a customer. So rates get a **cluster bootstrap**:
resample whole clusters (campaigns, identities) with replacement and take
the 2.5th and 97.5th percentiles of the resampled rate. It is exact and
cheap at any size: a cluster only matters through its ``(hits, size)`` pair
and there are few distinct pairs (a campaign has at most a handful of
attempts), so a resample is one multinomial draw over the distinct pairs —
``reps x pairs`` work, not ``reps x clusters``.

Where the percentile bootstrap is degenerate — no hits at all, or only hits
— it would report ``[0, 0]``; the Wilson score interval over the episodes is
reported instead (it gives, e.g., an upper bound of 0.06 % for 0 of 6,000).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

REPS = 2000
LEVEL = 0.95


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion."""
    if n == 0:
        return 0.0, 0.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    margin = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - margin), min(1.0, centre + margin)


@dataclass(frozen=True, slots=True)
class RateCI:
    """A rate with its 95 % interval and what it was computed from."""

    rate: float
    low: float
    high: float
    hits: int
    n: int
    clusters: int
    method: str  # cluster-bootstrap | wilson | none

    def as_dict(self) -> dict[str, float | int | str]:
        return {"rate": self.rate, "ci_low": self.low, "ci_high": self.high, "hits": self.hits, "n": self.n, "clusters": self.clusters, "ci_method": self.method}

    def __str__(self) -> str:
        return f"{self.rate:.2%} [{self.low:.2%}, {self.high:.2%}]"


def cluster_bootstrap(hits: np.ndarray, sizes: np.ndarray, *, reps: int = REPS, seed: int = 0, level: float = LEVEL) -> RateCI:
    """Rate ``sum(hits) / sum(sizes)`` with a cluster-bootstrap interval (one entry per cluster)."""
    hits = np.asarray(hits, dtype=np.int64)
    sizes = np.asarray(sizes, dtype=np.int64)
    if hits.shape != sizes.shape:
        raise ValueError(f"hits and sizes differ in shape: {hits.shape} vs {sizes.shape}")
    keep = sizes > 0
    pairs, counts = np.unique(np.stack([hits[keep], sizes[keep]], axis=1), axis=0, return_counts=True)
    return cluster_bootstrap_pairs(pairs[:, 0], pairs[:, 1], counts, reps=reps, seed=seed, level=level)


def cluster_bootstrap_pairs(hits: np.ndarray, sizes: np.ndarray, counts: np.ndarray, *, reps: int = REPS, seed: int = 0, level: float = LEVEL) -> RateCI:
    """As :func:`cluster_bootstrap`, from distinct ``(hits, size)`` cluster signatures and how many clusters have each."""
    hits = np.asarray(hits, dtype=np.int64)
    sizes = np.asarray(sizes, dtype=np.int64)
    counts = np.asarray(counts, dtype=np.int64)
    keep = (sizes > 0) & (counts > 0)
    hits, sizes, counts = hits[keep], sizes[keep], counts[keep]
    total_hits, total, clusters = int(hits @ counts), int(sizes @ counts), int(counts.sum())
    if total == 0:
        return RateCI(0.0, 0.0, 0.0, 0, 0, 0, "none")
    rate = total_hits / total
    if total_hits in (0, total) or clusters < 2:
        low, high = wilson(total_hits, total)
        return RateCI(rate, low, high, total_hits, total, clusters, "wilson")
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(clusters, counts / clusters, size=reps)  # reps x distinct signatures
    resampled = (draws @ hits) / np.maximum(draws @ sizes, 1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(resampled, [tail, 100 - tail])
    return RateCI(rate, float(min(low, rate)), float(max(high, rate)), total_hits, total, clusters, "cluster-bootstrap")
