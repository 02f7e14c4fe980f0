"""Every rule's false-positive rate on real benign text: what each rule costs before it ships.

A rule *fires falsely* on a benign text when it matches any variant the
guard matches (canonical, leetspeak-decoded, decoded runs and ciphers). The
bound every shipped and mined rule must meet is ``MAX_RULE_FPR``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from kosmoi.stats import wilson
from targets.canonical import canonicalize, without_surrogates
from targets.input_stages import hidden_variants
from targets.matcher import RuleMatcher
from targets.rules import RuleSet

MAX_RULE_FPR = 0.001


@dataclass(frozen=True, slots=True)
class RulePrecision:
    rule_id: str
    hits: int
    n: int

    @property
    def fpr(self) -> float:
        return self.hits / self.n if self.n else 0.0

    def as_dict(self) -> dict[str, object]:
        _low, high = wilson(self.hits, self.n)
        return {"rule": self.rule_id, "false_positives": self.hits, "n": self.n, "fpr": round(self.fpr, 6), "ci95_high": round(high, 6)}


def rule_false_positives(ruleset: RuleSet, benign: Sequence[str]) -> tuple[list[RulePrecision], dict[str, list[str]]]:
    """Per input rule: how many benign texts it fires on (and up to five examples of each)."""
    matcher = RuleMatcher(ruleset.for_stage("input"))
    counts: Counter[str] = Counter()
    examples: dict[str, list[str]] = {}
    for text in benign:
        text = without_surrogates(text)
        canon = canonicalize(text)
        variants = list(canon.variants()) + [v for _, v in hidden_variants(text, canon)[0]]
        for index in matcher.match_indices(variants):
            rule_id = matcher.rules[index].id
            counts[rule_id] += 1
            if len(examples.setdefault(rule_id, [])) < 5:
                examples[rule_id].append(text[:200])
    return [RulePrecision(rule.id, counts[rule.id], len(benign)) for rule in matcher.rules], examples
