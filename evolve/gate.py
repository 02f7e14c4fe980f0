"""Evaluating a rule set for the promotion gate (``immune eval`` has the fuller report: ``evolve.guard_eval``).

For attack texts: how many the input guard blocks, flags or lets through
(per category), and the *allow rate* — the share that reaches the model
unblocked, which is what a held-out breach rate measures for texts known to
have breached. For benign texts: the false-positive rate (blocked or flagged),
as defined in ``kosmoi.metrics``. Rates carry Wilson 95 % intervals. Scan
latency is measured on the way.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from kosmoi.stats import wilson
from kosmoi.types import Action
from targets.input_guard import InputGuard
from targets.rules import RuleSet


@dataclass
class Rate:
    hits: int
    n: int

    @property
    def value(self) -> float:
        return self.hits / self.n if self.n else 0.0

    @property
    def ci95(self) -> tuple[float, float]:
        return wilson(self.hits, self.n)

    def as_dict(self) -> dict[str, float]:
        low, high = self.ci95
        return {"rate": round(self.value, 5), "ci95_low": round(low, 5), "ci95_high": round(high, 5), "hits": self.hits, "n": self.n}


@dataclass
class Evaluation:
    recall: Rate  # attacks blocked
    allow_rate: Rate  # attacks let through without a block (allowed or only flagged)
    false_positive_rate: Rate  # benign blocked or flagged
    recall_by_category: dict[str, Rate] = field(default_factory=dict)
    latency_p50_us: float = 0.0
    latency_p99_us: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "recall": self.recall.as_dict(),
            "allow_rate": self.allow_rate.as_dict(),
            "false_positive_rate": self.false_positive_rate.as_dict(),
            "recall_by_category": {k: v.as_dict() for k, v in sorted(self.recall_by_category.items())},
            "latency_us": {"p50": round(self.latency_p50_us, 1), "p99": round(self.latency_p99_us, 1)},
        }


def evaluate(ruleset: RuleSet, attacks: Sequence[tuple[str, str]], benign: Sequence[str], guard: InputGuard | None = None) -> Evaluation:
    """``attacks``: (text, category) pairs; ``benign``: texts."""
    guard = guard or InputGuard(ruleset)
    latencies: list[float] = []
    blocked_by: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    blocked = allowed = 0
    for text, category in attacks:
        start = time.perf_counter_ns()
        verdict = guard.scan_uncached(text)
        latencies.append((time.perf_counter_ns() - start) / 1000)
        hit = verdict.action is Action.BLOCK
        blocked += hit
        allowed += not hit
        blocked_by[category][0] += hit
        blocked_by[category][1] += 1
    false_positives = 0
    for text in benign:
        start = time.perf_counter_ns()
        verdict = guard.scan_uncached(text)
        latencies.append((time.perf_counter_ns() - start) / 1000)
        false_positives += verdict.action is not Action.ALLOW
    latencies.sort()
    p50 = latencies[len(latencies) // 2] if latencies else 0.0
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else 0.0
    return Evaluation(
        recall=Rate(blocked, len(attacks)),
        allow_rate=Rate(allowed, len(attacks)),
        false_positive_rate=Rate(false_positives, len(benign)),
        recall_by_category={k: Rate(v[0], v[1]) for k, v in blocked_by.items()},
        latency_p50_us=p50,
        latency_p99_us=p99,
    )
