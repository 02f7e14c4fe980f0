"""Extension points: a guard stage and a sentinel are one module each plus configuration.

The toy stage and sentinel live in ``tests/plugins``; nothing in ``targets``
or ``sim`` names them. A run that lists them in ``targets.plugins`` runs them
in every Ray worker, deterministically.
"""

from __future__ import annotations

import pandas as pd
import pytest

from kosmoi.registry import Ref, Registry, load_plugins
from kosmoi.types import Action
from sim.config import ConfigError, parse_experiment
from sim.runner import RunOptions, run_experiment
from targets.input_guard import InputGuard
from targets.rules import load_ruleset
from targets.stages import STAGES, stage_names
from tests.conftest import TINY_EXPERIMENT

PLUGINS = """
targets:
  plugins: [tests.plugins.toy_stage, tests.plugins.toy_sentinel]
  input_guard:
    stages: [signals, rules, classifier, {name: toy-polite, options: {word: please}}]
  sentinels:
    enabled: [auditor, network, {name: toy-polite-watch, options: {threshold: 1}}]
"""


@pytest.fixture(scope="module")
def baseline():
    return load_ruleset("builtin:baseline")


def test_a_plugin_stage_runs_where_the_configuration_puts_it(baseline):
    load_plugins(["tests.plugins.toy_stage"])
    text = "Could you please tell me when my order ships?"
    plain = InputGuard(baseline)
    polite = InputGuard(baseline, stages=["signals", "rules", "classifier", "toy-polite"])
    assert polite.stage_names == ("signals", "rules", "classifier", "toy-polite")
    assert "toy.polite" not in plain.scan(text).rule_ids
    verdict = polite.scan(text)
    assert verdict.action is Action.FLAG and "toy.polite" in verdict.rule_ids
    assert "says 'please'" in verdict.reasons
    other_word = InputGuard(baseline, stages=[Ref("toy-polite", {"word": "kindly"})])
    assert other_word.scan(text).action is Action.ALLOW
    assert "toy.polite" in other_word.scan("Kindly ship it.").rule_ids


def test_the_default_pipeline_is_the_builtin_stages_in_order(baseline):
    assert InputGuard(baseline).stage_names == ("signals", "rules", "classifier")
    assert {"signals", "rules", "classifier", "semantic"} <= set(stage_names("input"))


def test_an_unknown_stage_is_an_error_that_lists_the_registered_ones(baseline):
    with pytest.raises(ValueError, match=r"unknown input guard stage 'no-such-stage'; registered: .*classifier.*rules.*signals"):
        InputGuard(baseline, stages=["signals", "no-such-stage"])
    with pytest.raises(ValueError, match="takes no options"):
        InputGuard(baseline, stages=[Ref("rules", {"strict": True})])


def test_the_experiment_file_names_stages_sentinels_and_plugins():
    exp = parse_experiment(TINY_EXPERIMENT + PLUGINS, "tiny.yaml")
    assert [part.name for part in exp.targets.input_guard.stages][-1] == "toy-polite"
    assert exp.targets.sentinels.enabled[-1].options == {"threshold": 1}
    base = parse_experiment(TINY_EXPERIMENT, "tiny.yaml")
    assert exp.config_hash() != base.config_hash()  # what shapes results is in the hash


def test_a_stage_the_file_names_without_its_plugin_is_a_clear_config_error():
    text = TINY_EXPERIMENT + "targets:\n  input_guard:\n    stages: [signals, shouting]\n"
    with pytest.raises(ConfigError, match=r"unknown input guard stage 'shouting'; registered: .*(?s:.*)targets.plugins"):
        parse_experiment(text, "tiny.yaml")
    with pytest.raises(ConfigError, match="cannot be imported"):
        parse_experiment(TINY_EXPERIMENT + "targets:\n  plugins: [tests.plugins.no_such_module]\n", "tiny.yaml")
    with pytest.raises(ConfigError, match="unknown sentinel 'watcher'"):
        parse_experiment(TINY_EXPERIMENT + "targets:\n  sentinels:\n    enabled: [watcher]\n", "tiny.yaml")


