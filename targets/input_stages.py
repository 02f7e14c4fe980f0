"""The built-in stages of the input guard, in the order the default pipeline runs them.

- ``signals``: obfuscation signals of the text itself — Unicode tag
  characters (blocked), bidi controls, other invisible characters, mixed
  scripts (flagged).
- ``rules``: the rule set's input rules, matched on the canonical text, its
  leetspeak-decoded variant and what obfuscation hides (base64/hex/URL/QP
  runs, nested and bounded; ROT13 or reversed text when the text asks for
  decoding; payloads split into variables or parts; ciphers). A block rule
  that fires only inside quotation marks in a text that reports on attacks
  is a *mention*: let through when the rest of the text looks benign to the
  classifier, flagged otherwise, never blocked — only for rules marked
  ``quotable`` and never for what only a decoded variant revealed. Content
  encoded deeper than :data:`DECODE_DEPTH` layers fails closed.
- ``classifier``: the rule set's light classifier on the judged text and on
  each hidden variant (skipped once an earlier stage blocks).
- ``semantic``: nearest known attacks in embedding space, for texts whose
  score so far is in the uncertain band (optional; needs the 'semantic' extra).
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Mapping, Sequence
from typing import Any

import re2

from kosmoi.types import Action, Verdict
from targets.canonical import Canonical, canonicalize, decode_leet
from targets.ciphers import cipher_variants
from targets.classifier import Classifier
from targets.decoding import decode_runs, join_split_payload, still_encoded
from targets.matcher import RuleMatcher
from targets.rules import Rule
from targets.semantic import SemanticStage
from targets.stages import ScanContext, StageBuild, register_stage

# Reserved ids of what the stages themselves raise ("signal." / "classifier" / "semantic.").
TAG_RULE = "signal.tag-characters"
BIDI_RULE = "signal.bidi-control"
INVISIBLE_RULE = "signal.invisible-characters"
MIXED_SCRIPT_RULE = "signal.mixed-script"
ENCODED_RULE = "signal.encoded-instructions"
TOO_DEEP_RULE = "signal.too-deeply-encoded"
DECODE_DEPTH = 4
CLASSIFIER_RULE = "classifier"
SEMANTIC_RULE = "semantic.similar-attack"
_ALLOW = Verdict(Action.ALLOW)

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False
_QUOTED = re2.compile(r"\"[^\"]{1,400}\"|“[^”]{1,400}”|‘[^’]{3,400}’|`[^`]{1,400}`|(?:^|\s)'[^']{3,400}'", _OPTIONS)
_REPORTING = re.compile(
    r"\b(?:reports?|reported|incident|memo|examples?|e\.g\.|such as|phrases?|quoted?|quotes|wrote|writes|says|said|saying|called|known as|"
    r"classic|common|typical|attacks?|attackers?|injections?|jailbreaks?|phishing|protect|defend|detect|training|awareness|research|paper|"
    r"what is|what does|how do|why do|means|meaning|definition|stands for)\b"
)


def derived_variants(text: str, canon: Canonical) -> list[tuple[str, str]]:
    """``(how, canonical text)`` for what obfuscation hides in ``text``."""
    return hidden_variants(text, canon)[0]


def hidden_variants(text: str, canon: Canonical) -> tuple[list[tuple[str, str]], bool]:
    """:func:`derived_variants`, and whether something is encoded deeper than :data:`DECODE_DEPTH` layers."""
    found: list[tuple[str, str]] = []
    too_deep = False
    if len(text) >= 16:  # decode_runs' first pass says which decoders can find a run (usually none)
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


def _no_options(name: str, options: Mapping[str, Any]) -> None:
    if options:
        raise ValueError(f"guard stage {name!r} takes no options, got {', '.join(sorted(options))}")


@register_stage("signals", side="input")
class Signals:
    """Obfuscation signals of the text itself: tag characters block; bidi, invisible and mixed scripts flag."""

    name = "signals"

    def __init__(self, build: StageBuild, options: Mapping[str, Any]) -> None:
        _no_options(self.name, options)

    def scan(self, text: str, context: ScanContext) -> Verdict:
        canon = context.canon
        if not (canon.tags or canon.bidi or canon.invisible or canon.mixed_script):
            return _ALLOW
        fired: list[str] = []
        score = 0.0
        if canon.bidi:
            fired.append(BIDI_RULE)
            score = 0.6
        if canon.invisible > canon.tags + canon.bidi:
            fired.append(INVISIBLE_RULE)
            score = 0.6
        if canon.mixed_script:
            fired.append(MIXED_SCRIPT_RULE)
            score = 0.7
        if canon.tags:
            return Verdict(Action.BLOCK, (TAG_RULE, *fired), 1.0)
        return Verdict(Action.FLAG if fired else Action.ALLOW, tuple(fired), score)


@register_stage("rules", side="input")
class Rules:
    """The rule set's input rules over the canonical text and what obfuscation hides, with quoted mentions judged."""

    name = "rules"

    def __init__(self, build: StageBuild, options: Mapping[str, Any]) -> None:
        _no_options(self.name, options)
        self.matcher: RuleMatcher = build.input_matcher
        self.classifier: Classifier | None = build.classifier
        self._flag_threshold = build.ruleset.thresholds.flag

    def scan(self, text: str, context: ScanContext) -> Verdict:
        canon = context.canon
        matcher = self.matcher
        fired: list[str] = []
        reasons: list[str] = []
        score = 0.0
        block = flag = False
        hits = matcher.match_indices(canon.variants())
        derived = context.derived
        if not hits and not derived and not context.too_deep:
            return _ALLOW  # nothing fired and nothing is hidden (most texts)
        surface_hits = set(hits)  # what the text says in plain sight (quoted mentions are judged on these only)
        for how, hidden in derived:
            new = matcher.match_indices((hidden,)) - hits
            if new:
                hits |= new
                reasons.append(f"{', '.join(matcher.rules[i].id for i in sorted(new))} in {how}-decoded text")
                if ENCODED_RULE not in fired:
                    fired.append(ENCODED_RULE)
        if context.too_deep:
            # Decoding is bounded; content hidden under more layers than we decode cannot be inspected: fail closed.
            fired.append(TOO_DEEP_RULE)
            reasons.append(f"encoded more than {DECODE_DEPTH} layers deep: cannot be inspected")
            block, score = True, 1.0
        order = sorted(hits)
        rules = [matcher.rules[i] for i in order]
        quotable = [r for i, r in zip(order, rules, strict=True) if r.quotable and i in surface_hits]
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
            if mention_is_benign and len(quoted_only) == len(quotable):
                context.judged_text = remainder  # the quoted attack is not the writer's: judge the text around it
        action = Action.BLOCK if block else Action.FLAG if flag else Action.ALLOW
        return Verdict(action, tuple(fired), score, reasons=tuple(reasons))

    def _quoted_only(self, canon: Canonical, rules: list[Rule]) -> tuple[frozenset[str], str]:
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


