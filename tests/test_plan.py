"""Planning: a worker's share of the plan equals the same replicas of the whole plan; the driver's summary matches it."""

from __future__ import annotations

from sim.config import parse_experiment
from sim.plan import plan_run, segment_count, summarize_plan
from tests.conftest import TINY_EXPERIMENT


def test_a_workers_share_of_the_plan_is_exactly_those_replicas_of_the_whole_plan():
    exp = parse_experiment(TINY_EXPERIMENT, "tiny.yaml")
    whole = plan_run(exp, 7)
    share = plan_run(exp, 7, [2, 0])
    assert [p.replica for p in share] == [0, 2]
    assert share[0] == whole[0] and share[1] == whole[2]
    assert plan_run(exp, 8, [1])[0] != whole[1]  # the seed matters


def test_the_streamed_summary_matches_the_full_plan():
    exp = parse_experiment(TINY_EXPERIMENT, "tiny.yaml")
    whole = plan_run(exp, 3)
    summary = summarize_plan(exp, 3)
    assert summary.episodes == sum(p.episodes for p in whole) == sum(exp.planned_episodes())
    assert summary.horizon == max(p.horizon for p in whole)
    assert summary.replicas == len(whole)
    assert segment_count(summary, exp) >= 1
