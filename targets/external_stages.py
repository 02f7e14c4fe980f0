"""Bring your own guardrails: other people's detectors as guard stages, by configuration.

* ``http-guard`` / ``http-guard-output`` — any hosted guard API: a JSON
  request template (``{text}`` in its strings), the path to its verdict and
  the values that mean block or flag, or a score path and thresholds; headers
  from the environment (never logged); bounded retries; and what a failed call
  means (``on_error``: flag by default, so an outage is visible, never silent);
* ``llm-guard`` / ``llm-guard-output`` — a scanner of LLM Guard
  (``llm_guard.input_scanners`` / ``output_scanners``) by class name;
* ``llamafirewall`` / ``llamafirewall-output`` — a LlamaFirewall scanner
  (``regex``, ``hidden_ascii``, ``prompt_guard``, ``code_shield``, ...).

The two libraries are optional extras (``pip install -e ".[peers]"``),
imported only when a stage that needs one is built; their model-based
scanners need their weights in the local Hugging Face cache. Each stage
works in a guard pipeline (``targets.input_guard.stages``,
``targets.output_guard.stages``) and as a subject of ``immune eval --guard``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from kosmoi.settings import S, Settings, validated_options
from kosmoi.types import Action, Verdict
from targets.http_json import RemoteError, RetryPolicy, check_env_refs, extract, parse_path, placeholders, post_json, render, secret_headers
from targets.stages import ScanContext, Side, StageBuild, register_stage

log = logging.getLogger(__name__)

PEERS_HINT = 'pip install -e ".[peers]"'
_ERROR_ACTION = {"allow": Action.ALLOW, "flag": Action.FLAG, "block": Action.BLOCK}


def _options(model: type[S], stage: str, options: Mapping[str, Any]) -> S:
    """The stage's options validated, or a ValueError naming the stage and the bad option."""
    return validated_options(model, f"guard stage {stage!r}", options)


class HttpGuardOptions(Settings):
    """A hosted guard API: where it is, what to send, and how to read its answer."""

    url: str = Field(pattern=r"^https?://")
    request_template: Any = Field(default_factory=lambda: {"text": "{text}"}, description="the request body; {text} in its strings")
    verdict_path: str = Field(default="", description="where the verdict is, e.g. $.results[0].flagged")
    block_when: list[Any] = Field(default_factory=lambda: [True, "block", "BLOCK", "unsafe", "malicious", "injection"])
    flag_when: list[Any] = Field(default_factory=lambda: ["flag", "FLAG", "warn", "suspicious"])
    score_path: str = Field(default="", description="where a 0-1 score is, e.g. $.score")
    block_score: float | None = Field(default=None, ge=0, le=1, description="block at or above this score")
    flag_score: float | None = Field(default=None, ge=0, le=1, description="flag at or above this score")
    headers: dict[str, str] = Field(default_factory=dict, description="values may use ${ENV_VAR}; never logged")
    timeout_s: float = Field(default=10.0, gt=0, le=300)
    max_retries: int = Field(default=2, ge=0, le=10)
    backoff_s: float = Field(default=0.2, ge=0, le=30)
    on_error: Literal["allow", "flag", "block"] = Field(default="flag", description="the verdict when the guard cannot be reached or read")
    rule_id: str = Field(default="http-guard", min_length=1, max_length=64)

    @field_validator("verdict_path", "score_path")
    @classmethod
    def _path(cls, value: str) -> str:
        if value:
            parse_path(value)
        return value

    @model_validator(mode="after")
    def _reads_something(self) -> HttpGuardOptions:
        if not self.verdict_path and not self.score_path:
            raise ValueError("give verdict_path (and block_when / flag_when) or score_path (and block_score / flag_score)")
        if self.score_path and self.block_score is None and self.flag_score is None:
            raise ValueError("score_path needs block_score or flag_score")
        unknown = placeholders(self.request_template) - {"text"}
        if unknown:
            raise ValueError(f"request_template: unknown placeholder(s) {', '.join(sorted('{' + u + '}' for u in unknown))}; the only one is {{text}}")
        check_env_refs(self.headers)
        return self


