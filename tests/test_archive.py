"""The attackers' MAP-Elites archive: recipes judged over all their episodes, diverse, resumable."""

from __future__ import annotations

import random

import pyarrow as pa

from attackers.archive import DECAY, FAMILIES, GOALS, Archive, family_of
from attackers.mutator import MutatorAttacker
from attackers.seeds import AttackerAssets, seeds_for
from kosmoi.types import Goal


def _episodes(rows: list[tuple[str, str, list[str], str | None, bool]]) -> pa.Table:
    """rows: (goal, seed_id, techniques, blocked_stage, breached)."""
    return pa.table(
        {
            "kind": ["attack"] * len(rows) + ["benign"],
            "goal": [r[0] for r in rows] + ["none"],
            "seed_id": [r[1] for r in rows] + [""],
            "techniques": [r[2] for r in rows] + [[]],
            "blocked_stage": [r[3] for r in rows] + [None],
            "breached": [r[4] for r in rows] + [False],
            "payload": [f"payload {i}" for i in range(len(rows))] + ["hello"],
        }
    )


def test_a_recipe_that_keeps_breaching_beats_one_lucky_breach():
    steady = [("drain_wallet", "drain_wallet.1", ["leetspeak"], None, True)] * 9 + [("drain_wallet", "drain_wallet.1", ["leetspeak"], "input_guard", False)]
    lucky = [("drain_wallet", "drain_wallet.2", ["homoglyph"], None, True)] + [("drain_wallet", "drain_wallet.2", ["homoglyph"], "input_guard", False)] * 4
    archive = Archive()
    archive.update(_episodes(steady + lucky), generation=0)
    assert family_of(("leetspeak",)) == family_of(("homoglyph",)) == "obfuscation"  # one cell, two recipes
    cell = archive.cells[Archive.cell("drain_wallet", "obfuscation")]
    assert [e.seed_id for e in cell] == ["drain_wallet.1", "drain_wallet.2"]
    assert cell[0].breaches == 9 and cell[0].n == 10 and cell[0].score > 0.7 > cell[1].score


def test_evidence_decays_so_a_patched_recipe_falls_behind():
    archive = Archive()
    archive.update(_episodes([("drain_wallet", "drain_wallet.1", ["leetspeak"], None, True)] * 4), generation=0)
    elite = archive.elites[Archive.cell("drain_wallet", "obfuscation")]
    before = elite.score
    # the defenders patched it: the next generation's replays are all blocked
    archive.update(_episodes([("drain_wallet", "drain_wallet.1", ["leetspeak"], "input_guard", False)] * 4), generation=1)
    elite = archive.elites[Archive.cell("drain_wallet", "obfuscation")]
    assert elite.n == 4 * DECAY + 4 and elite.score < before / 2 and elite.generation == 1


def test_every_cell_keeps_its_own_elites_and_coverage_counts_cells():
    rows = [(goal.value, f"{goal.value}.0", [], None, goal is Goal.DRAIN_WALLET) for goal in Goal if goal is not Goal.NONE]
    archive = Archive()
    archive.update(_episodes(rows), generation=0)
    assert len(archive.elites) == len(GOALS)
    assert archive.coverage == len(GOALS) / (len(FAMILIES) * len(GOALS))
    assert archive.breaching == {Archive.cell("drain_wallet", "plain")}


def test_recipes_are_deterministic_stay_within_the_goal_and_respect_depth():
    rows = [("drain_wallet", "drain_wallet.1", ["leetspeak", "authority"], None, True), ("tamper_price", "tamper_price.0", ["base64"], None, True)] * 3
    archive = Archive()
    archive.update(_episodes(rows), generation=0)
    picks = [archive.recipe_for("drain_wallet", random.Random(i), max_depth=3) for i in range(50)]
    assert picks == [archive.recipe_for("drain_wallet", random.Random(i), max_depth=3) for i in range(50)]
    assert all(seed == "drain_wallet.1" and 1 <= len(ops) <= 3 for seed, ops in picks)
    assert ("drain_wallet.1", ("leetspeak", "authority")) in picks  # replayed as is
    assert len(set(picks)) > 3  # and mutated
    assert archive.recipe_for("leak_system_prompt", random.Random(0), 3) is None


def test_the_archive_round_trips_through_json():
    archive = Archive()
    archive.update(_episodes([("drain_wallet", "drain_wallet.1", ["leetspeak"], None, True)] * 3), generation=2)
    again = Archive.from_json(archive.to_json())
    assert again.to_json() == archive.to_json()
    assert again.elites[Archive.cell("drain_wallet", "obfuscation")].operators == ("leetspeak",)


def test_an_attacker_starts_from_an_inherited_recipe():
    seeds = seeds_for(Goal.DRAIN_WALLET)
    start = (seeds[1].seed_id, ("leetspeak", "authority"))
    assets = AttackerAssets("att-00007", "GB29NWBK60161331926819", "drop007@exfil.example", ("aurora desk lamp",), ("STRIPE_SECRET_KEY",))
    attacker = MutatorAttacker("c1", Goal.DRAIN_WALLET, assets, seed=3, max_depth=3, start=start)
    attack = attacker.propose(0)
    assert attack.seed_id == seeds[1].seed_id and attack.techniques == ("leetspeak", "authority")
