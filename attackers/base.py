"""The interface every attacker implements, and the registry the simulation builds attackers from.

An attacker is one logical adversary running one campaign. Each attempt, the
replica asks it for a :class:`~attackers.generation.GenerationRequest` (None
when it writes its attacks itself, like the offline mutator); model-backed
requests of many campaigns are batched to a generation backend, and the
answer comes back to :meth:`Attacker.propose`. After the stack has judged the
attack, :meth:`Attacker.observe` tells it what happened.

``attackers.grunt.generator`` in an experiment names a registered attacker
kind; snipers use the ``llm`` kind with a paid provider.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from attackers.bandit import BanditState
from attackers.generation import GenerationRequest, GenerationResult
from attackers.seeds import AttackerAssets
from kosmoi.registry import Registry
from kosmoi.types import Attack, Feedback, Goal, Tier

Recipe = tuple[str, tuple[str, ...]]  # (seed id, operators): an attack recipe the evolution archive hands down


class Attacker(Protocol):
    """A logical attacker: proposes one attack per attempt and learns from feedback."""

    tier: Tier

    def generation_request(self, attempt: int) -> GenerationRequest | None:
        """What to ask a generation backend for this attempt (None: this attacker writes its own)."""
        ...

    def propose(self, attempt: int, result: GenerationResult | None) -> Attack:
        """The attack of this attempt, from the backend's answer when there was a request."""
        ...

    def observe(self, feedback: Feedback) -> None:
        """What happened to the last attack (blocked where, by which rule, the reply)."""
        ...


@runtime_checkable
class MultiTurnAttacker(Attacker, Protocol):
    """An attacker whose attempts are conversations: after each turn's feedback it says whether it goes on."""

    def continues(self) -> bool:
        """Whether the current attempt's conversation has another turn (asked after :meth:`observe`)."""
        ...


@dataclass(frozen=True, slots=True)
class AttackerSpec:
    """Everything an attacker factory gets for one campaign."""

    campaign_id: str
    goal: Goal
    assets: AttackerAssets
    seed: int
    tier: Tier
    max_depth: int = 3
    agents: Mapping[str, str] = field(default_factory=dict)  # the company's public agents and what they do
    max_tokens: int = 400
    temperature: float = 0.9
    bandit: BanditState | None = None  # the replica's shared bandit, for attackers that pool what works
    start: Recipe | None = None  # an inherited recipe, for kinds that start from the archive
    strategy: str = ""  # the multi-turn strategy of a conversation campaign ("" for single messages)
    max_turns: int = 1  # most turns of one conversation


@dataclass(frozen=True, slots=True)
class AttackerKind:
    """A registered kind of attacker."""

    factory: Callable[[AttackerSpec], Attacker]
    uses_model: bool  # its attacks are written by a generation backend (a grunt model or a sniper provider)
    starts_from_archive: bool = False  # it can start from the evolution archive's elites


ATTACKERS: Registry[AttackerKind] = Registry("attacker", builtins="attackers.kinds")
SNIPER_KIND = "llm"  # the kind sniper campaigns use (with a paid provider as the backend)


def register_attacker(name: str, *, uses_model: bool, starts_from_archive: bool = False) -> Callable[[Callable[[AttackerSpec], Attacker]], Callable[[AttackerSpec], Attacker]]:
    """Decorator: make an attacker factory ``(AttackerSpec) -> Attacker`` buildable by ``name``."""

    def decorate(factory: Callable[[AttackerSpec], Attacker]) -> Callable[[AttackerSpec], Attacker]:
        ATTACKERS.add(name, AttackerKind(factory, uses_model, starts_from_archive))
        return factory

    return decorate