class HttpGuard:
    """A hosted guard API as a stage."""

    def __init__(self, options: Mapping[str, Any], name: str = "http-guard") -> None:
        import httpx2

        self.name = name
        self.options: HttpGuardOptions = _options(HttpGuardOptions, name, options)
        o = self.options
        self._http = httpx2.Client(headers={"Content-Type": "application/json", **secret_headers(o.headers, f"guard stage {name!r}")})
        self._policy = RetryPolicy(o.timeout_s, o.max_retries, o.backoff_s)
        self._verdict_steps = parse_path(o.verdict_path) if o.verdict_path else None
        self._score_steps = parse_path(o.score_path) if o.score_path else None

    def __getstate__(self) -> dict[str, Any]:
        return {"name": self.name, "options": self.options.model_dump()}  # the HTTP client is rebuilt

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["options"], state["name"])  # type: ignore[misc]

    def scan(self, text: str, context: ScanContext) -> Verdict:
        o = self.options
        try:
            answer = post_json(self._http, o.url, render(o.request_template, {"text": text}), {}, self._policy)
            action, score = Action.ALLOW, 0.0
            if self._verdict_steps is not None:
                value = extract(answer, self._verdict_steps)
                action = Action.BLOCK if value in o.block_when else Action.FLAG if value in o.flag_when else Action.ALLOW
                score = {Action.BLOCK: 1.0, Action.FLAG: 0.5, Action.ALLOW: 0.0}[action]
            if self._score_steps is not None:
                raw = extract(answer, self._score_steps)
                if isinstance(raw, bool) or not isinstance(raw, int | float):
                    raise KeyError(f"the score at {o.score_path} is not a number")
                score = max(0.0, min(1.0, float(raw)))
                if o.block_score is not None and score >= o.block_score:
                    action = Action.BLOCK
                elif o.flag_score is not None and score >= o.flag_score and action is Action.ALLOW:
                    action = Action.FLAG
        except (RemoteError, KeyError) as exc:
            reason = str(exc.args[0]) if isinstance(exc, KeyError) else str(exc)
            log.warning("guard stage %s: %s", self.name, reason)
            return Verdict(_ERROR_ACTION[o.on_error], (f"{o.rule_id}.unavailable",), 0.0, reasons=(f"{self.name} unavailable: {reason}",))
        return Verdict(action, (o.rule_id,) if action is not Action.ALLOW else (), score)


@register_stage("http-guard", side="input")
def _http_input(build: StageBuild, options: Mapping[str, Any]) -> HttpGuard:
    return HttpGuard(options, "http-guard")


@register_stage("http-guard-output", side="output")
def _http_output(build: StageBuild, options: Mapping[str, Any]) -> HttpGuard:
    return HttpGuard(options, "http-guard-output")


class ScannerOptions(Settings):
    """One scanner of a guard library, by name, with its constructor's keyword arguments."""

    scanner: str = Field(min_length=1, max_length=64)
    options: dict[str, Any] = Field(default_factory=dict)


def _missing(library: str, module: str) -> ImportError:
    return ImportError(f"the guard stage needs {library} ({module} is not installed): {PEERS_HINT}")


class LLMGuardScanner:
    """An LLM Guard scanner as a stage: ``is_valid`` false blocks; its risk score is the stage's score."""

    def __init__(self, options: Mapping[str, Any], side: Side) -> None:
        o: ScannerOptions = _options(ScannerOptions, "llm-guard", options)
        self._spec = (dict(options), side)
        try:
            if side == "input":
                import llm_guard.input_scanners as scanners
            else:
                import llm_guard.output_scanners as scanners
        except ImportError:
            raise _missing("LLM Guard", "llm_guard") from None
        _quiet_llm_guard()
        if not hasattr(scanners, o.scanner):
            known = ", ".join(n for n in dir(scanners) if n[:1].isupper())
            raise ValueError(f"guard stage 'llm-guard': no {side} scanner {o.scanner!r}; LLM Guard has {known}")
        try:
            self.scanner = getattr(scanners, o.scanner)(**o.options)
        except Exception as exc:  # model scanners load weights here; offline, that fails
            raise ValueError(f"guard stage 'llm-guard': {o.scanner} could not start ({type(exc).__name__}: {str(exc)[:200]})") from None
        self.side = side
        self.name = f"llm-guard:{o.scanner}"
        self.rule_id = f"llm-guard.{o.scanner}"

    def __getstate__(self) -> tuple[dict[str, Any], Side]:
        return self._spec  # the library's scanner is rebuilt where it is unpickled

    def __setstate__(self, state: tuple[dict[str, Any], Side]) -> None:
        self.__init__(*state)  # type: ignore[misc]

    def scan(self, text: str, context: ScanContext) -> Verdict:
        if self.side == "input":
            _sanitized, valid, risk = self.scanner.scan(text)
        else:
            _sanitized, valid, risk = self.scanner.scan("", text)
        score = max(0.0, min(1.0, float(risk)))
        return Verdict(Action.ALLOW, (), score) if valid else Verdict(Action.BLOCK, (self.rule_id,), max(score, 0.5))


