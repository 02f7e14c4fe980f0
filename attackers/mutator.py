"""The offline mutation attacker (the grunt tier's embedded default).

One instance is one logical attacker with a goal. It starts from a seed of
the library, renders it with its own assets, and composes mutation operators
on top (up to ``max_depth``). After each attempt it adapts to the feedback a
real attacker would see. The feedback decides *what kind* of change to make —
blocked at the input guard: add an evasion operator; refused by the model:
add persuasion framing; denied by zero trust: try another agent; caught by
the output guard: ask for an encoded answer or change route; breached:
exploit the recipe with fresh parameters — and UCB1 bandits (seeds and
operators, rewarded by how far each attack got) decide *which* one, as
GPTFuzzer selects seeds and mutations from rewards.

All randomness comes from the campaign's own seed and the bandit state it is
given (private, or shared by one replica's attackers), so a campaign behaves
the same whichever worker runs it.
"""

from __future__ import annotations

import random

from attackers.bandit import BanditState
from attackers.generation import GenerationRequest, GenerationResult
from attackers.mutations import EVASION_OPS, FRAMING_OPS, OPERATORS, compose
from attackers.progress import progress
from attackers.seeds import AttackerAssets, Seed, render, seeds_for
from kosmoi.ids import derive_seed
from kosmoi.types import Attack, Channel, Feedback, Goal, Stage, Tier

GENERATOR = "mutator"


class MutatorAttacker:
    """Adaptive template-and-mutation attacker."""

    tier = Tier.GRUNT

    def __init__(
        self,
        campaign_id: str,
        goal: Goal,
        assets: AttackerAssets,
        seed: int,
        *,
        max_depth: int = 3,
        bandit: BanditState | None = None,
        start: tuple[str, tuple[str, ...]] | None = None,
        channels: frozenset[Channel] | None = None,
    ) -> None:
        """``start``: an inherited recipe ``(seed_id, operators)`` (the evolution loop's elites); ``channels``: only seeds of these (when the goal has any)."""
        if max_depth < 0:
            raise ValueError("max_depth must be >= 0")
        self.campaign_id = campaign_id
        self.goal = goal
        self.assets = assets
        self.max_depth = max_depth
        self._seed = seed
        # One generator, re-seeded from (seed, attempt) before each use: behaviour depends only on the
        # seed and the feedback, and a snapshot of the attacker does not carry generator state.
        self.rng = random.Random(derive_seed(seed, "init"))
        self.bandit = bandit if bandit is not None else BanditState()
        self.candidates = seeds_for(goal, channels)
        if not self.candidates:
            raise ValueError(f"no seeds for goal {goal.value}")
        # the opening move ignores the shared bandit: construction is pure, so it does not matter when
        # (or in which order) a replica builds its attackers — it builds each at its first attempt
        opening = BanditState()
        self.seed: Seed = self._pick_seed(self.candidates, opening)
        self.ops: tuple[str, ...] = (self._pick_op(EVASION_OPS, opening),) if max_depth and self.rng.random() < 0.5 else ()
        if start is not None:
            by_id = {s.seed_id: s for s in self.candidates}
            if start[0] in by_id:
                self.seed = by_id[start[0]]
            self.ops = tuple(op for op in start[1] if op in OPERATORS)[:max_depth]
        self.last: Attack | None = None
        self.feedback: Feedback | None = None

    def _pick_seed(self, pool: list[Seed] | tuple[Seed, ...], bandit: BanditState | None = None) -> Seed:
        by_key = {f"seed:{s.seed_id}": s for s in pool}
        return by_key[(bandit or self.bandit).choose(sorted(by_key), self.rng)]

    def _pick_op(self, pool: tuple[str, ...] | list[str], bandit: BanditState | None = None) -> str:
        return (bandit or self.bandit).choose([f"op:{op}" for op in pool], self.rng).removeprefix("op:")

    def generation_request(self, attempt: int) -> GenerationRequest | None:
        """The offline mutator needs no model call."""
        return None

    def propose(self, attempt: int, result: GenerationResult | None = None) -> Attack:
        """The next attack; adapts to the last feedback first."""
        self.rng.seed(derive_seed(self._seed, attempt))
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
            seed_id=self.seed.seed_id,
            parent_ids=(self.last.attack_id,) if self.last is not None else (),
            tier=Tier.GRUNT,
            generator=GENERATOR,
            carrier=self.seed.carrier if indirect else None,
        )
        self.last = attack
        return attack

    def __getstate__(self) -> dict[str, object]:
        return {**self.__dict__, "rng": None}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self.rng = random.Random()  # re-seeded at the next proposal

    def observe(self, feedback: Feedback) -> None:
        """Credit the seed and operators of the last attack, then remember the feedback for the next one."""
        if self.last is not None and feedback.blocked_stage not in (Stage.COURT, Stage.IDENTITY):
            reward = progress(feedback.breached, feedback.blocked_stage)
            self.bandit.update(f"seed:{self.seed.seed_id}", reward)
            for op in self.last.techniques:
                self.bandit.update(f"op:{op}", reward)
        self.feedback = feedback

    # --- adaptation ----------------------------------------------------------
    def _add(self, pool: tuple[str, ...]) -> None:
        fresh = [op for op in pool if op not in self.ops]
        if not fresh:
            return
        op = self._pick_op(fresh)
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
            self.seed = self._pick_seed(pool)

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
