"""What the session-level defenses take off multi-turn attacks: one experiment, run with and without them.

The same experiment and seed run four times — as written, without the
session-level input guard (``targets.input_guard.session_turns: 0``), without
the conversation sentinel, and without either — so every difference is the
defense's. Each variant reports the per-conversation breach rate (overall and
per strategy) with 95 % Wilson intervals, the single-message baseline of the
same run, turns to breach, containment, benign conversations flagged, and
turns per second.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from evolve.gate import Rate
from kosmoi.metrics import conversation_breaches, conversation_metrics, conversation_strategies
from sim.config import Experiment, PartConfig
from sim.runner import RunOptions, run_experiment

SENTINEL = "conversation"


def shown(rate: Rate) -> str:
    """``5.1 % [3.5, 7.3] (n=531)``: a rate with its 95 % Wilson interval."""
    low, high = rate.ci95
    return f"{100 * rate.value:.1f} % [{100 * low:.1f}, {100 * high:.1f}] (n={rate.n})"


@dataclass(slots=True)
class VariantResult:
    """One variant of the experiment and what it measured."""

    name: str
    conversation_breach: Rate
    single_breach: Rate
    by_strategy: dict[str, Rate] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    turns_per_s: float = 0.0


def variants(exp: Experiment) -> list[tuple[str, Experiment]]:
    """The experiment as written, without the session-level guard, without the conversation sentinel, and without either."""
    guard = exp.targets.input_guard
    sentinels = exp.targets.sentinels

    def with_(session_turns: int, sentinel: bool) -> Experiment:
        enabled = [part for part in sentinels.enabled if part.name != SENTINEL]
        if sentinel:
            enabled.append(PartConfig(name=SENTINEL))
        targets = exp.targets.model_copy(
            update={"input_guard": guard.model_copy(update={"session_turns": session_turns}), "sentinels": sentinels.model_copy(update={"enabled": enabled})}
        )
        return exp.model_copy(update={"targets": targets})

    turns = guard.session_turns or 4
    return [
        ("both session defenses", with_(turns, True)),
        ("no session guard", with_(0, True)),
        ("no conversation sentinel", with_(turns, False)),
        ("neither", with_(0, False)),
    ]


def run_variants(exp: Experiment, workers: int | None = None, progress: Callable[[str], None] | None = None) -> list[VariantResult]:
    """Run every variant in this process (local Ray) and measure it."""
    results = []
    with tempfile.TemporaryDirectory(prefix="immune-bench-conversations-") as tmp:
        for name, variant in variants(exp):
            if progress:
                progress(f"running: {name}")
            run = run_experiment(variant, RunOptions(out=Path(tmp), workers=workers, track=False, lock=False))
            tally = run.tally
            by_strategy = {strategy: Rate(*conversation_breaches(tally, strategy)) for strategy in conversation_strategies(tally)}
            duration = float(run.summary.get("duration_s") or 0.0)
            results.append(
                VariantResult(
                    name,
                    Rate(*conversation_breaches(tally)),
                    Rate(tally.single_breached, tally.single_attacks),
                    by_strategy,
                    conversation_metrics(tally),
                    tally.episodes / duration if duration > 0 else 0.0,
                )
            )
    return results