def test_a_registry_refuses_two_different_entries_under_one_name():
    registry: Registry[object] = Registry("widget")
    registry.add("a", len)
    registry.add("a", len)  # the same entry again (a module imported twice) is fine
    with pytest.raises(ValueError, match="registered twice"):
        registry.add("a", abs)
    with pytest.raises(ValueError, match=r"unknown widget 'b'; registered: a"):
        registry.get("b")
    assert isinstance(STAGES, Registry)  # guard stages, sentinels and victims are registries of this kind


@pytest.mark.slow
def test_plugins_run_in_every_worker_and_stay_deterministic(ray_local, tmp_path):
    exp = parse_experiment(TINY_EXPERIMENT + PLUGINS, "tiny.yaml")
    one = run_experiment(exp, RunOptions(out=tmp_path / "one", workers=1, track=False))
    two = run_experiment(exp, RunOptions(out=tmp_path / "two", workers=2, track=False))
    episodes = pd.read_parquet(one.run_dir / "episodes")
    polite = episodes["payload"].str.lower().str.contains("please")
    flagged = episodes["rule_ids"].map(lambda ids: "toy.polite" in list(ids))
    assert flagged.any()
    # The stage saw every episode the input guard saw: a polite text that reached the guard is flagged.
    screened = ~episodes["blocked_stage"].isin(["court", "identity"])  # refused before the guard
    assert flagged[polite & screened].all()
    cases = pd.read_parquet(one.run_dir / "cases")
    assert (cases["sentinel"] == "toy-polite-watch").any()
    again = pd.read_parquet(two.run_dir / "episodes")
    columns = ["episode_id", "rule_ids", "input_action", "breached"]
    left = episodes[columns].sort_values("episode_id").reset_index(drop=True)
    right = again[columns].sort_values("episode_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(left.astype(str), right.astype(str))


def test_attacker_kinds_and_providers_come_from_registries():
    from attackers.backends import PROVIDERS
    from attackers.base import ATTACKERS

    assert {"mutator", "llm"} <= set(ATTACKERS.names()) and {"anthropic", "openai"} <= set(PROVIDERS.names())
    assert not parse_experiment(TINY_EXPERIMENT, "tiny.yaml").attackers.grunt.uses_model
    with pytest.raises(ConfigError, match=r"unknown attacker kind 'gpt-swarm'; registered: conversation, llm, mutator"):
        parse_experiment(TINY_EXPERIMENT.replace("    attempts: 3\n", "    attempts: 3\n    generator: gpt-swarm\n", 1), "tiny.yaml")
    sniper = "  sniper:\n    count: 1\n    providers: [{provider: mistral, model: m, input_usd_per_mtok: 1, output_usd_per_mtok: 1}]\n"
    with pytest.raises(ConfigError, match=r"unknown sniper provider 'mistral'; registered: anthropic, openai"):
        parse_experiment(TINY_EXPERIMENT.replace("attackers:\n", "attackers:\n" + sniper, 1), "tiny.yaml")


def test_the_operator_family_lists_are_derived_from_the_table():
    from attackers.mutations import EVASION_OPS, FRAMING_OPS, OPERATORS

    assert set(FRAMING_OPS) == {name for name, op in OPERATORS.items() if op.family == "framing"}
    assert set(EVASION_OPS) | set(FRAMING_OPS) | {"output_encoding"} == set(OPERATORS)
    assert not set(EVASION_OPS) & set(FRAMING_OPS)


def test_reward_and_fitness_are_one_table():
    from attackers.progress import progress
    from kosmoi.types import Stage

    assert progress(True, Stage.INPUT_GUARD) == 1.0
    assert progress(False, "output_guard") == progress(False, Stage.OUTPUT_GUARD) == 0.5
    assert progress(False, None) == 0.1 and progress(False, "a-stage-from-the-future") == 0.0
