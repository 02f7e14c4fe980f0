"""The input guardrail ("the skin"): deterministic and fast.

A length limit, then a pipeline of stages (:mod:`targets.stages`) over the
text with surrogates removed and canonicalised. The default pipeline is
``signals -> rules -> classifier`` (:mod:`targets.input_stages`), with
``semantic`` after the classifier when enabled; users add their own stages
by name. The stages' verdicts are merged once; the rule set's thresholds
then turn the score into an action (a score at or above ``block`` blocks,
at or above ``flag`` flags).

The verdict carries every rule id that fired (``classifier`` for the model)
and a score in [0, 1]: the highest rule weight or classifier probability.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from kosmoi.registry import Ref
from kosmoi.types import Action, Verdict
from targets.canonical import canonicalize, without_surrogates
from targets.matcher import Engine
from targets.rules import RuleSet
from targets.stages import GuardStage, ScanContext, StageBuild, build_stages, run_stages, run_stages_many

DEFAULT_MAX_BYTES = 16 * 1024
DEFAULT_STAGES = ("signals", "rules", "classifier")
VERDICT_CACHE_ENTRIES = 8192  # identical texts get the identical verdict without a second scan
VERDICT_CACHE_MAX_CHARS = 2048  # only short texts are cached: memory stays under ~16 MB per guard
LENGTH_RULE = "limit.length"
SCAN_BATCH = 512  # scan_many judges this many texts per stage call (bounded memory)


def utf8_length_exceeds(text: str, limit: int) -> bool:
    """True when ``text`` is longer than ``limit`` UTF-8 bytes (cheap for short text)."""
    if len(text) * 4 <= limit:
        return False
    if len(text) > limit:
        return True
    return len(text.encode("utf-8", "replace")) > limit


class InputGuard:
    """Scans untrusted text (chat messages, retrieved documents) before the model sees it."""

    def __init__(
        self,
        ruleset: RuleSet,
        max_bytes: int = DEFAULT_MAX_BYTES,
        engine: Engine = "auto",
        semantic: bool = False,
        stages: Sequence[Ref | str] | None = None,
    ) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be > 0")
        self.ruleset = ruleset
        self.max_bytes = max_bytes
        refs = [ref if isinstance(ref, Ref) else Ref(ref) for ref in (DEFAULT_STAGES if stages is None else stages)]
        if semantic and all(ref.name != "semantic" for ref in refs):
            refs.append(Ref("semantic"))
        build = StageBuild(ruleset, engine)
        self.stages: tuple[GuardStage, ...] = build_stages(refs, "input", build)
        self.matcher = build.input_matcher
        self.classifier = build.classifier
        self._flag_threshold = ruleset.thresholds.flag
        self._block_threshold = ruleset.thresholds.block
        self._cache: dict[str, Verdict] = {}
        self._too_long = Verdict(Action.BLOCK, (LENGTH_RULE,), 1.0, reasons=(f"longer than {max_bytes} bytes",))

    @property
    def stage_names(self) -> tuple[str, ...]:
        """The configured stages, in the order they run."""
        return tuple(stage.name for stage in self.stages)

    def scan(self, text: str) -> Verdict:
        """The verdict for one text (a pure function of the text and the rule set; repeats of short texts are cached)."""
        if len(text) > VERDICT_CACHE_MAX_CHARS:
            return self._scan(text)
        cached = self._cache.get(text)
        if cached is None:
            cached = self._scan(text)
            self._remember(text, cached)
        return cached

    def _remember(self, text: str, verdict: Verdict) -> None:
        if len(self._cache) >= VERDICT_CACHE_ENTRIES:
            del self._cache[next(iter(self._cache))]  # FIFO: bounded, and eviction changes no answer
        self._cache[text] = verdict

    def scan_uncached(self, text: str) -> Verdict:
        """The verdict for one text, always computed (benchmarks and latency figures use this)."""
        return self._scan(text)

    def _scan(self, text: str) -> Verdict:
        if utf8_length_exceeds(text, self.max_bytes):
            return self._too_long
        text = without_surrogates(text)
        return self._decide(run_stages(self.stages, text, ScanContext(text, canonicalize(text))))

    def _decide(self, merged: Verdict) -> Verdict:
        """The rule set's thresholds applied to the stages' merged verdict."""
        score = merged.score
        if merged.action is Action.BLOCK or score >= self._block_threshold:
            action = Action.BLOCK
        elif merged.action is Action.FLAG or score >= self._flag_threshold:
            action = Action.FLAG
        else:
            action = Action.ALLOW
        return Verdict(action, merged.rule_ids, score, reasons=merged.reasons)

    def scan_many(self, texts: Iterable[str], *, cached: bool = True) -> list[Verdict]:
        """Verdicts for many texts, in order — each the verdict :meth:`scan` gives, computed batch-wise.

        Stages with a batch path (the learned stage) judge the whole batch in one call. With ``cached``
        the verdict cache is read and filled as by :meth:`scan`, and repeats within the batch are
        scanned once; ``cached=False`` scans every text (benchmarks).
        """
        texts = list(texts)
        verdicts: list[Verdict | None] = [None] * len(texts)
        pending: dict[str, list[int]] = {}
        order: list[tuple[str, list[int]]] = []
        for index, text in enumerate(texts):
            if cached and len(text) <= VERDICT_CACHE_MAX_CHARS and (hit := self._cache.get(text)) is not None:
                verdicts[index] = hit
            elif utf8_length_exceeds(text, self.max_bytes):
                verdicts[index] = self._too_long
            elif cached and text in pending:
                pending[text].append(index)
            else:
                positions = [index]
                pending[text] = positions
                order.append((text, positions))
        for start in range(0, len(order), SCAN_BATCH):
            chunk = order[start : start + SCAN_BATCH]
            clean = [without_surrogates(text) for text, _ in chunk]
            contexts = [ScanContext(text, canonicalize(text)) for text in clean]
            for (text, positions), merged in zip(chunk, run_stages_many(self.stages, clean, contexts), strict=True):
                verdict = self._decide(merged)
                for index in positions:
                    verdicts[index] = verdict
                if cached and len(text) <= VERDICT_CACHE_MAX_CHARS:
                    self._remember(text, verdict)
        return verdicts  # type: ignore[return-value]  # every position was filled above
