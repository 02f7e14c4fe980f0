"""``immune eval``: how an input guard does on labelled texts, overall and per category.

Definitions (one place): an attack is *caught* when the guard blocks or flags
it, *blocked* when it blocks it; a benign text is a *false positive* when the
guard blocks or flags it (as in ``kosmoi.metrics``). Beyond the operating
point, the guard's score (the largest rule weight or classifier probability)
ranks texts: recall at a fixed false-positive rate picks the score threshold
that flags at most that share of the benign texts; ROC AUC is the
probability that a random attack outscores a random benign text (ties count
half). Rates carry Wilson 95 % intervals. Latency is per text, by length.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from evolve.corpus.records import LabelledText
from kosmoi.stats import wilson
from kosmoi.types import Action, Verdict

FPR_POINTS = (0.001, 0.01, 0.05)
LENGTH_BUCKETS = ((0, 256), (256, 1024), (1024, 4096), (4096, 16384), (16384, None))
WORST = 10


@dataclass(frozen=True, slots=True)
class Scored:
    row: LabelledText
    action: Action
    score: float
    rule_ids: tuple[str, ...]
    latency_us: float

    @property
    def caught(self) -> bool:
        return self.action is not Action.ALLOW


class TextScanner(Protocol):
    """Anything ``immune eval`` can measure: our input guard, one stage alone, another vendor's detector."""

    def scan_uncached(self, text: str) -> Verdict: ...


def score_rows(guard: TextScanner, rows: Sequence[LabelledText], progress: Callable[[int, int], None] | None = None) -> list[Scored]:
    """The guard's verdict on every row, with its latency."""
    out: list[Scored] = []
    for index, row in enumerate(rows):
        start = time.perf_counter_ns()
        verdict = guard.scan_uncached(row.text)
        elapsed = (time.perf_counter_ns() - start) / 1000
        out.append(Scored(row, verdict.action, float(verdict.score), verdict.rule_ids, elapsed))
        if progress and (index + 1) % 500 == 0:
            progress(index + 1, len(rows))
    return out


def _rate(hits: int, n: int) -> dict[str, float | int]:
    low, high = wilson(hits, n)
    return {"rate": round(hits / n, 5) if n else 0.0, "ci95_low": round(low, 5), "ci95_high": round(high, 5), "hits": hits, "n": n}


