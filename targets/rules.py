"""Versioned, serialisable guardrail rule sets.

A rule set is a JSON document::

    {"format": "kosmoi-ruleset/1", "name": "baseline", "version": "1",
     "parent": null, "thresholds": {"flag": 0.5, "block": 0.9},
     "rules": [{"id": "override.ignore-previous", "kind": "regex",
                "pattern": "...", "stage": "input", "action": "block",
                "weight": 1.0, "description": "...",
                "provenance": {"source": "baseline"}}],
     "hash": "sha256:..."}

``hash`` is the SHA-256 of the canonical JSON of everything else; a file whose
hash does not match its content is refused. Every pattern is compiled with RE2
at load time: a rule RE2 cannot run in linear time (backreferences,
lookaround, huge repetition counts) is rejected with a message naming it.
"""

from __future__ import annotations

import hashlib
import json
import re as _stdlib_re
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import re2
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from targets.classifier import ClassifierSpec
from targets.semantic import SemanticSpec

FORMAT: Literal["kosmoi-ruleset/1"] = "kosmoi-ruleset/1"
BUILTIN_PREFIX = "builtin:"
BUILTIN_RULESETS = {"baseline": "baseline_rules.json"}

_RULE_ID_RE = _stdlib_re.compile(r"^[a-z0-9][a-z0-9._-]{0,79}$")
MAX_PATTERN_CHARS = 2_000
MAX_SIGNATURE_GAP = 200


class RuleSetError(ValueError):
    """A rule set or one of its rules cannot be used; the message says which and why."""


class Rule(BaseModel):
    """One matching rule.

    kinds: ``regex`` (RE2 syntax, matched case-insensitively against the
    canonical text), ``substring`` (a literal), ``signature`` (space-separated
    literal tokens that must appear in order, at most ``max_gap`` characters
    apart: a Polygraph-style token-subsequence signature).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    kind: Literal["regex", "substring", "signature"]
    pattern: str = Field(min_length=1, max_length=MAX_PATTERN_CHARS)
    stage: Literal["input", "output"] = "input"
    action: Literal["block", "flag"] = "block"
    weight: float = Field(default=1.0, ge=0.0, le=1.0)
    max_gap: int = Field(default=60, ge=0, le=MAX_SIGNATURE_GAP)
    quotable: bool = Field(default=False, description="a quoted mention in a text about attacks may downgrade it (phrases, not concrete actions)")
    description: str = ""
    provenance: dict[str, Any] = Field(default_factory=lambda: {"source": "manual"})

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not _RULE_ID_RE.match(value):
            raise ValueError("must be 1-80 characters of a-z 0-9 . _ - starting with a letter or digit")
        return value

    def re2_pattern(self) -> str:
        """The RE2 pattern this rule compiles to."""
        if self.kind == "regex":
            return self.pattern
        if self.kind == "substring":
            return str(re2.escape(self.pattern.lower()))
        tokens = self.pattern.lower().split()
        return rf"(?s:.{{0,{self.max_gap}}})".join(re2.escape(token) for token in tokens)


def re2_options() -> re2.Options:
    """Options every rule is compiled with: case-insensitive, ``.`` matches newlines."""
    options = re2.Options()
    options.case_sensitive = False
    options.dot_nl = True
    options.log_errors = False
    options.never_capture = True
    options.max_mem = 64 << 20
    return options


def check_linear(rule: Rule) -> None:
    """Raise RuleSetError unless the rule runs on a linear-time engine and can fire selectively."""
    try:
        compiled = re2.compile(rule.re2_pattern(), re2_options())
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise RuleSetError(
            f"rule {rule.id!r}: pattern {rule.pattern[:80]!r} cannot run in linear time or is invalid ({reason}); "
            "no backreferences or lookaround, repetition counts up to 1000"
        ) from None
    if compiled.search("") is not None:
        raise RuleSetError(f"rule {rule.id!r}: pattern {rule.pattern[:80]!r} matches the empty string, so it would fire on every text")


class Thresholds(BaseModel):
    """Score thresholds of the verdict (score >= flag -> flag, >= block -> block)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    flag: float = Field(default=0.5, ge=0.0, le=1.0)
    block: float = Field(default=0.9, ge=0.0, le=1.0)


class RuleSet(BaseModel):
    """A versioned set of rules and the classifier (with its thresholds) they ship with."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["kosmoi-ruleset/1"] = FORMAT
    name: str
    version: str
    parent: str | None = None
    description: str = ""
    thresholds: Thresholds = Thresholds()
    rules: tuple[Rule, ...] = ()
    classifier: ClassifierSpec | None = None
    semantic: SemanticSpec | None = None
    hash: str | None = None

    def content_hash(self) -> str:
        """SHA-256 over the canonical JSON of everything but ``hash``."""
        body = self.model_dump(mode="json", exclude={"hash"})
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()

    def sealed(self) -> RuleSet:
        """A copy whose ``hash`` matches its content."""
        return self.model_copy(update={"hash": self.content_hash()})

    def for_stage(self, stage: str) -> tuple[Rule, ...]:
        return tuple(rule for rule in self.rules if rule.stage == stage)

    def to_json(self) -> str:
        return json.dumps(self.sealed().model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"


def validate_ruleset(ruleset: RuleSet, *, require_hash: bool = True) -> RuleSet:
    """Check ids are unique, the hash matches and every rule runs in linear time."""
    seen: set[str] = set()
    for rule in ruleset.rules:
        if rule.id in seen:
            raise RuleSetError(f"rule id {rule.id!r} appears more than once")
        seen.add(rule.id)
        check_linear(rule)
    expected = ruleset.content_hash()
    if ruleset.hash is None:
        if require_hash:
            raise RuleSetError("rule set has no 'hash'; seal it with `immune rules seal FILE`")
    elif ruleset.hash != expected:
        raise RuleSetError(f"hash mismatch: the file says {ruleset.hash}, its content hashes to {expected} (corrupt or edited)")
    return ruleset if ruleset.hash else ruleset.sealed()


def _format_validation_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}" + (f" ({len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else "")


def parse_ruleset(text: str, source: str = "<rules>", *, require_hash: bool = True) -> RuleSet:
    """Parse and validate a rule set from JSON text."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RuleSetError(f"{source}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(raw, dict):
        raise RuleSetError(f"{source}: a rule set is a JSON object")
    try:
        ruleset = RuleSet.model_validate(raw)
    except ValidationError as exc:
        raise RuleSetError(f"{source}: {_format_validation_error(exc)}") from None
    try:
        return validate_ruleset(ruleset, require_hash=require_hash)
    except RuleSetError as exc:
        raise RuleSetError(f"{source}: {exc}") from None


def load_ruleset(ref: str | Path, *, require_hash: bool = True) -> RuleSet:
    """Load a rule set from ``builtin:NAME`` or a JSON file path."""
    ref_str = str(ref)
    if ref_str.startswith(BUILTIN_PREFIX):
        name = ref_str[len(BUILTIN_PREFIX) :]
        if name not in BUILTIN_RULESETS:
            raise RuleSetError(f"unknown built-in rule set {name!r}; known: {', '.join(sorted(BUILTIN_RULESETS))}")
        text = resources.files("targets").joinpath("data", BUILTIN_RULESETS[name]).read_text("utf-8")
        return parse_ruleset(text, ref_str, require_hash=require_hash)
    path = Path(ref_str)
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise RuleSetError(f"{path}: no such rule set file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleSetError(f"{path}: cannot read ({exc})") from None
    return parse_ruleset(text, str(path), require_hash=require_hash)
