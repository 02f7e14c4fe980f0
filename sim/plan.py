"""Deterministic planning of a run: which campaigns exist, where and when.

Campaigns are assigned to replicas round-robin and their attempt times are
drawn from each campaign's own seed, so the plan depends only on the
experiment and the seed — never on the number of workers.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from kosmoi.ids import derive_seed
from kosmoi.types import EpisodeKind, Goal, Tier
from sim.config import Experiment


@dataclass(frozen=True, slots=True)
class CampaignSpec:
    """One logical attacker or one benign user session."""

    index: int  # position in the replica's campaign list (tie-breaker in time order)
    campaign_id: str
    kind: EpisodeKind
    identity: str
    goal: Goal
    seed: int
    times: tuple[float, ...]  # simulated time of each attempt
    tier: Tier = Tier.GRUNT


@dataclass(frozen=True, slots=True)
class ReplicaPlan:
    replica: int
    campaigns: tuple[CampaignSpec, ...]

    @property
    def episodes(self) -> int:
        return sum(len(c.times) for c in self.campaigns)

    @property
    def horizon(self) -> float:
        return max((c.times[-1] for c in self.campaigns if c.times), default=0.0)


def _times(rng: random.Random, start: float, count: int, mean_gap: float) -> tuple[float, ...]:
    times = [start]
    for _ in range(count - 1):
        times.append(times[-1] + rng.expovariate(1.0 / mean_gap))
    return tuple(round(t, 3) for t in times)


def plan_run(exp: Experiment, seed: int) -> list[ReplicaPlan]:
    """Every replica's campaigns, deterministically from (experiment, seed)."""
    replicas = exp.simulation.replicas
    arrival = exp.simulation.arrival_window_s
    grunt = exp.attackers.grunt
    benign = exp.benign
    sniper = exp.attackers.sniper
    goals = [Goal(g) for g in grunt.goals]
    per_replica: list[list[tuple]] = [[] for _ in range(replicas)]
    for i in range(grunt.count):
        campaign_id = f"a{i:06d}"
        rng = random.Random(derive_seed(seed, "campaign", campaign_id))
        goal = goals[i % len(goals)]
        times = _times(rng, rng.uniform(0, arrival), grunt.attempts, grunt.think_time_s)
        per_replica[i % replicas].append((campaign_id, EpisodeKind.ATTACK, f"att-{i:05d}", goal, derive_seed(seed, "attacker", campaign_id), times, Tier.GRUNT))
    sniper_goals = [Goal(g) for g in sniper.goals]
    for i in range(sniper.count):
        campaign_id = f"s{i:06d}"
        rng = random.Random(derive_seed(seed, "campaign", campaign_id))
        goal = sniper_goals[i % len(sniper_goals)]
        times = _times(rng, rng.uniform(0, arrival), sniper.attempts, sniper.think_time_s)
        per_replica[(grunt.count + i) % replicas].append((campaign_id, EpisodeKind.ATTACK, f"att-s{i:05d}", goal, derive_seed(seed, "attacker", campaign_id), times, Tier.SNIPER))
    identities = (
        [f"cust-{i:04d}" for i in range(benign.customers)]
        + [f"vendor-{i:02d}" for i in range(benign.vendors)]
        + [f"emp-{i:03d}" for i in range(benign.employees)]
    )
    for j, identity in enumerate(identities):
        campaign_id = f"b{j:06d}"
        rng = random.Random(derive_seed(seed, "campaign", campaign_id))
        times = _times(rng, rng.uniform(0, arrival), benign.requests, benign.think_time_s)
        per_replica[j % replicas].append((campaign_id, EpisodeKind.BENIGN, identity, Goal.NONE, derive_seed(seed, "benign", campaign_id), times, Tier.USER))
    plans = []
    for r, entries in enumerate(per_replica):
        campaigns = tuple(CampaignSpec(k, *entry) for k, entry in enumerate(entries))
        plans.append(ReplicaPlan(r, campaigns))
    return plans


def segment_count(plans: list[ReplicaPlan], exp: Experiment) -> int:
    """Units of work needed to reach past the last attempt (plus one closing window)."""
    horizon = max((p.horizon for p in plans), default=0.0) + exp.simulation.window_s
    length = exp.simulation.window_s * exp.simulation.segment_windows
    return max(1, math.ceil(horizon / length))
