"""The one definition of each metric, on hand-made rows."""

from __future__ import annotations

import pyarrow as pa

from kosmoi.metrics import Tally, breach_rate, bypass_rates, false_positive_rate, false_warrant_rate, utility
from kosmoi.schemas import EPISODES, WARRANTS


def _episode(kind: str, *, breached=False, stage=None, in_action="allow", out_action="allow", completed=None, identity="x", damage=0.0):
    return {
        "episode_id": f"e{id(object())}", "run_id": "r", "generation": 0, "replica": 0, "campaign_id": "c", "attempt": 0, "kind": kind,
        "goal": "none", "channel": "direct", "tier": "grunt", "generator": "g", "identity": identity, "agent": "support", "techniques": [], "seed_id": "",
        "parent_ids": [], "payload": "p", "blocked_stage": stage, "rule_ids": [], "input_action": in_action, "input_score": 0.0,
        "output_action": out_action, "breached": breached, "damage_usd": damage, "secrets_leaked": 0, "records_exfiltrated": 0,
        "task_completed": completed, "cost_usd": 0.0, "sim_time": 0.0,
    }


def test_rates_from_rows():
    rows = [
        _episode("attack", breached=True, damage=100.0),
        _episode("attack", stage="input_guard", in_action="block"),
        _episode("attack", stage="input_guard", in_action="block"),
        _episode("attack", stage="victim"),
        _episode("benign", completed=True, identity="u1"),
        _episode("benign", completed=True, in_action="flag", identity="u1"),
        _episode("benign", completed=False, stage="input_guard", in_action="block", identity="u2"),
        _episode("benign", completed=True, out_action="flag", identity="u3"),
    ]
    tally = Tally()
    tally.add_episodes(pa.Table.from_pylist(rows[:3], schema=EPISODES))
    tally.add_episodes(pa.Table.from_pylist(rows[3:], schema=EPISODES))
    assert breach_rate(tally) == 0.25
    assert false_positive_rate(tally) == 0.75
    assert utility(tally) == 0.75
    assert tally.damage_usd == 100.0
    rates = bypass_rates(tally)
    assert rates["input_guard"] == 0.5  # 4 reached it, 2 passed
    assert rates["victim"] == 0.5  # 2 reached it, 1 passed
    warrants = pa.Table.from_pylist(
        [
            {"run_id": "r", "replica": 0, "warrant_id": "w1", "action": "revoke_token", "subject": "u2", "subject_kind": "identity", "case_ids": [], "reasoning": "", "sim_time": 1.0, "subject_is_benign": True},
            {"run_id": "r", "replica": 0, "warrant_id": "w2", "action": "revoke_token", "subject": "att", "subject_kind": "identity", "case_ids": [], "reasoning": "", "sim_time": 1.0, "subject_is_benign": False},
        ],
        schema=WARRANTS,
    )
    tally.add_warrants(warrants)
    assert false_warrant_rate(tally) == 1 / 3


def test_empty_tally_has_zero_rates():
    tally = Tally()
    assert breach_rate(tally) == false_positive_rate(tally) == utility(tally) == false_warrant_rate(tally) == 0.0
