"""Guard stages: the protocol every guardrail check implements, and the registry that builds them.

A guard (input or output) is a sequence of stages. Each stage looks at one
text with a :class:`ScanContext` — the canonical text, what obfuscation
hides in it, and the verdict of the stages before it — and returns its own
:class:`~kosmoi.types.Verdict`. The guard merges the stages' verdicts once
(:func:`merge_verdicts`) and applies the rule set's score thresholds.

Adding a stage is one module plus configuration::

    from targets.stages import StageBuild, register_stage

    @register_stage("shouting", side="input")
    class Shouting:
        name = "shouting"
        def __init__(self, build: StageBuild, options: Mapping[str, object]) -> None: ...
        def scan(self, text: str, context: ScanContext) -> Verdict: ...

and, in the experiment, ``targets.plugins: [my_package.shouting]`` with
``targets.input_guard.stages: [signals, rules, classifier, shouting]``
(see ``docs/architecture.md``). The built-in stages live in
:mod:`targets.input_stages`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from kosmoi.registry import Ref, Registry
from kosmoi.types import Action, Verdict

if TYPE_CHECKING:
    from targets.canonical import Canonical
    from targets.classifier import Classifier
    from targets.matcher import Engine, RuleMatcher
    from targets.rules import RuleSet

Side = Literal["input", "output"]
SEVERITY = {Action.ALLOW: 0, Action.FLAG: 1, Action.BLOCK: 2}


def stricter(first: Action, second: Action) -> Action:
    """The stricter of two actions (block > flag > allow)."""
    return first if SEVERITY[first] >= SEVERITY[second] else second


def merge_verdicts(first: Verdict, second: Verdict) -> Verdict:
    """The stricter action, the union of rules and reasons (first seen first), the higher score."""
    if second.action is Action.ALLOW and not second.rule_ids and not second.reasons and second.text is None and second.score <= first.score:
        return first  # the second adds nothing (the common case: a stage with nothing to say)
    return Verdict(
        stricter(first.action, second.action),
        tuple(dict.fromkeys(first.rule_ids + second.rule_ids)),
        max(first.score, second.score),
        second.text if second.text is not None else first.text,
        tuple(dict.fromkeys(first.reasons + second.reasons)),
    )


@dataclass(slots=True)
class ScanContext:
    """What the stages of one scan share: the text in its forms and the verdict so far.

    ``canon`` and ``derived`` (what obfuscation hides: decoded runs, ROT13,
    reversed, split payloads, ciphers) are computed on first use, so a
    pipeline without a stage that needs them never pays for them. ``judged_text`` is the text a model
    stage should judge: the canonical text, or — when the rules stage found a
    benign quoted mention of an attack — the text around the quotes.
    """

    text: str
    _canon: Canonical | None = None
    verdict: Verdict = field(default_factory=lambda: Verdict(Action.ALLOW))
    _judged: str | None = None
    _derived: tuple[list[tuple[str, str]], bool] | None = None

    @property
    def canon(self) -> Canonical:
        """The canonical text (computed on first use when the caller did not pass it)."""
        if self._canon is None:
            from targets.canonical import canonicalize

            self._canon = canonicalize(self.text)
        return self._canon

    @property
    def judged_text(self) -> str:
        return self.canon.text if self._judged is None else self._judged

    @judged_text.setter
    def judged_text(self, value: str) -> None:
        self._judged = value

    def _hidden(self) -> tuple[list[tuple[str, str]], bool]:
        if self._derived is None:
            from targets.input_stages import hidden_variants

            self._derived = hidden_variants(self.text, self.canon)
        return self._derived

    @property
    def derived(self) -> list[tuple[str, str]]:
        """``(how, canonical text)`` for each variant obfuscation hides."""
        return self._hidden()[0]

    @property
    def too_deep(self) -> bool:
        """Whether something is encoded more layers deep than decoding follows."""
        return self._hidden()[1]

    @property
    def blocked(self) -> bool:
        """Whether an earlier stage already blocks (model stages skip then: the answer is known)."""
        return self.verdict.action is Action.BLOCK


@runtime_checkable
class GuardStage(Protocol):
    """One check of a guard: a pure function of the text, the context and its own configuration."""

    name: str

    def scan(self, text: str, context: ScanContext) -> Verdict:
        """This stage's verdict on ``text`` (``Verdict(Action.ALLOW)`` when it has nothing to say)."""
        ...


