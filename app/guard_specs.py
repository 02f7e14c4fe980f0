"""What ``immune eval --guard SPEC`` measures: a rule set as our whole input guard, or one registered stage alone.

``SPEC`` is one of

* a rule set — ``builtin:NAME``, a JSON file, ``models:/kosmoi-guardrails@production`` — run as the full input guard;
* ``STAGE`` or ``STAGE:SCANNER`` — a registered input stage alone: ``llm-guard:InvisibleText``,
  ``llamafirewall:regex``, a plugin's stage (its own verdict), or one of ours — ``signals``, ``rules``,
  ``classifier``, ``semantic`` — as the baseline guard with only that stage (its thresholds apply);
* ``STAGE:@FILE`` — the stage with its options from a YAML or JSON file (``http-guard:@lakera.yaml``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from evolve.guard_eval import TextScanner
from kosmoi.registry import Ref
from targets.input_guard import InputGuard
from targets.rules import RuleSet, load_ruleset
from targets.stages import STAGES, StageBuild, StageGuard, build_stages

OUR_STAGES = frozenset({"signals", "rules", "classifier", "semantic"})  # scored with the rule set's thresholds, as in the full guard


class GuardSpecError(ValueError):
    """A ``--guard`` value that names nothing buildable (the message says what was wrong)."""


@dataclass(frozen=True, slots=True)
class BuiltGuard:
    """A guard ready to measure, what it is, and its rule set when it is one of ours."""

    spec: str
    scanner: TextScanner
    ruleset: RuleSet | None = None


def _stage_options(argument: str) -> dict[str, Any]:
    if not argument:
        return {}
    if not argument.startswith("@"):
        return {"scanner": argument}
    path = Path(argument[1:])
    try:
        loaded = yaml.safe_load(path.read_text("utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read {path} ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{path} is not YAML or JSON ({str(exc).splitlines()[0]})") from None
    if not isinstance(loaded, dict):
        raise ValueError(f"{path} must hold a mapping of the stage's options")
    return loaded


def is_stage_spec(spec: str) -> bool:
    """Whether ``spec`` names a registered input stage (else it is a rule set reference)."""
    name = spec.partition(":")[0]
    return name in STAGES and STAGES.get(name).side == "input"


def build_guard(spec: str, load_rules: Any) -> BuiltGuard:
    """The guard ``spec`` names; ``load_rules(ref)`` resolves rule-set references (its errors pass through)."""
    if not is_stage_spec(spec):
        ruleset = load_rules(spec)
        return BuiltGuard(spec, InputGuard(ruleset), ruleset)
    name, _, argument = spec.partition(":")
    if name in OUR_STAGES and not argument:
        baseline = load_ruleset("builtin:baseline")
        return BuiltGuard(spec, InputGuard(baseline, stages=(Ref(name),)), baseline)
    try:
        (stage,) = build_stages([Ref(name, _stage_options(argument))], "input", StageBuild(load_ruleset("builtin:baseline")))
    except (ValueError, ImportError) as exc:
        raise GuardSpecError(f"--guard {spec}: {exc}") from None
    return BuiltGuard(spec, StageGuard(stage))
