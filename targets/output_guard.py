"""The output guardrail: what the model says and the tool calls it wants to make.

Text: secrets, canaries and PII are redacted (the rest of the text is kept);
encoded runs (base64, hex, URL, quoted-printable; nested, bounded) are decoded
and re-scanned, and a run hiding a secret is redacted whole; dangerous shell
commands block the response with the reason; output-stage rules of the rule
set apply to the canonical text.

Tool calls: business sanitisers (price floor, transfer and refund limits) and
the same redaction of message bodies. Nothing is ever executed here.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import re2
from pydantic import Field

from kosmoi.settings import Settings
from kosmoi.types import Action, Verdict
from targets.canonical import canonicalize, without_surrogates
from targets.claims import Facts, false_claims
from targets.decoding import decode_runs
from targets.detectors import ALL_DETECTORS, DEFAULT_PHONE_REGIONS, DetectorBank, Finding, phone_detector, redact
from targets.matcher import Engine, RuleMatcher
from targets.rules import RuleSet
from targets.tools import ToolCall

_URL_IGNORED = str.maketrans("", "", "\t\n\r")
_COMMAND_REASONS = {d.id: d.reason for d in ALL_DETECTORS if d.category == "command"}

PRICE_FLOOR_RULE = "business.price-floor"
TRANSFER_LIMIT_RULE = "business.transfer-limit"
REFUND_LIMIT_RULE = "business.refund-limit"
CLAIM_RULES = {"false_price": "claim.false-price", "false_policy": "claim.false-policy", "false_payment_details": "claim.false-payment-details"}


class BusinessPolicy(Settings):
    """Business sanitisers applied to tool calls."""

    price_floor_usd: float = Field(default=50.0, ge=0)
    max_transfer_usd: float = Field(default=10_000.0, gt=0)
    max_refund_usd: float = Field(default=500.0, gt=0)


def _spaced_pattern(secret: str) -> str:
    """Matches ``secret`` with separators between its characters (``s-e-c-r-e-t``)."""
    return r"[\s.\-_|,/]{1,3}".join(re2.escape(ch) for ch in secret)


def _without_pii_inside_secrets(findings: list[Finding]) -> list[Finding]:
    """Drop PII found inside a secret or canary (digits of a key are not a phone number); ``findings`` sorted by start."""
    secrets = [(f.start, f.end) for f in findings if f.category in ("secret", "canary")]
    if not secrets:
        return findings
    return [f for f in findings if f.category != "pii" or not any(start <= f.start and f.end <= end for start, end in secrets)]


class OutputGuard:
    """Scans model output before it reaches the user or a tool."""

    def __init__(
        self,
        ruleset: RuleSet,
        canaries: Mapping[str, str] | None = None,
        policy: BusinessPolicy | None = None,
        *,
        redact_categories: frozenset[str] = frozenset({"secret", "canary", "pii"}),
        max_decode_depth: int = 4,
        max_decoded_bytes: int = 64 * 1024,
        engine: Engine = "auto",
        phone_regions: Sequence[str] = DEFAULT_PHONE_REGIONS,
        facts: Facts | None = None,
    ) -> None:
        """``facts``: the catalog and policy tables; replies that contradict them are blocked (misinformation)."""
        self.policy = policy or BusinessPolicy()
        self.facts = facts
        self.redact_categories = redact_categories
        self.max_decode_depth = max_decode_depth
        self.max_decoded_bytes = max_decoded_bytes
        literals: list[tuple[str, str]] = []
        for value in (canaries or {}).values():
            literals.append(("canary", value))
            literals.append(("canary.reversed", value[::-1]))
        detectors = ALL_DETECTORS
        if tuple(phone_regions) != DEFAULT_PHONE_REGIONS:  # phone numbers of the regions the deployment serves
            detectors = tuple(phone_detector(phone_regions) if d.id == "pii.phone" else d for d in ALL_DETECTORS)
        self.bank = DetectorBank(detectors, tuple(literals))
        spaced = tuple(
            (f"canary.spaced.{index}", _spaced_pattern(value)) for index, value in enumerate((canaries or {}).values()) if len(value) >= 8
        )
        self._spaced = [(did, re2.compile(pattern)) for did, pattern in spaced]
        self.matcher = RuleMatcher(ruleset.for_stage("output"), engine)

    def _findings(self, text: str) -> list[Finding]:
        findings = self.bank.find(text)
        for _secret, pattern in self._spaced:
            findings.extend(Finding("canary.spaced", "canary", m.start(), m.end()) for m in pattern.finditer(text))
        if "<" in text and ("&" in text or "\t" in text or "\n" in text):
            # as a browser reads a tag: entities decoded, and tabs and newlines dropped from URLs (java&#x09;script: runs)
            unescaped = html.unescape(text).translate(_URL_IGNORED)
            if unescaped != text:
                findings.extend(
                    Finding(f"{hidden.detector}@html-entities", hidden.category, 0, len(text))
                    for hidden in self.bank.find(unescaped) if hidden.detector.startswith("markup.")
                )
        for run in decode_runs(text, max_depth=self.max_decode_depth, max_bytes=self.max_decoded_bytes):
            for hidden in self.bank.find(run.decoded):
                if hidden.category == "pii":
                    continue
                findings.append(Finding(f"{hidden.detector}@{'+'.join(run.chain)}", hidden.category, run.start, run.end))
        findings.sort(key=lambda f: (f.start, -f.end))
        return _without_pii_inside_secrets(findings)

    def scan(self, text: str) -> Verdict:
        """Verdict on a response; ``verdict.text`` is the text to deliver (redacted)."""
        text = without_surrogates(text)
        findings = self._findings(text) if text else []
        fired = list(dict.fromkeys(f.detector for f in findings))
        reasons = [f"{f.detector}: {_COMMAND_REASONS[f.detector.split('@')[0]]}" for f in findings if f.category == "command"]
        block = any(f.category == "command" for f in findings)
        for claim in false_claims(text, self.facts) if self.facts is not None and text else ():
            claim_rule = CLAIM_RULES[claim.kind]
            fired.append(claim_rule)
            reasons.append(f"{claim_rule}: {claim.detail}")
            block = True
        flag = any(f.category in self.redact_categories for f in findings)
        score = 1.0 if block else (0.7 if flag else 0.0)
        if len(self.matcher):
            for rule in self.matcher.match(canonicalize(text).variants()):
                fired.append(rule.id)
                score = max(score, rule.weight)
                block = block or rule.action == "block"
                flag = flag or rule.action == "flag"
        delivered = redact(text, findings, self.redact_categories) if flag else text
        action = Action.BLOCK if block else Action.FLAG if flag else Action.ALLOW
        return Verdict(action, tuple(fired), score, text="" if block else delivered, reasons=tuple(dict.fromkeys(reasons)))

    def check_call(self, call: ToolCall) -> tuple[Verdict, ToolCall]:
        """Verdict on a proposed tool call and the call to make (message bodies redacted)."""
        policy = self.policy
        key = (call.service, call.method)
        amount = float(call.args.get("amount", 0.0) or 0.0)
        if key == ("catalog", "set_price") and float(call.args.get("price", 0.0)) < policy.price_floor_usd:
            return Verdict(Action.BLOCK, (PRICE_FLOOR_RULE,), 1.0, reasons=(f"price below ${policy.price_floor_usd:.0f} floor",)), call
        if key == ("finance", "transfer") and amount > policy.max_transfer_usd:
            return Verdict(Action.BLOCK, (TRANSFER_LIMIT_RULE,), 1.0, reasons=(f"transfer above ${policy.max_transfer_usd:.0f}",)), call
        if key == ("finance", "refund") and amount > policy.max_refund_usd:
            return Verdict(Action.BLOCK, (REFUND_LIMIT_RULE,), 1.0, reasons=(f"refund above ${policy.max_refund_usd:.0f}",)), call
        if key == ("messaging", "send"):
            verdict = self.scan(str(call.args.get("body", "")))
            if verdict.action is not Action.ALLOW:
                return verdict, call.with_args(body=verdict.text or "")
        return Verdict(Action.ALLOW), call
