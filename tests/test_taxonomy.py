"""The OWASP LLM 2025 / MITRE ATLAS table covers everything the project can name, and the tags reach the results."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from attackers.mutations import OPERATORS
from kosmoi import taxonomy
from kosmoi.types import Channel, Goal
from results.analysis import rates
from results.coverage import CHECKED, NOT_ATTACKED, NOT_EXERCISED, coverage
from results.store import load_runs
from targets.detectors import ALL_DETECTORS
from targets.input_stages import (
    BIDI_RULE,
    CLASSIFIER_RULE,
    ENCODED_RULE,
    INVISIBLE_RULE,
    MIXED_SCRIPT_RULE,
    SEMANTIC_RULE,
    TAG_RULE,
    TOO_DEEP_RULE,
)
from targets.output_guard import PRICE_FLOOR_RULE, REFUND_LIMIT_RULE, TRANSFER_LIMIT_RULE
from targets.rules import load_ruleset
from targets.tool_manifest import FINDING_KINDS
from tests.synthetic_runs import attack, benign, write_run

ROOT = Path(__file__).resolve().parents[1]


def test_every_goal_channel_and_technique_family_is_mapped():
    assert {g.value for g in Goal} - {Goal.NONE.value} == set(taxonomy.GOALS)
    assert {c.value for c in Channel} == set(taxonomy.CHANNELS)
    assert {op.family for op in OPERATORS.values()} <= set(taxonomy.TECHNIQUE_FAMILIES)
    for tags in (*taxonomy.GOALS.values(), *taxonomy.CHANNELS.values()):
        assert tags.owasp and tags.atlas


def test_every_guard_rule_and_detector_is_mapped():
    ids = [r.id for r in load_ruleset("builtin:baseline").rules]
    ids += [d.id for d in ALL_DETECTORS]
    ids += [TAG_RULE, BIDI_RULE, INVISIBLE_RULE, MIXED_SCRIPT_RULE, ENCODED_RULE, TOO_DEEP_RULE, CLASSIFIER_RULE, SEMANTIC_RULE]
    ids += [PRICE_FLOOR_RULE, REFUND_LIMIT_RULE, TRANSFER_LIMIT_RULE, "canary", "canary.spaced", "limit.length"]
    unmapped = [i for i in ids if not taxonomy.rule_tags(i).owasp]
    assert not unmapped
    assert taxonomy.rule_tags("extract.system-prompt").owasp == ("LLM07",)
    assert taxonomy.rule_tags("cmd.reverse-shell").owasp == ("LLM05",)
    assert taxonomy.rule_tags("mined.g2.drain-wallet.0").owasp == ("LLM01", "LLM06")  # a mined rule: injection aimed at its goal
    assert taxonomy.rule_tags("vendor.unknown") == taxonomy.NONE


def test_every_sentinel_case_kind_is_mapped():
    sources = (ROOT / "targets" / "sentinels.py").read_text("utf-8")
    kinds = set(re.findall(r"case\(\"([a-z-]+)\"", sources)) | set(FINDING_KINDS)
    assert len(kinds) >= 10
    assert kinds <= set(taxonomy.CASE_KINDS), kinds - set(taxonomy.CASE_KINDS)
    assert taxonomy.case_tags("poisoned").owasp == ("LLM03",)


def test_unknown_ids_are_refused_and_unexercised_categories_are_named():
    with pytest.raises(ValueError, match="LLM11"):
        taxonomy._t("LLM11")
    assert set(taxonomy.not_exercised()) == set(taxonomy.OWASP_LLM_2025) - set(taxonomy.EXERCISED_BY)
    assert set(taxonomy.EXERCISED_BY) <= set(taxonomy.OWASP_LLM_2025)
    assert taxonomy.not_exercised() == ()  # every OWASP LLM 2025 category is attacked or (LLM03) checked


def test_episode_tags_combine_goal_channel_and_families():
    tags = taxonomy.episode_tags("leak_system_prompt", "indirect", ["framing", "lexical"])
    assert tags.owasp == ("LLM01", "LLM07")
    assert tags.atlas == ("AML.T0051.001", "AML.T0054", "AML.T0056")
    assert taxonomy.episode_tags("none", "direct") == taxonomy.NONE  # benign traffic carries no category


def test_runs_written_before_the_tags_get_them_from_goal_channel_and_techniques(tmp_path, monkeypatch):
    episodes = [
        attack("c1", 0, goal="exfiltrate_secret", channel="indirect", techniques=["leetspeak"], breached=True, secrets_leaked=1),
        attack("c2", 0, goal="exhaust_service", techniques=[]),
        benign("cust-1", 0),
    ]
    run_dir = write_run(tmp_path / "runs", "old", episodes)
    # drop the columns altogether, as a file written with the episodes schema v2 has none
    for f in (run_dir / "episodes").glob("*.parquet"):
        table = pq.read_table(f)
        pq.write_table(table.drop_columns(["owasp", "atlas", "poisoned_by"]), f)
    runs = load_runs(run_dir)
    frame = runs.episodes(["goal", "owasp"])
    assert frame["owasp"].isna().all()  # what is on disk
    by = rates(runs, ["owasp"]).set_index("owasp")
    assert by.loc["LLM01", "attacks"] == 2 and by.loc["LLM02", "breaches"] == 1 and by.loc["LLM10", "attacks"] == 1
    matrix = coverage(runs).set_index("owasp")
    assert list(matrix.index) == list(taxonomy.OWASP_LLM_2025)  # every category, attacked or not
    assert matrix.loc["LLM02", "breach_rate"] == 1.0
    assert matrix.loc["LLM06", "status"] == NOT_ATTACKED and matrix.loc["LLM06", "attacks"] == 0  # no drain_wallet attack in this run
    assert matrix.loc["LLM03", "status"] == CHECKED
    assert matrix.loc["LLM09", "status"] == NOT_ATTACKED  # the project attacks it (goal misinform); this run did not
    # a category nothing exercises is shown as such (every category is exercised today: pretend LLM04 is not)
    import results.coverage

    monkeypatch.delitem(results.coverage.EXERCISED_BY, "LLM04")
    assert coverage(runs).set_index("owasp").loc["LLM04", "status"] == NOT_EXERCISED
