"""Detectors for the output guardrail: secrets, PII and dangerous shell commands.

All patterns run on RE2 (linear time). Detectors with a ``validator`` (Luhn,
IBAN mod-97, entropy) only count a match the validator accepts, which keeps
false positives on ordinary numbers and words down. Nothing is ever executed:
commands are only matched as text.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import phonenumbers
import re2


def _options(case_sensitive: bool) -> re2.Options:
    options = re2.Options()
    options.case_sensitive = case_sensitive
    options.log_errors = False
    options.max_mem = 32 << 20
    return options


def luhn_ok(candidate: str) -> bool:
    """Luhn checksum of the digits in ``candidate`` (13 to 19 digits)."""
    digits = [int(ch) for ch in candidate if ch.isdigit()]
    if not 13 <= len(digits) <= 19 or len(set(digits)) == 1:
        return False
    total = 0
    for index, digit in enumerate(reversed(digits)):
        if index % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def iban_ok(candidate: str) -> bool:
    """ISO 13616 mod-97 check of an IBAN (spaces allowed)."""
    iban = candidate.replace(" ", "").upper()
    if not 15 <= len(iban) <= 34 or not iban[:2].isalpha() or not iban[2:4].isdigit():
        return False
    rearranged = iban[4:] + iban[:4]
    try:
        number = int("".join(str(int(ch, 36)) for ch in rearranged))
    except ValueError:
        return False
    return number % 97 == 1


def shannon_entropy(value: str) -> float:
    """Bits per character of ``value``."""
    if not value:
        return 0.0
    counts = Counter(value)
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def _high_entropy_value(match_text: str) -> bool:
    value = match_text.split("=", 1)[-1].split(":", 1)[-1].strip(" \"'")
    return len(value) >= 16 and shannon_entropy(value) >= 3.5


@dataclass(frozen=True, slots=True)
class Detector:
    """One kind of sensitive content."""

    id: str
    category: str  # secret | pii | command
    pattern: str
    case_sensitive: bool = True
    validator: Callable[[str], bool] | None = None
    reason: str = ""


SECRET_DETECTORS: tuple[Detector, ...] = (
    Detector("secret.aws-access-key-id", "secret", r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[0-9A-Z]{16}\b"),
    Detector("secret.aws-secret-key", "secret", r"(?i)aws_?secret_?access_?key[\"']?\s*[:=]\s*[\"']?[A-Za-z0-9/+]{40}"),
    Detector("secret.gcp-api-key", "secret", r"\bAIza[0-9A-Za-z_\-]{35}"),
    Detector("secret.gcp-oauth-secret", "secret", r"\bGOCSPX-[A-Za-z0-9_\-]{28}"),
    Detector("secret.azure-storage-key", "secret", r"(?i)AccountKey=[A-Za-z0-9+/]{86}=="),
    Detector("secret.azure-client-secret", "secret", r"\b[A-Za-z0-9_~.\-]{3}\dQ~[A-Za-z0-9_~.\-]{31,34}"),
    Detector("secret.github-token", "secret", r"\bgh[pousr]_[A-Za-z0-9]{36,255}\b|\bgithub_pat_[A-Za-z0-9_]{60,255}"),
    Detector("secret.gitlab-token", "secret", r"\bglpat-[A-Za-z0-9_\-]{20,}"),
    Detector("secret.slack-token", "secret", r"\bxox[abposr]-[A-Za-z0-9\-]{10,72}"),
    Detector("secret.slack-webhook", "secret", r"https://hooks\.slack\.com/services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]+"),
    Detector("secret.stripe-key", "secret", r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,99}"),
    Detector("secret.openai-key", "secret", r"\bsk-(?:proj-|svcacct-|admin-)[A-Za-z0-9_\-]{20,}|\bsk-[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}|\bsk-[A-Za-z0-9]{48}\b"),
    Detector("secret.anthropic-key", "secret", r"\bsk-ant-(?:api|admin)\d{2}-[A-Za-z0-9_\-]{32,}"),
    Detector("secret.huggingface-token", "secret", r"\bhf_[A-Za-z0-9]{30,40}\b"),
    Detector("secret.private-key", "secret", r"-----BEGIN [A-Z ]{0,20}PRIVATE KEY(?: BLOCK)?-----[A-Za-z0-9+/=\s:,\-]*(?:-----END [A-Z ]{0,20}PRIVATE KEY(?: BLOCK)?-----)?"),
    Detector("secret.jwt", "secret", r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"),
    Detector("secret.twilio-key", "secret", r"\bSK[0-9a-f]{32}\b"),
    Detector("secret.sendgrid-key", "secret", r"\bSG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}"),
    Detector("secret.npm-token", "secret", r"\bnpm_[A-Za-z0-9]{36}\b"),
    Detector("secret.pypi-token", "secret", r"\bpypi-AgEIcHlwaS5vcmc[A-Za-z0-9_\-]{50,}"),
    Detector("secret.shopify-token", "secret", r"\bshp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}\b"),
    Detector("secret.mailgun-key", "secret", r"\bkey-[0-9a-zA-Z]{32}\b"),
    Detector("secret.digitalocean-token", "secret", r"\bdo[por]_v1_[a-f0-9]{64}\b"),
    Detector("secret.databricks-token", "secret", r"\bdapi[a-f0-9]{32}\b"),
    Detector("secret.connection-string", "secret", r"\b[a-z][a-z0-9+.\-]{1,20}://[^\s:/@]{1,64}:[^\s@/]{4,128}@[^\s/]{1,255}"),
    Detector(
        "secret.generic-assignment",
        "secret",
        r"(?i)\b(?:api[_\-]?key|secret(?:[_\-]?key)?|access[_\-]?key|auth[_\-]?token|client[_\-]?secret|passw(?:or)?d|token)[\"']?\s*[:=]\s*[\"']?[A-Za-z0-9/+_\-.]{16,200}",
        validator=_high_entropy_value,
    ),
)

# Phone numbers: RE2 finds bounded digit runs that could be one (7-17 digits, with the separators numbers are
# written with); Google's libphonenumber (``phonenumbers``) decides, for the configured regions, whether the run
# is a valid number in a number's context (dates, timestamps and prices are not).
DEFAULT_PHONE_REGIONS: tuple[str, ...] = ("US", "CA", "GB", "IE", "DE", "FR", "ES", "IT", "NL", "AU", "IN")
PHONE_CANDIDATE = r"(?:\+|\(|\b)\d(?:[ .\-()/]{0,2}\d){6,16}\b"


def phone_ok(candidate: str, regions: Sequence[str] = DEFAULT_PHONE_REGIONS) -> bool:
    """Whether ``candidate`` holds a valid phone number of one of ``regions`` (any region when it starts with +)."""
    for region in ("ZZ",) if candidate.lstrip("(").startswith("+") else regions:
        if next(iter(phonenumbers.PhoneNumberMatcher(candidate, region, leniency=phonenumbers.Leniency.VALID)), None) is not None:
            return True
    return False


def phone_detector(regions: Sequence[str] = DEFAULT_PHONE_REGIONS) -> Detector:
    """The phone-number detector for ``regions`` (ISO 3166 codes); an unknown region is an error naming it."""
    unknown = sorted(set(regions) - phonenumbers.SUPPORTED_REGIONS)
    if unknown:
        raise ValueError(f"unknown phone-number regions {unknown}: use ISO 3166 codes such as GB, US, DE")
    return Detector("pii.phone", "pii", PHONE_CANDIDATE, validator=functools.partial(phone_ok, regions=tuple(regions)))


PII_DETECTORS: tuple[Detector, ...] = (
    Detector("pii.card-number", "pii", r"\b(?:\d[ \-]?){12,18}\d\b", validator=luhn_ok),
    Detector("pii.iban", "pii", r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b", validator=iban_ok),
    Detector("pii.email", "pii", r"\b[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9.\-]{1,253}\.[A-Za-z]{2,24}\b"),
    phone_detector(),
    Detector("pii.us-ssn", "pii", r"\b\d{3}-\d{2}-\d{4}\b"),
)

COMMAND_DETECTORS: tuple[Detector, ...] = (
    Detector("cmd.download-execute", "command", r"\b(?:curl|wget|fetch|iwr|invoke-webrequest)\b[^|;&\n]{0,200}\|\s*(?:sudo\s+)?(?:ba|z|da|k)?sh\b|\b(?:curl|wget)\b[^\n]{0,200}(?:-o|--output|>)\s*\S+[^\n]{0,80}(?:&&|;)\s*(?:chmod\s+\+x|\./|sh\s|bash\s)|\b(?:iex|invoke-expression)\b[^\n]{0,100}\b(?:downloadstring|iwr|invoke-webrequest)\b", False, reason="downloads and executes remote code"),
    Detector("cmd.reverse-shell", "command", r"/dev/tcp/|\bnc(?:at)?\b[^\n]{0,60}\s-[a-z]*e\s|\bbash\s+-i\b[^\n]{0,30}>&|\bmkfifo\b[^\n]{0,120}\bnc\b|\bpty\.spawn\(|\bsocket\.socket\([^\n]{0,200}\b(?:subprocess|os\.dup2)", False, reason="opens a reverse shell"),
    Detector("cmd.destructive", "command", r"\brm\s+-[a-z]*(?:rf|fr)[a-z]*\s+(?:--no-preserve-root\s+)?(?:/|~|\*|/\*|\$home)(?:\s|$)|\bmkfs(?:\.\w+)?\s|\bdd\b[^\n]{0,60}\bof=/dev/(?:sd|nvme|hd|xvd)|:\(\)\s*\{\s*:\s*\|\s*:\s*&\s*\}\s*;\s*:|\bdrop\s+(?:table|database)\b|\bformat\s+c:", False, reason="destroys data"),
    Detector("cmd.credential-access", "command", r"\b(?:cat|type|less|more|head|tail|cp|scp)\s[^\n]{0,60}(?:/etc/shadow|\.ssh/id_[a-z0-9]+|\.aws/credentials|\.netrc|\.git-credentials|\.docker/config\.json)|\bmimikatz\b|\bsecurity\s+find-generic-password\b|\breg\s+save\s+hklm\\sam", False, reason="reads credentials"),
    Detector("cmd.obfuscated-shell", "command", r"\bbase64\s+(?:-d|--decode)\b[^\n]{0,60}\|\s*(?:ba|z)?sh\b|\beval\b[^\n]{0,20}\$\([^\n]{0,120}base64|\bpython[23]?\s+-c\s[^\n]{0,300}\b(?:exec|eval)\(|\bpowershell\b[^\n]{0,60}-e(?:nc|ncodedcommand)?\s+[A-Za-z0-9+/=]{20,}", False, reason="runs obfuscated shell code"),
)

# Active content for the consumers downstream of a reply (the web view, the reporting job): blocked like commands.
MARKUP_DETECTORS: tuple[Detector, ...] = (
    # a tag starts with a letter right after '<' (browsers read "x < base" as text, so these do too)
    Detector("markup.script-tag", "command", r"<(?:script|iframe|object|embed|frameset|base)\b", False, reason="embeds script or foreign content in HTML"),
    Detector("markup.event-handler", "command", r"<[a-z][a-z0-9-]{0,20}\b[^<>]{0,300}?[\s/\"']on[a-z]{3,30}\s*=", False, reason="an HTML event handler runs script"),
    Detector("markup.script-url", "command", r"\b(?:href|src|action|formaction|data)\s*=\s*[\"']?\s*(?:java|vb)script\s*:", False, reason="a javascript: URL runs script"),
    Detector("sql.stacked-write", "command", r";\s*(?:drop\s+(?:table|database|schema)|delete\s+from|truncate\s|alter\s+table|update\s+\S{1,60}\s+set|insert\s+into|grant\s)", False, reason="a stacked statement writes or destroys data"),
)

ALL_DETECTORS: tuple[Detector, ...] = SECRET_DETECTORS + PII_DETECTORS + COMMAND_DETECTORS + MARKUP_DETECTORS


@dataclass(frozen=True, slots=True)
class Finding:
    """One detected span."""

    detector: str
    category: str
    start: int
    end: int


class DetectorBank:
    """Runs many detectors over a text: one RE2 set pass, then spans for the hits."""

    def __init__(self, detectors: tuple[Detector, ...], literals: tuple[tuple[str, str], ...] = ()) -> None:
        """``literals``: extra ``(detector_id, exact string)`` pairs, e.g. canary secrets."""
        self._args = (detectors, literals)
        self.detectors = detectors + tuple(Detector(did, "canary", re2.escape(lit)) for did, lit in literals if lit)
        self._compiled = [re2.compile(d.pattern, _options(d.case_sensitive)) for d in self.detectors]
        self._prefilter = re2.Set.SearchSet(_options(True))
        for detector in self.detectors:
            pattern = detector.pattern if detector.case_sensitive else f"(?i:{detector.pattern})"
            self._prefilter.Add(pattern)
        self._prefilter.Compile()

    def __getstate__(self) -> tuple[tuple[Detector, ...], tuple[tuple[str, str], ...]]:
        return self._args  # RE2 sets cannot be pickled; rebuilt on load

    def __setstate__(self, state: tuple[tuple[Detector, ...], tuple[tuple[str, str], ...]]) -> None:
        self.__init__(*state)  # type: ignore[misc]

    def find(self, text: str) -> list[Finding]:
        """Every validated finding in ``text``, sorted by position."""
        hits = self._prefilter.Match(text.encode("utf-8", "replace"))
        if not hits:
            return []
        findings: list[Finding] = []
        for index in sorted(hits):
            detector = self.detectors[index]
            for match in self._compiled[index].finditer(text):
                start, end = match.span()
                if detector.validator is not None and not detector.validator(match.group(0)):
                    continue
                findings.append(Finding(detector.id, detector.category, start, end))
        findings.sort(key=lambda f: (f.start, -f.end))
        return findings


def redact(text: str, findings: list[Finding], categories: frozenset[str]) -> str:
    """Replace the spans of findings in ``categories`` with ``[REDACTED:<id>]``."""
    pieces: list[str] = []
    cursor = 0
    for finding in findings:
        if finding.category not in categories or finding.start < cursor:
            continue
        pieces.append(text[cursor : finding.start])
        pieces.append(f"[REDACTED:{finding.detector}]")
        cursor = finding.end
    pieces.append(text[cursor:])
    return "".join(pieces)
