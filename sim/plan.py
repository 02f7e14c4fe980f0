"""Deterministic planning of a run: which campaigns exist, where and when.

Campaigns are assigned to replicas round-robin and their attempt times are
drawn from each campaign's own seed, so the plan depends only on the
experiment and the seed — never on the number of workers.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Iterator
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
    strategy: str = ""  # the multi-turn strategy of a conversation campaign ("" for single messages)
    span_s: float = 0.0  # most simulated seconds one attempt's conversation lasts after it starts


@dataclass(frozen=True, slots=True)
class ReplicaPlan:
    replica: int
    campaigns: tuple[CampaignSpec, ...]

    @property
    def episodes(self) -> int:
        return sum(len(c.times) for c in self.campaigns)

    @property
    def horizon(self) -> float:
        return max((c.times[-1] + c.span_s for c in self.campaigns if c.times), default=0.0)


def _times(rng: random.Random, start: float, count: int, mean_gap: float) -> tuple[float, ...]:
    times = [start]
    for _ in range(count - 1):
        times.append(times[-1] + rng.expovariate(1.0 / mean_gap))
    return tuple(round(t, 3) for t in times)


def _spaced(times: tuple[float, ...], span: float) -> tuple[float, ...]:
    """Attempt times moved apart so that each attempt's conversation (up to ``span`` seconds) ends before the next begins."""
    return tuple(round(t + i * span, 3) for i, t in enumerate(times)) if span else times


def _strategy(exp: Experiment, seed: int, campaign_id: str) -> str:
    """The multi-turn strategy of a grunt campaign, or "" for one that sends single messages (its own draw: other campaigns are unaffected)."""
    conversations = exp.attackers.grunt.conversations
    if not conversations.share:
        return ""
    rng = random.Random(derive_seed(seed, "conversation", campaign_id))
    if rng.random() >= conversations.share:
        return ""
    return conversations.strategies[rng.randrange(len(conversations.strategies))]


def _entries(exp: Experiment, seed: int, replicas: frozenset[int] | None) -> Iterator[tuple[int, tuple]]:
    """(replica, campaign fields) for every campaign of the run, or only those of ``replicas`` (cheap to skip)."""
    n = exp.simulation.replicas
    arrival = exp.simulation.arrival_window_s
    grunt = exp.attackers.grunt
    benign = exp.benign
    sniper = exp.attackers.sniper
    goals = [Goal(g) for g in grunt.goals]
    for i in range(grunt.count):
        if replicas is not None and i % n not in replicas:
            continue
        campaign_id = f"a{i:06d}"
        rng = random.Random(derive_seed(seed, "campaign", campaign_id))
        times = _times(rng, rng.uniform(0, arrival), grunt.attempts, grunt.think_time_s)
        strategy = _strategy(exp, seed, campaign_id)
        span = (grunt.conversations.max_turns - 1) * grunt.conversations.turn_gap_s if strategy else 0.0
        yield i % n, (campaign_id, EpisodeKind.ATTACK, f"att-{i:05d}", goals[i % len(goals)], derive_seed(seed, "attacker", campaign_id), _spaced(times, span), Tier.GRUNT, strategy, span)
    sniper_goals = [Goal(g) for g in sniper.goals]
    for i in range(sniper.count):
        replica = (grunt.count + i) % n
        if replicas is not None and replica not in replicas:
            continue
        campaign_id = f"s{i:06d}"
        rng = random.Random(derive_seed(seed, "campaign", campaign_id))
        times = _times(rng, rng.uniform(0, arrival), sniper.attempts, sniper.think_time_s)
        span = (sniper.max_turns - 1) * grunt.conversations.turn_gap_s if sniper.strategy else 0.0
        yield replica, (campaign_id, EpisodeKind.ATTACK, f"att-s{i:05d}", sniper_goals[i % len(sniper_goals)], derive_seed(seed, "attacker", campaign_id), _spaced(times, span), Tier.SNIPER, sniper.strategy, span)
    identities = (
        [f"cust-{i:04d}" for i in range(benign.customers)]
        + [f"vendor-{i:02d}" for i in range(benign.vendors)]
        + [f"emp-{i:03d}" for i in range(benign.employees)]
    )
    for j, identity in enumerate(identities):
        if replicas is not None and j % n not in replicas:
            continue
        campaign_id = f"b{j:06d}"
        rng = random.Random(derive_seed(seed, "campaign", campaign_id))
        times = _times(rng, rng.uniform(0, arrival), benign.requests, benign.think_time_s)
        span = benign.follow_ups * benign.turn_gap_s if identity.startswith("cust-") else 0.0
        yield j % n, (campaign_id, EpisodeKind.BENIGN, identity, Goal.NONE, derive_seed(seed, "benign", campaign_id), _spaced(times, span), Tier.USER, "", span)


def plan_run(exp: Experiment, seed: int, replicas: Iterable[int] | None = None) -> list[ReplicaPlan]:
    """Every replica's campaigns, deterministically from (experiment, seed); with ``replicas``, only those (in that order)."""
    wanted = frozenset(replicas) if replicas is not None else None
    per_replica: dict[int, list[tuple]] = {r: [] for r in (sorted(wanted) if wanted is not None else range(exp.simulation.replicas))}
    for replica, entry in _entries(exp, seed, wanted):
        per_replica[replica].append(entry)
    return [ReplicaPlan(r, tuple(CampaignSpec(k, *entry) for k, entry in enumerate(entries))) for r, entries in per_replica.items()]


@dataclass(frozen=True, slots=True)
class PlanSummary:
    """What the driver needs of a plan — without holding it (its size grows with the population)."""

    replicas: int
    episodes: int
    horizon: float  # simulated time of the last attempt


def summarize_plan(exp: Experiment, seed: int) -> PlanSummary:
    """Episode count and horizon of the run's plan, streamed (constant memory)."""
    episodes, horizon = 0, 0.0
    for _replica, entry in _entries(exp, seed, None):
        times = entry[5]
        episodes += len(times)
        if times:
            horizon = max(horizon, times[-1] + entry[8])  # the last attempt's start, plus its longest conversation
    return PlanSummary(exp.simulation.replicas, episodes, horizon)


def segment_count(plan: PlanSummary, exp: Experiment) -> int:
    """Units of work needed to reach past the last attempt (plus one closing window)."""
    horizon = plan.horizon + exp.simulation.window_s
    length = exp.simulation.window_s * exp.simulation.segment_windows
    return max(1, math.ceil(horizon / length))