def _quiet_llm_guard() -> None:
    """LLM Guard logs every scan through structlog to stdout (where ``immune eval --json`` writes): errors only, to stderr."""
    import sys

    from llm_guard.util import configure_logger

    configure_logger("ERROR", stream=sys.stderr)


@register_stage("llm-guard", side="input")
def _llm_guard_input(build: StageBuild, options: Mapping[str, Any]) -> LLMGuardScanner:
    return LLMGuardScanner(options, "input")


@register_stage("llm-guard-output", side="output")
def _llm_guard_output(build: StageBuild, options: Mapping[str, Any]) -> LLMGuardScanner:
    return LLMGuardScanner(options, "output")


class LlamaFirewallScanner:
    """A LlamaFirewall scanner as a stage: block blocks, human-in-the-loop flags, a scanner error flags."""

    def __init__(self, options: Mapping[str, Any], side: Side) -> None:
        o: ScannerOptions = _options(ScannerOptions, "llamafirewall", options)
        self._spec = (dict(options), side)
        try:
            import llamafirewall as lf
        except ImportError:
            raise _missing("LlamaFirewall", "llamafirewall") from None
        kinds = {kind.value: kind for kind in lf.ScannerType}
        if o.scanner not in kinds:
            raise ValueError(f"guard stage 'llamafirewall': no scanner {o.scanner!r}; LlamaFirewall has {', '.join(kinds)}")
        role = lf.Role.USER if side == "input" else lf.Role.ASSISTANT
        try:
            self.firewall = lf.LlamaFirewall(scanners={role: [kinds[o.scanner]]})
        except Exception as exc:
            raise ValueError(f"guard stage 'llamafirewall': {o.scanner} could not start ({type(exc).__name__}: {str(exc)[:200]})") from None
        self.message = lf.UserMessage if side == "input" else lf.AssistantMessage
        self.decisions = {lf.ScanDecision.BLOCK: Action.BLOCK, lf.ScanDecision.HUMAN_IN_THE_LOOP_REQUIRED: Action.FLAG}
        self.error_status = getattr(lf, "ScanStatus", None) and lf.ScanStatus.ERROR
        self.name = f"llamafirewall:{o.scanner}"
        self.rule_id = f"llamafirewall.{o.scanner}"

    def __getstate__(self) -> tuple[dict[str, Any], Side]:
        return self._spec  # the library's scanner is rebuilt where it is unpickled

    def __setstate__(self, state: tuple[dict[str, Any], Side]) -> None:
        self.__init__(*state)  # type: ignore[misc]

    def scan(self, text: str, context: ScanContext) -> Verdict:
        result = self.firewall.scan(self.message(content=text))
        if self.error_status is not None and getattr(result, "status", None) == self.error_status:
            return Verdict(Action.FLAG, (f"{self.rule_id}.error",), 0.0, reasons=(f"{self.name} failed: {str(result.reason)[:200]}",))
        action = self.decisions.get(result.decision, Action.ALLOW)
        score = max(0.0, min(1.0, float(result.score or 0.0)))
        return Verdict(action, (self.rule_id,) if action is not Action.ALLOW else (), score)


@register_stage("llamafirewall", side="input")
def _llamafirewall_input(build: StageBuild, options: Mapping[str, Any]) -> LlamaFirewallScanner:
    return LlamaFirewallScanner(options, "input")


@register_stage("llamafirewall-output", side="output")
def _llamafirewall_output(build: StageBuild, options: Mapping[str, Any]) -> LlamaFirewallScanner:
    return LlamaFirewallScanner(options, "output")
