"""UCB1 bandits for choosing seeds and mutation operators from feedback.

Deterministic given the random generator passed in (ties are broken by it).
A :class:`BanditState` can be private to one logical attacker or shared by
the attackers of one staging replica (a coordinated red team pooling what
works); either way its history depends only on the replica's own episodes.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(slots=True)
class Arm:
    pulls: int = 0
    reward: float = 0.0

    @property
    def mean(self) -> float:
        return self.reward / self.pulls if self.pulls else 0.0


@dataclass(slots=True)
class BanditState:
    """Pull counts and rewards per arm, keyed by any string (e.g. 'op:homoglyph', 'seed:drain_wallet.2')."""

    arms: dict[str, Arm] = field(default_factory=dict)
    total: int = 0
    exploration: float = math.sqrt(2.0)

    def choose(self, candidates: Sequence[str], rng: random.Random) -> str:
        """UCB1 over ``candidates``: untried arms first (random order), then the best upper bound."""
        if not candidates:
            raise ValueError("no candidates to choose from")
        untried = [c for c in candidates if self.arms.get(c, Arm()).pulls == 0]
        if untried:
            return rng.choice(untried)
        log_total = math.log(max(self.total, 1))
        best = max(self.arms[c].mean + self.exploration * math.sqrt(log_total / self.arms[c].pulls) for c in candidates)
        top = [c for c in candidates if self.arms[c].mean + self.exploration * math.sqrt(log_total / self.arms[c].pulls) >= best - 1e-12]
        return rng.choice(top)

    def update(self, arm: str, reward: float) -> None:
        entry = self.arms.setdefault(arm, Arm())
        entry.pulls += 1
        entry.reward += reward
        self.total += 1
