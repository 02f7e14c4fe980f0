"""The registry of victims: what plays the company's agents in a staging stack.

Built in: ``simulated`` (the behavioural model of :mod:`targets.victim`, with
the stack's victim profile), ``llm`` (a real model behind an
OpenAI-compatible endpoint, :mod:`targets.llm_victim`) and ``endpoint`` (the
user's own deployed agent over HTTP, :mod:`targets.endpoint_victim`). A factory takes the
stack's settings and one agent's knowledge and returns a
:class:`~targets.victim.VictimModel`; users register their own with
:func:`register_victim` in a plugin module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from kosmoi.registry import Registry
from targets.endpoint_victim import EndpointVictim
from targets.llm_victim import LLMVictim
from targets.victim import PROFILES, Victim, VictimKnowledge, VictimModel

if TYPE_CHECKING:
    from targets.stack import StackSettings

VictimFactory = Callable[["StackSettings", VictimKnowledge], VictimModel]
VICTIMS: Registry[VictimFactory] = Registry("victim", builtins="targets.victims")


def register_victim(name: str) -> Callable[[VictimFactory], VictimFactory]:
    """Decorator: make a victim factory ``(stack settings, knowledge) -> VictimModel`` buildable by ``name``."""
    return VICTIMS.register(name)


@register_victim("simulated")
def _simulated(settings: StackSettings, knowledge: VictimKnowledge) -> VictimModel:
    if settings.victim_profile not in PROFILES:
        raise ValueError(f"unknown victim profile {settings.victim_profile!r}; known: {', '.join(PROFILES)}")
    return Victim(PROFILES[settings.victim_profile], knowledge)


@register_victim("llm")
def _llm(settings: StackSettings, knowledge: VictimKnowledge) -> VictimModel:
    if settings.llm_victim is None:
        raise ValueError("the 'llm' victim needs targets.llm_victim (base_url and model)")
    return LLMVictim(settings.llm_victim, knowledge)


@register_victim("endpoint")
def _endpoint(settings: StackSettings, knowledge: VictimKnowledge) -> VictimModel:
    if settings.endpoint is None:
        raise ValueError("the 'endpoint' victim needs targets.endpoint (url, format)")
    return EndpointVictim(settings.endpoint, knowledge)
