"""The built-in attacker kinds: ``mutator`` (offline, adaptive mutation), ``conversation`` (offline multi-turn strategies around the mutator's payload), ``llm`` (model-written) and ``pair`` / ``tap`` (model-written conversations)."""

from __future__ import annotations

from attackers.base import Attacker, AttackerSpec, register_attacker
from attackers.conversation import ConversationAttacker
from attackers.llm_attacker import LLMAttacker
from attackers.mutator import MutatorAttacker
from attackers.refine import RefiningAttacker

TAP_WIDTH = 3  # candidate next turns a tree search asks the model for


@register_attacker("mutator", uses_model=False, starts_from_archive=True)
def _mutator(spec: AttackerSpec) -> Attacker:
    return MutatorAttacker(spec.campaign_id, spec.goal, spec.assets, spec.seed, max_depth=spec.max_depth, bandit=spec.bandit, start=spec.start)


@register_attacker("llm", uses_model=True)
def _llm(spec: AttackerSpec) -> Attacker:
    return LLMAttacker(
        spec.campaign_id, spec.goal, spec.assets, spec.seed, tier=spec.tier, agents=dict(spec.agents),
        max_tokens=spec.max_tokens, temperature=spec.temperature, max_depth=spec.max_depth,
    )  # fmt: skip


@register_attacker("conversation", uses_model=False, starts_from_archive=True)
def _conversation(spec: AttackerSpec) -> Attacker:
    return ConversationAttacker(
        spec.campaign_id, spec.goal, spec.assets, spec.seed, spec.strategy or "crescendo", max(2, spec.max_turns),
        max_depth=spec.max_depth, bandit=spec.bandit, start=spec.start,
    )  # fmt: skip


def _refining(spec: AttackerSpec, width: int) -> Attacker:
    return RefiningAttacker(
        spec.campaign_id, spec.goal, spec.assets, spec.seed, tier=spec.tier, agents=dict(spec.agents), max_turns=max(2, spec.max_turns),
        width=width, max_tokens=spec.max_tokens, temperature=spec.temperature, max_depth=spec.max_depth,
    )  # fmt: skip


@register_attacker("pair", uses_model=True)
def _pair(spec: AttackerSpec) -> Attacker:
    return _refining(spec, 1)


@register_attacker("tap", uses_model=True)
def _tap(spec: AttackerSpec) -> Attacker:
    return _refining(spec, TAP_WIDTH)