def roc_auc(attack_scores: np.ndarray, benign_scores: np.ndarray) -> float | None:
    """P(score(attack) > score(benign)), ties half (Mann-Whitney U); None without both classes."""
    if not len(attack_scores) or not len(benign_scores):
        return None
    scores = np.concatenate([attack_scores, benign_scores])
    order = scores.argsort(kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # average ranks of ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average = first + (counts - 1) / 2.0 + 1
    ranks[order] = np.repeat(average, counts)
    u = ranks[: len(attack_scores)].sum() - len(attack_scores) * (len(attack_scores) + 1) / 2
    return float(u / (len(attack_scores) * len(benign_scores)))


def recall_at_fpr(attack_scores: np.ndarray, benign_scores: np.ndarray, fpr: float) -> dict[str, float | int] | None:
    """Recall when the score threshold lets at most ``fpr`` of benign texts score at or above it."""
    if not len(attack_scores) or not len(benign_scores):
        return None
    ordered = np.sort(benign_scores)[::-1]
    allowed = int(np.floor(fpr * len(ordered)))  # benign texts allowed above the threshold
    threshold = ordered[allowed] if allowed < len(ordered) else -np.inf
    hits = int((attack_scores > threshold).sum())
    return {**_rate(hits, len(attack_scores)), "threshold": round(float(threshold), 6), "benign_above": int((benign_scores > threshold).sum())}


def _bucket(n_bytes: int) -> str:
    for low, high in LENGTH_BUCKETS:
        if n_bytes >= low and (high is None or n_bytes < high):
            return f"{low}-{high}" if high else f"{low}+"
    return "?"


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else 0.0


def _excerpt(text: str, limit: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


@dataclass
class GuardReport:
    """Everything ``immune eval`` prints."""

    overall: dict[str, object] = field(default_factory=dict)
    attack_categories: dict[str, dict[str, object]] = field(default_factory=dict)
    benign_categories: dict[str, dict[str, object]] = field(default_factory=dict)
    sources: dict[str, dict[str, object]] = field(default_factory=dict)
    worst_false_positives: list[dict[str, object]] = field(default_factory=list)
    worst_false_negatives: list[dict[str, object]] = field(default_factory=list)
    latency_us: dict[str, dict[str, float | int]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "overall": self.overall,
            "attack_categories": self.attack_categories,
            "benign_categories": self.benign_categories,
            "sources": self.sources,
            "worst_false_positives": self.worst_false_positives,
            "worst_false_negatives": self.worst_false_negatives,
            "latency_us": self.latency_us,
        }


def _summary(attacks: list[Scored], benign: list[Scored]) -> dict[str, object]:
    a = np.array([s.score for s in attacks])
    b = np.array([s.score for s in benign])
    out: dict[str, object] = {"attacks": len(attacks), "benign": len(benign)}
    if attacks:
        out["recall"] = _rate(sum(s.caught for s in attacks), len(attacks))
        out["blocked"] = _rate(sum(s.action is Action.BLOCK for s in attacks), len(attacks))
    if benign:
        out["false_positive_rate"] = _rate(sum(s.caught for s in benign), len(benign))
        out["benign_blocked"] = _rate(sum(s.action is Action.BLOCK for s in benign), len(benign))
    if attacks and benign:
        out["recall_at_fpr"] = {f"{p:g}": recall_at_fpr(a, b, p) for p in FPR_POINTS}
        auc = roc_auc(a, b)
        out["roc_auc"] = round(auc, 5) if auc is not None else None
    return out


def source_tally(items: Sequence[Scored]) -> dict[str, object]:
    """One source's texts: attacks and how many were caught, benign texts and how many were false positives.

    A source may hold both (bastioncorpus ships attacks and harmless look-alikes): each label is counted apart.
    """
    tally: dict[str, object] = {}
    attacks = [s for s in items if s.row.is_attack]
    benign = [s for s in items if not s.row.is_attack]
    if attacks:
        tally |= {"attacks": len(attacks), "caught": sum(s.caught for s in attacks)}
    if benign:
        tally |= {"benign": len(benign), "false_positives": sum(s.caught for s in benign)}
    return tally


def report(scored: Sequence[Scored], worst: int = WORST) -> GuardReport:
    """Overall and per-category figures, the ``worst`` false positives and false negatives, latency by length."""
    attacks = [s for s in scored if s.row.is_attack]
    benign = [s for s in scored if not s.row.is_attack]
    result = GuardReport(overall=_summary(attacks, benign))
    by_category: dict[str, list[Scored]] = defaultdict(list)
    for s in attacks:
        by_category[s.row.category].append(s)
    for category, items in sorted(by_category.items()):
        result.attack_categories[category] = _summary(items, benign)  # recall at FPR against all benign texts
    by_benign: dict[str, list[Scored]] = defaultdict(list)
    for s in benign:
        by_benign[s.row.category].append(s)
    for category, items in sorted(by_benign.items()):
        result.benign_categories[category] = {"benign": len(items), "false_positive_rate": _rate(sum(s.caught for s in items), len(items))}
    by_source: dict[str, list[Scored]] = defaultdict(list)
    for s in scored:
        by_source[s.row.source].append(s)
    for source, items in sorted(by_source.items()):
        result.sources[source] = source_tally(items)
    fps = sorted((s for s in benign if s.caught), key=lambda s: -s.score)[:worst]
    fns = sorted((s for s in attacks if not s.caught), key=lambda s: s.score)[:worst]
    result.worst_false_positives = [{"score": round(s.score, 4), "action": s.action.value, "rules": list(s.rule_ids), "source": s.row.source, "category": s.row.category, "text": _excerpt(s.row.text)} for s in fps]
    result.worst_false_negatives = [{"score": round(s.score, 4), "source": s.row.source, "category": s.row.category, "text": _excerpt(s.row.text)} for s in fns]
    buckets: dict[str, list[float]] = defaultdict(list)
    for s in scored:
        buckets[_bucket(len(s.row.text.encode("utf-8", "replace")))].append(s.latency_us)
    order = [_bucket(low) for low, _ in LENGTH_BUCKETS]
    for name in order:
        if name in buckets:
            values = buckets[name]
            result.latency_us[name] = {"texts": len(values), "p50": round(_percentile(values, 50), 1), "p99": round(_percentile(values, 99), 1)}
    return result


def side_by_side(scored: Sequence[Scored]) -> dict[str, object]:
    """One guard's line of the comparison table: recall overall and per category, false positives, latency, throughput."""
    attacks = [s for s in scored if s.row.is_attack]
    benign = [s for s in scored if not s.row.is_attack]
    by_category: dict[str, list[Scored]] = defaultdict(list)
    for s in attacks:
        by_category[s.row.category].append(s)
    latencies = [s.latency_us for s in scored]
    return {
        "attacks": len(attacks),
        "benign": len(benign),
        "recall": _rate(sum(s.caught for s in attacks), len(attacks)),
        "false_positive_rate": _rate(sum(s.caught for s in benign), len(benign)),
        "recall_by_category": {category: _rate(sum(s.caught for s in items), len(items)) for category, items in sorted(by_category.items())},
        "latency_us": {"p50": round(_percentile(latencies, 50), 1), "p99": round(_percentile(latencies, 99), 1)},
        "texts_per_s": round(len(latencies) / (sum(latencies) / 1e6), 1) if latencies and sum(latencies) else 0.0,
    }