@register_stage("classifier", side="input")
class ClassifierStage:
    """The rule set's light classifier on the judged text and each hidden variant (a score; the thresholds decide)."""

    name = "classifier"

    def __init__(self, build: StageBuild, options: Mapping[str, Any]) -> None:
        _no_options(self.name, options)
        self.classifier: Classifier | None = build.classifier
        self._flag_threshold = build.ruleset.thresholds.flag

    def scan(self, text: str, context: ScanContext) -> Verdict:
        return self.scan_many((text,), (context,))[0]

    def scan_many(self, texts: Sequence[str], contexts: Sequence[ScanContext]) -> list[Verdict]:
        """:meth:`scan` of many texts: every judged text and hidden variant of the batch is scored in one call."""
        if self.classifier is None:
            return [_ALLOW] * len(contexts)
        judged: list[str] = []
        spans: list[tuple[int, int] | None] = []
        for context in contexts:
            if context.blocked:
                spans.append(None)
                continue
            start = len(judged)
            judged.append(context.judged_text)
            judged.extend(hidden for _, hidden in context.derived)
            spans.append((start, len(judged)))
        scores = self.classifier.probabilities(judged)
        return [_ALLOW if span is None else self._verdict(max(scores[span[0] : span[1]])) for span in spans]

    def _verdict(self, probability: float) -> Verdict:
        if probability >= self._flag_threshold:
            return Verdict(Action.ALLOW, (CLASSIFIER_RULE,), probability, reasons=(f"classifier p={probability:.2f}",))
        return Verdict(Action.ALLOW, (), probability)


@register_stage("semantic", side="input")
class Semantic:
    """Cosine similarity to known attack exemplars, for texts whose score so far is uncertain."""

    name = "semantic"

    def __init__(self, build: StageBuild, options: Mapping[str, Any]) -> None:
        _no_options(self.name, options)
        ruleset = build.ruleset
        if ruleset.semantic is None:
            raise ValueError(f"rule set {ruleset.name} v{ruleset.version} has no semantic exemplars; the semantic stage cannot run")
        self.stage = SemanticStage(ruleset.semantic)

    def scan(self, text: str, context: ScanContext) -> Verdict:
        if context.blocked or not self.stage.in_band(context.verdict.score):
            return _ALLOW
        similarity = self.stage.similarity([context.canon.text, *(hidden for _, hidden in context.derived)][:4])
        if similarity < self.stage.spec.threshold:
            return _ALLOW
        action = Action.BLOCK if self.stage.spec.action == "block" else Action.FLAG
        return Verdict(action, (SEMANTIC_RULE,), similarity, reasons=(f"semantic similarity {similarity:.2f} to a known attack",))