class StageBuild:
    """What a stage factory may draw on: the rule set, the matching engine, and parts shared between stages."""

    def __init__(self, ruleset: RuleSet, engine: Engine = "auto") -> None:
        self.ruleset = ruleset
        self.engine = engine

    @functools.cached_property
    def classifier(self) -> Classifier | None:
        """The rule set's light classifier (one instance for every stage that uses it), or None."""
        from targets.classifier import Classifier

        spec = self.ruleset.classifier
        return Classifier.from_spec(spec) if spec is not None else None

    @functools.cached_property
    def input_matcher(self) -> RuleMatcher:
        """The compiled input rules (one instance for every stage that uses them)."""
        from targets.matcher import RuleMatcher

        return RuleMatcher(self.ruleset.for_stage("input"), self.engine)


@runtime_checkable
class BatchGuardStage(GuardStage, Protocol):
    """A stage that can also judge many texts in one call (a model stage vectorising its work, say).

    ``scan_many(texts, contexts)[i]`` must equal ``scan(texts[i], contexts[i])``; stages without it are
    run text by text inside a batch.
    """

    def scan_many(self, texts: Sequence[str], contexts: Sequence[ScanContext]) -> list[Verdict]:
        """This stage's verdict on each text, in order."""
        ...


def run_stages_many(stages: Sequence[GuardStage], texts: Sequence[str], contexts: Sequence[ScanContext]) -> list[Verdict]:
    """:func:`run_stages` over a batch, stage by stage (batch stages get the whole batch at once)."""
    for stage in stages:
        scan_many = getattr(stage, "scan_many", None)
        verdicts = scan_many(texts, contexts) if scan_many is not None else [stage.scan(t, c) for t, c in zip(texts, contexts, strict=True)]
        for context, verdict in zip(contexts, verdicts, strict=True):
            context.verdict = merge_verdicts(context.verdict, verdict)
    return [context.verdict for context in contexts]


def run_stages(stages: Sequence[GuardStage], text: str, context: ScanContext) -> Verdict:
    """Each stage in order on ``text``, its verdict merged into ``context.verdict``; the merged verdict."""
    for stage in stages:
        context.verdict = merge_verdicts(context.verdict, stage.scan(text, context))
    return context.verdict


StageFactory = Callable[[StageBuild, Mapping[str, Any]], GuardStage]


@dataclass(frozen=True, slots=True)
class StageSpec:
    """A registered stage: which guard it belongs to and how to build it."""

    side: Side
    factory: StageFactory


STAGES: Registry[StageSpec] = Registry("guard stage", builtins=("targets.input_stages", "targets.external_stages"))


def register_stage(name: str, side: Side = "input") -> Callable[[StageFactory], StageFactory]:
    """Class or function decorator: make a stage buildable by ``name`` from configuration."""

    def decorate(factory: StageFactory) -> StageFactory:
        STAGES.add(name, StageSpec(side, factory))
        return factory

    return decorate


def stage_names(side: Side) -> tuple[str, ...]:
    """Names of the registered stages of one guard."""
    return tuple(name for name, spec in STAGES.items() if spec.side == side)


def build_stages(refs: Sequence[Ref], side: Side, build: StageBuild) -> tuple[GuardStage, ...]:
    """Build the configured stages in order; an unknown or misplaced name is an error that lists what is registered."""
    stages: list[GuardStage] = []
    for ref in refs:
        if ref.name not in STAGES or STAGES.get(ref.name).side != side:
            where = f" (it is an {STAGES.get(ref.name).side} stage)" if ref.name in STAGES else ""
            raise ValueError(f"unknown {side} guard stage {ref.name!r}{where}; registered: {', '.join(stage_names(side)) or 'none'}")
        spec = STAGES.get(ref.name)
        stage = spec.factory(build, ref.options)
        if not isinstance(stage, GuardStage):
            raise TypeError(f"guard stage {ref.name!r} ({spec.factory!r}) has no name and scan(text, context)")
        stages.append(stage)
    return tuple(stages)


class StageGuard:
    """One stage alone as a guard (``scan_uncached(text) -> Verdict``), to measure a detector on its own."""

    def __init__(self, stage: GuardStage) -> None:
        self.stage = stage
        self.name = stage.name

    def scan_uncached(self, text: str) -> Verdict:
        return self.stage.scan(text, ScanContext(text))

    scan = scan_uncached
