"""The input guardrail ("the skin"): deterministic and fast.

Order: length limit -> canonicalisation -> obfuscation signals -> rule
matching -> the light classifier -> (optionally) the semantic stage for
uncertain texts. Rules match the canonical text, its
leetspeak-decoded variant and what obfuscation hides: base64/hex/URL/QP runs
(nested, bounded), ROT13 or reversed text when the text asks for decoding,
and payloads split into variables or parts. A block rule that fires only on
text inside quotation marks, in a text that reports on attacks rather than
making one ("our incident report quotes 'ignore previous instructions'"), is a
mention: it is let through when the rest of the text looks benign to the
classifier and flagged otherwise, never blocked — only for rules marked
``quotable`` (attack *phrases* such as overrides or personas, not concrete
actions such as a transfer to an account), and never for what only a decoded
or reassembled variant revealed.

The verdict carries every rule id that fired (``classifier`` for the model)
and a score in [0, 1]: the highest rule weight or classifier probability.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable

import re2

from kosmoi.types import Action, Verdict
from targets.canonical import Canonical, canonicalize, decode_leet, without_surrogates
from targets.ciphers import cipher_variants
from targets.classifier import Classifier
from targets.decoding import still_encoded, decode_runs, join_split_payload
from targets.matcher import Engine, RuleMatcher
from targets.rules import RuleSet
from targets.semantic import SemanticStage

DEFAULT_MAX_BYTES = 16 * 1024
VERDICT_CACHE_ENTRIES = 8192  # identical texts get the identical verdict without a second scan
VERDICT_CACHE_MAX_CHARS = 2048  # only short texts are cached: memory stays under ~16 MB per guard

# Reserved ids of what the guard itself raises ("signal." / "limit." / "classifier").
LENGTH_RULE = "limit.length"
TAG_RULE = "signal.tag-characters"
BIDI_RULE = "signal.bidi-control"
INVISIBLE_RULE = "signal.invisible-characters"
MIXED_SCRIPT_RULE = "signal.mixed-script"
ENCODED_RULE = "signal.encoded-instructions"
TOO_DEEP_RULE = "signal.too-deeply-encoded"
DECODE_DEPTH = 4
CLASSIFIER_RULE = "classifier"
SEMANTIC_RULE = "semantic.similar-attack"

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False
# Prechecks in Python's re: bounded work per position (a run shorter than 16 is rejected within 16
# steps), so linear; RE2's Python wrapper costs more per call than these searches on short texts.
_ENCODED_HINT = re.compile(r"[A-Za-z0-9+/_\-]{16}|%[0-9a-fA-F]{2}|=[0-9A-F]{2}|<~|begin [0-7]{3} |[!-~]{20}")
_QUOTED = re2.compile(r"\"[^\"]{1,400}\"|“[^”]{1,400}”|‘[^’]{3,400}’|`[^`]{1,400}`|(?:^|\s)'[^']{3,400}'", _OPTIONS)
_REPORTING = re.compile(
    r"\b(?:reports?|reported|incident|memo|examples?|e\.g\.|such as|phrases?|quoted?|quotes|wrote|writes|says|said|saying|called|known as|"
    r"classic|common|typical|attacks?|attackers?|injections?|jailbreaks?|phishing|protect|defend|detect|training|awareness|research|paper|"
    r"what is|what does|how do|why do|means|meaning|definition|stands for)\b"
)


def utf8_length_exceeds(text: str, limit: int) -> bool:
    """True when ``text`` is longer than ``limit`` UTF-8 bytes (cheap for short text)."""
    if len(text) * 4 <= limit:
        return False
    if len(text) > limit:
        return True
    return len(text.encode("utf-8", "replace")) > limit


def derived_variants(text: str, canon: Canonical) -> list[tuple[str, str]]:
    """``(how, canonical text)`` for what obfuscation hides in ``text``."""
    return hidden_variants(text, canon)[0]


def hidden_variants(text: str, canon: Canonical) -> tuple[list[tuple[str, str]], bool]:
    """:func:`derived_variants`, and whether something is encoded deeper than :data:`DECODE_DEPTH` layers."""
    found: list[tuple[str, str]] = []
    too_deep = False
    if len(text) >= 16 and _ENCODED_HINT.search(text):
        budget = min(64 * 1024, max(4096, 4 * len(text)))
        for run in decode_runs(text, max_depth=DECODE_DEPTH, max_bytes=budget, max_runs=32):
            how = "+".join(run.chain)
            found.extend((how, variant) for variant in canonicalize(run.decoded).variants())  # leetspeak inside base64 too
            too_deep = too_deep or (len(run.chain) >= DECODE_DEPTH and still_encoded(run.decoded))
    plain = canon.text
    if "rot13" in plain or "rot-13" in plain or "rot 13" in plain:
        found.extend(("rot13", codecs.encode(variant, "rot13")) for variant in canon.variants())
    if "revers" in plain or "backward" in plain:
        found.extend(("reverse", variant[::-1]) for variant in canon.variants())  # leetspeak written backwards too
    joined = join_split_payload(plain)
    if joined:
        found.extend(("split", variant) for variant in canonicalize(joined).variants())
    for how, decoded in cipher_variants(text):
        found.extend((how, variant) for variant in canonicalize(decoded).variants())
    return found, too_deep


class InputGuard:
    """Scans untrusted text (chat messages, retrieved documents) before the model sees it."""

    def __init__(self, ruleset: RuleSet, max_bytes: int = DEFAULT_MAX_BYTES, engine: Engine = "auto", semantic: bool = False) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be > 0")
        self.ruleset = ruleset
        self.max_bytes = max_bytes
        self.matcher = RuleMatcher(ruleset.for_stage("input"), engine)
        self.classifier = Classifier.from_spec(ruleset.classifier) if ruleset.classifier is not None else None
        self.semantic: SemanticStage | None = None
        if semantic:
            if ruleset.semantic is None:
                raise ValueError(f"rule set {ruleset.name} v{ruleset.version} has no semantic exemplars; the semantic stage cannot run")
            self.semantic = SemanticStage(ruleset.semantic)
        self._flag_threshold = ruleset.thresholds.flag
        self._block_threshold = ruleset.thresholds.block
        self._cache: dict[str, Verdict] = {}

    def scan(self, text: str) -> Verdict:
        """The verdict for one text (a pure function of the text and the rule set; repeats of short texts are cached)."""
        if len(text) > VERDICT_CACHE_MAX_CHARS:
            return self._scan(text)
        cached = self._cache.get(text)
        if cached is None:
            cached = self._scan(text)
            if len(self._cache) >= VERDICT_CACHE_ENTRIES:
                del self._cache[next(iter(self._cache))]  # FIFO: bounded, and eviction changes no answer
            self._cache[text] = cached
        return cached

    def scan_uncached(self, text: str) -> Verdict:
        """The verdict for one text, always computed (benchmarks and latency figures use this)."""
        return self._scan(text)

    def _scan(self, text: str) -> Verdict:
        if utf8_length_exceeds(text, self.max_bytes):
            return Verdict(Action.BLOCK, (LENGTH_RULE,), 1.0, reasons=(f"longer than {self.max_bytes} bytes",))
        text = without_surrogates(text)
        canon = canonicalize(text)
        fired: list[str] = []
        reasons: list[str] = []
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

        matcher = self.matcher
        hits = matcher.match_indices(canon.variants())
        surface_hits = set(hits)  # what the text says in plain sight (quoted mentions are judged on these only)
        derived, too_deep = hidden_variants(text, canon)
        for how, hidden in derived:
            new = matcher.match_indices((hidden,)) - hits
            if new:
                hits |= new
                reasons.append(f"{', '.join(matcher.rules[i].id for i in sorted(new))} in {how}-decoded text")
                if ENCODED_RULE not in fired:
                    fired.append(ENCODED_RULE)
        if too_deep:
            # Decoding is bounded; content hidden under more layers than we decode cannot be inspected: fail closed.
            fired.append(TOO_DEEP_RULE)
            reasons.append(f"encoded more than {DECODE_DEPTH} layers deep: cannot be inspected")
            block, score = True, 1.0
        rules = [matcher.rules[i] for i in sorted(hits)]
        quotable = [r for i, r in zip(sorted(hits), rules) if r.quotable and i in surface_hits]
        quoted_only, remainder = self._quoted_only(canon, quotable) if quotable else (frozenset(), "")
        # A quoted mention in a text about attacks is a mention, not a use: it is let through when the
        # rest of the text looks benign to the classifier, flagged otherwise (and never blocked).
        mention_is_benign = bool(quoted_only) and (self.classifier is None or self.classifier.probability(remainder) < self._flag_threshold)
        for rule in rules:
            fired.append(rule.id)
            if rule.id in quoted_only:
                if not mention_is_benign:
                    flag, score = True, max(score, min(rule.weight, 0.6))
                continue
            score = max(score, rule.weight)
            if rule.action == "block":
                block = True
            else:
                flag = True
        if quoted_only:
            outcome = "let through" if mention_is_benign else "flagged"
            reasons.append(f"{', '.join(sorted(quoted_only))} only inside quotes in a text about attacks: a mention, {outcome}")
        if not block and self.classifier is not None:
            # A benign mention is judged on the text around its quotes (the quoted attack is not the writer's).
            judged = remainder if mention_is_benign and len(quoted_only) == len(quotable) else canon.text
            probability = max(self.classifier.probability(t) for t in (judged, *(hidden for _, hidden in derived)))
            if probability >= self._flag_threshold:
                fired.append(CLASSIFIER_RULE)
                reasons.append(f"classifier p={probability:.2f}")
            score = max(score, probability)
        if not block and self.semantic is not None and self.semantic.in_band(score):
            similarity = self.semantic.similarity([canon.text, *(hidden for _, hidden in derived)][:4])
            if similarity >= self.semantic.spec.threshold:
                fired.append(SEMANTIC_RULE)
                reasons.append(f"semantic similarity {similarity:.2f} to a known attack")
                score = max(score, similarity)
                block = block or self.semantic.spec.action == "block"
                flag = True
        if block or score >= self._block_threshold:
            action = Action.BLOCK
        elif flag or score >= self._flag_threshold:
            action = Action.FLAG
        else:
            action = Action.ALLOW
        return Verdict(action, tuple(fired), score, reasons=tuple(reasons))

    def _quoted_only(self, canon: Canonical, rules: list) -> tuple[frozenset[str], str]:
        """Rules that fire only on quoted text in a text that reports on attacks, and the text without its quotes."""
        if not _REPORTING.search(canon.text):
            return frozenset(), ""
        dequoted = _QUOTED.sub(" ", canon.text)
        if dequoted == canon.text:
            return frozenset(), ""
        variants = [dequoted]
        unleet = decode_leet(dequoted)
        if unleet:
            variants.append(unleet)
        still = {self.matcher.rules[i].id for i in self.matcher.match_indices(variants)}
        return frozenset(r.id for r in rules if r.id not in still), dequoted

    def scan_many(self, texts: Iterable[str]) -> list[Verdict]:
        """Verdicts for many texts, in order."""
        scan = self.scan
        return [scan(text) for text in texts]
