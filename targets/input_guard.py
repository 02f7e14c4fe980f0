"""The input guardrail ("the skin"): deterministic and fast.

Order: length limit -> canonicalisation -> obfuscation signals -> rule
matching (RE2, on the canonical text and its leetspeak-decoded variant).
The verdict carries every rule id that fired and a score in [0, 1]:
the highest weight among them.
"""

from __future__ import annotations

from collections.abc import Iterable

from kosmoi.types import Action, Verdict
from targets.canonical import canonicalize
from targets.matcher import RuleMatcher
from targets.rules import RuleSet

DEFAULT_MAX_BYTES = 16 * 1024

# Signals raised by canonicalisation itself (ids are reserved: "signal." / "limit.").
LENGTH_RULE = "limit.length"
TAG_RULE = "signal.tag-characters"
BIDI_RULE = "signal.bidi-control"
INVISIBLE_RULE = "signal.invisible-characters"
MIXED_SCRIPT_RULE = "signal.mixed-script"


def utf8_length_exceeds(text: str, limit: int) -> bool:
    """True when ``text`` is longer than ``limit`` UTF-8 bytes (cheap for short text)."""
    if len(text) * 4 <= limit:
        return False
    if len(text) > limit:
        return True
    return len(text.encode("utf-8", "replace")) > limit


class InputGuard:
    """Scans untrusted text (chat messages, retrieved documents) before the model sees it."""

    def __init__(self, ruleset: RuleSet, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be > 0")
        self.ruleset = ruleset
        self.max_bytes = max_bytes
        self.matcher = RuleMatcher(ruleset.for_stage("input"))
        self._flag_threshold = ruleset.thresholds.flag
        self._block_threshold = ruleset.thresholds.block

    def scan(self, text: str) -> Verdict:
        """The verdict for one text."""
        if utf8_length_exceeds(text, self.max_bytes):
            return Verdict(Action.BLOCK, (LENGTH_RULE,), 1.0, reasons=(f"longer than {self.max_bytes} bytes",))
        canon = canonicalize(text)
        fired: list[str] = []
        score = 0.0
        block = flag = False
        if canon.tags:
            fired.append(TAG_RULE)
            block, score = True, 1.0
        if canon.bidi:
            fired.append(BIDI_RULE)
            flag, score = True, max(score, 0.6)
        if canon.invisible > canon.tags + canon.bidi:
            fired.append(INVISIBLE_RULE)
            flag, score = True, max(score, 0.6)
        if canon.mixed_script:
            fired.append(MIXED_SCRIPT_RULE)
            flag, score = True, max(score, 0.7)
        for rule in self.matcher.match(canon.variants()):
            fired.append(rule.id)
            score = max(score, rule.weight)
            if rule.action == "block":
                block = True
            else:
                flag = True
        if block or score >= self._block_threshold:
            action = Action.BLOCK
        elif flag or score >= self._flag_threshold:
            action = Action.FLAG
        else:
            action = Action.ALLOW
        return Verdict(action, tuple(fired), score)

    def scan_many(self, texts: Iterable[str]) -> list[Verdict]:
        """Verdicts for many texts, in order."""
        scan = self.scan
        return [scan(text) for text in texts]
