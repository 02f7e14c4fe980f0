"""A logical attacker whose attacks a language model writes (grunt LLM or sniper tier).

Two phases per attempt, so a simulator can batch the model calls of many
attackers: :meth:`LLMAttacker.generation_request` builds the prompt (goal,
target, assets, history of failed attempts with their feedback), then
:meth:`LLMAttacker.propose` turns the model's answer into an
:class:`~kosmoi.types.Attack`. When the answer is unusable (a refusal, an
explanation, nothing) or the call failed or the budget refused it, the
attempt falls back to the offline mutator, so every attempt still yields an
attack and the failure is visible in the attack's ``generator`` and in the
model-call records.
"""

from __future__ import annotations

import random

from attackers.generation import GenerationRequest, GenerationResult
from attackers.mutator import MutatorAttacker
from attackers.prompts import HISTORY, SYSTEM, build_prompt, parse_attack
from attackers.seeds import AttackerAssets, Seed, seeds_for
from kosmoi.ids import derive_seed
from kosmoi.types import Attack, Channel, Feedback, Goal, Stage, Tier


class LLMAttacker:
    """Model-written attacks with a mutator fallback."""

    def __init__(
        self,
        campaign_id: str,
        goal: Goal,
        assets: AttackerAssets,
        seed: int,
        *,
        tier: Tier,
        agents: dict[str, str],
        max_tokens: int = 400,
        temperature: float = 0.9,
        max_depth: int = 3,
    ) -> None:
        self.campaign_id = campaign_id
        self.goal = goal
        self.assets = assets
        self.tier = tier
        self.agents = agents
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.rng = random.Random(derive_seed(seed, "init"))  # re-seeded before every use (see MutatorAttacker)
        self.routes: tuple[Seed, ...] = seeds_for(goal)
        self.route: Seed = self.rng.choice(self.routes)
        self.fallback = MutatorAttacker(campaign_id, goal, assets, seed ^ 0x5EED, max_depth=max_depth)
        self.history: list[tuple[str, Feedback]] = []
        self.last: Attack | None = None
        self._seed = seed

    def generation_request(self, attempt: int) -> GenerationRequest:
        """The prompt for this attempt's model call."""
        return GenerationRequest(
            request_id=f"{self.campaign_id}.{attempt}",
            system=SYSTEM,
            user=build_prompt(self.goal, self.route, self.assets, self.agents, self.history),
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            seed=(self._seed + attempt) % (2**31),
        )

    def propose(self, attempt: int, result: GenerationResult | None) -> Attack:
        """An attack from the model's answer, or from the mutator when the answer is unusable."""
        parsed = parse_attack(result.text) if result is not None and result.ok else None
        if parsed is None or parsed.text is None:
            if result is not None and result.ok and parsed is not None:
                result.status, result.error = "unparsable", parsed.problem
            attack = self.fallback.propose(attempt)
            attack.techniques = attack.techniques + ("llm-fallback",)
            attack.cost_usd = result.cost_usd if result is not None else 0.0
            self.last = attack
            return attack
        indirect = self.route.channel is Channel.INDIRECT
        attack = Attack(
            attack_id=f"{self.campaign_id}.{attempt}",
            payload=parsed.text,
            goal=self.goal,
            channel=self.route.channel,
            target_agent=self.route.agent,
            techniques=("llm",),
            parent_ids=(self.last.attack_id,) if self.last is not None else (),
            tier=self.tier,
            generator=f"{result.provider}:{result.model}" if result else "llm",
            cost_usd=result.cost_usd if result else 0.0,
            carrier=self.route.carrier if indirect else None,
            seed_id=self.route.seed_id,
        )
        self.last = attack
        return attack

    def __getstate__(self) -> dict[str, object]:
        return {**self.__dict__, "rng": None}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self.rng = random.Random()

    def observe(self, feedback: Feedback) -> None:
        """Remember what happened; try another route when zero trust or the model's refusal stops this one."""
        if self.last is not None:
            self.history.append((self.last.payload, feedback))
            del self.history[:-HISTORY]
        self.fallback.observe(feedback)
        self.rng.seed(derive_seed(self._seed, "observe", len(self.history)))
        if not feedback.breached and feedback.blocked_stage in (Stage.TOOL_AUTH, Stage.VICTIM) and self.rng.random() < 0.5:
            others = [s for s in self.routes if s is not self.route]
            if others:
                self.route = self.rng.choice(others)
