"""A replica keeps per-campaign state only while a campaign is in flight (the soak's memory depends on it)."""

from __future__ import annotations

from kosmoi.types import EpisodeKind
from sim.config import parse_experiment
from sim.plan import plan_run
from sim.replica import ReplicaSimulator
from targets.rules import load_ruleset
from tests.conftest import TINY_EXPERIMENT


def test_attackers_exist_only_between_their_first_and_last_attempt():
    exp = parse_experiment(TINY_EXPERIMENT.replace("arrival_window_s: 300", "arrival_window_s: 3000"), "tiny.yaml")
    plan = plan_run(exp, exp.seed)[0]
    sim = ReplicaSimulator(exp, plan, exp.seed, "run-x", load_ruleset("builtin:baseline"))
    attacks = [c for c in sim.campaigns if c.spec.kind is EpisodeKind.ATTACK]
    assert attacks and all(c.attacker is None for c in attacks)  # nothing built up front
    step = exp.simulation.window_s
    seen_in_flight = 0
    t = 0.0
    while not sim.finished:
        t += step
        sim.advance(t)
        for c in attacks:
            in_flight = 0 < c.attempt < len(c.spec.times)
            assert (c.attacker is not None) == in_flight, (c.spec.campaign_id, c.attempt)
            assert c.token == "" or c.attempt < len(c.spec.times)
            seen_in_flight += in_flight
    assert seen_in_flight > 0
    assert all(c.attacker is None and c.attempt == len(c.spec.times) for c in attacks)
