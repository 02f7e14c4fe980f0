"""The offline mutation attacker (the grunt tier's embedded default).

One instance is one logical attacker with a goal. It starts from a seed of
the library, renders it with its own assets, and composes mutation operators
on top. After each attempt it adapts to the feedback a real attacker would
see: blocked at the input guard -> add an evasion operator; refused by the
model -> add persuasion framing; denied by zero-trust -> try another agent;
caught by the output guard -> ask for an encoded answer or change route;
breached -> exploit the recipe again with fresh parameters.

All randomness comes from the campaign's own seed, so a campaign behaves the
same whichever worker runs it.
"""

from __future__ import annotations

import random

from attackers.mutations import EVASION_OPS, FRAMING_OPS, OPERATORS, compose
from attackers.seeds import AttackerAssets, Seed, render, seeds_for
from kosmoi.types import Attack, Channel, Feedback, Goal, Stage, Tier

GENERATOR = "mutator"


class MutatorAttacker:
    """Adaptive template-and-mutation attacker."""

    def __init__(self, campaign_id: str, goal: Goal, assets: AttackerAssets, seed: int, *, max_depth: int = 3) -> None:
        if max_depth < 0:
            raise ValueError("max_depth must be >= 0")
        self.campaign_id = campaign_id
        self.goal = goal
        self.assets = assets
        self.max_depth = max_depth
        self.rng = random.Random(seed)
        self.candidates = seeds_for(goal)
        if not self.candidates:
            raise ValueError(f"no seeds for goal {goal.value}")
        self.seed: Seed = self.rng.choice(self.candidates)
        self.ops: tuple[str, ...] = (self.rng.choice(EVASION_OPS),) if max_depth and self.rng.random() < 0.5 else ()
        self.last: Attack | None = None
        self.feedback: Feedback | None = None

    def propose(self, attempt: int) -> Attack:
        """The next attack; adapts to the last feedback first."""
        if self.feedback is not None:
            self._adapt(self.feedback)
            self.feedback = None
        text = compose(render(self.seed, self.assets, self.rng), self.ops, self.rng)
        indirect = self.seed.channel is Channel.INDIRECT
        attack = Attack(
            attack_id=f"{self.campaign_id}.{attempt}",
            payload=text,
            goal=self.goal,
            channel=self.seed.channel,
            target_agent=self.seed.agent,
            techniques=self.ops,
            parent_ids=(self.last.attack_id,) if self.last is not None else (),
            tier=Tier.GRUNT,
            generator=GENERATOR,
            carrier=self.seed.carrier if indirect else None,
        )
        self.last = attack
        return attack

    def observe(self, feedback: Feedback) -> None:
        self.feedback = feedback

    # --- adaptation ----------------------------------------------------------
    def _add(self, pool: tuple[str, ...]) -> None:
        fresh = [op for op in pool if op not in self.ops]
        if not fresh:
            return
        op = self.rng.choice(fresh)
        if len(self.ops) < self.max_depth:
            self.ops = self.ops + (op,)
        elif self.ops:
            drop = self.rng.randrange(len(self.ops))
            self.ops = self.ops[:drop] + self.ops[drop + 1 :] + (op,)
        # keep at most one encoding wrapper: a second would hide the first's instructions
        encodings = [o for o in self.ops if OPERATORS[o].family == "encoding"]
        if len(encodings) > 1:
            self.ops = tuple(o for o in self.ops if o not in encodings[:-1])

    def _switch_seed(self, other_agent: bool) -> None:
        pool = [s for s in self.candidates if s is not self.seed and (not other_agent or s.agent != self.seed.agent)]
        if pool:
            self.seed = self.rng.choice(pool)

    def _adapt(self, fb: Feedback) -> None:
        rng = self.rng
        stage = fb.blocked_stage
        if fb.breached:
            if rng.random() < 0.2:
                self._add(EVASION_OPS)
        elif stage is Stage.INPUT_GUARD:
            self._add(EVASION_OPS)
        elif stage is Stage.VICTIM:
            if rng.random() < 0.3:
                self._switch_seed(other_agent=False)
            else:
                self._add(FRAMING_OPS)
        elif stage is Stage.TOOL_AUTH:
            self._switch_seed(other_agent=True)
        elif stage is Stage.OUTPUT_GUARD:
            if rng.random() < 0.5:
                self._add(("output_encoding",))
            else:
                self._switch_seed(other_agent=rng.random() < 0.5)
        elif stage in (Stage.COURT, Stage.IDENTITY):
            pass  # contained: nothing this identity sends gets through any more
        elif rng.random() < 0.5:
            self._switch_seed(other_agent=False)
        else:
            self._add(EVASION_OPS + FRAMING_OPS)
