"""Experiment files: validation and the messages a user sees."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from sim.config import ConfigError, load_experiment, parse_experiment
from tests.conftest import ROOT, immune_cmd


def _error(text: str, source: str = "experiments/smoke.yaml") -> str:
    with pytest.raises(ConfigError) as info:
        parse_experiment(text, source)
    return str(info.value)


def test_shipped_experiments_are_valid():
    for path in sorted((ROOT / "experiments").glob("*.yaml")):
        exp = load_experiment(path)
        assert exp.name == path.stem


def test_negative_count_names_file_field_and_value():
    text = "name: smoke\nattackers:\n  grunt:\n    count: -3\n"
    message = _error(text)
    assert message.startswith("experiments/smoke.yaml: attackers.grunt.count: must be > 0, got -3")
    assert "(line 4)" in message


def test_unknown_key_is_an_error_with_a_suggestion():
    message = _error("name: smoke\nattackers:\n  grunt:\n    cuont: 5\n")
    assert "attackers.grunt.cuont: unknown key (did you mean 'count'?)" in message
    assert "allowed here:" in message and "attempts" in message


def test_unknown_top_level_key():
    assert "experiments/smoke.yaml: simulaton: unknown key (did you mean 'simulation'?)" in _error("name: x\nsimulaton: {}\n")


def test_wrong_type_says_what_is_expected():
    message = _error("name: smoke\nsimulation:\n  replicas: many\n")
    assert "simulation.replicas: must be an integer, got 'many'" in message


def test_bad_literal_lists_the_choices():
    message = _error("name: smoke\ntargets:\n  victim_profile: genius\n")
    assert "targets.victim_profile: must be one of 'naive', 'typical' or 'hardened', got 'genius'" in message


def test_several_errors_are_all_reported():
    message = _error("name: smoke\nseed: -1\nbenign:\n  requests: 0\n")
    assert "seed: must be >= 0, got -1" in message
    assert "benign.requests: must be > 0, got 0" in message


def test_missing_name():
    assert "experiments/smoke.yaml: name: required, but missing" in _error("seed: 3\n")


def test_yaml_syntax_error_has_a_line():
    message = _error("name: smoke\nattackers: [unclosed\n")
    assert message.startswith("experiments/smoke.yaml: not valid YAML")
    assert "line" in message


def test_empty_and_non_mapping_files():
    assert "the file is empty" in _error("")
    assert "expected a mapping of settings at the top level, got list" in _error("- a\n- b\n")


def test_missing_file(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"nope\.yaml: no such file"):
        load_experiment(tmp_path / "nope.yaml")


def test_config_hash_ignores_seed_but_not_settings():
    a = parse_experiment("name: x\nseed: 1\n", "a")
    b = parse_experiment("name: x\nseed: 2\n", "b")
    c = parse_experiment("name: x\nseed: 1\nattackers: {grunt: {count: 7}}\n", "c")
    assert a.config_hash() == b.config_hash() != c.config_hash()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("name: smoke\nattackers:\n  grunt:\n    count: -3\n", "attackers.grunt.count: must be > 0, got -3"),
        ("name: smoke\nbogus: 1\n", "bogus: unknown key"),
    ],
)
def test_cli_prints_the_message_without_traceback(tmp_path: Path, content: str, expected: str):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    proc = subprocess.run([*immune_cmd(), "run", str(path), "--out", str(tmp_path / "runs")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert expected in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not (tmp_path / "runs").exists()


def test_cli_missing_file(tmp_path: Path):
    proc = subprocess.run([*immune_cmd(), "run", str(tmp_path / "missing.yaml")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "missing.yaml: no such file" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_sniper_campaigns_need_providers_and_llm_grunts_need_settings():
    message = _error("name: x\nattackers:\n  sniper:\n    count: 3\n")
    assert "attackers.sniper: sniper campaigns need at least one entry in 'providers'" in message
    assert ", got" not in message  # no dump of the whole section
    message = _error("name: x\nattackers:\n  grunt:\n    generator: llm\n")
    assert "generator 'llm' needs an 'llm' section" in message


def test_budget_policy_replaces_a_level_entirely():
    from attackers.budget import DEFAULT_POLICY
    from sim.generation import caps_for

    exp = parse_experiment("name: x\nbudget:\n  defcon: 4\n  policy: {4: {attacks_per_day: 7}}\n", "b.yaml")
    caps = caps_for(exp.budget)
    assert caps.attacks_per_day == 7 and caps.attacks_per_hour is None and caps.usd_per_day is None
    assert caps_for(parse_experiment("name: x\nbudget: {defcon: 3}\n", "b.yaml").budget) == DEFAULT_POLICY[3]
    assert "DEFCON levels are 1..5" in _error("name: x\nbudget:\n  policy: {9: {}}\n")


def test_unknown_phone_region_is_named():
    message = _error("name: smoke\ntargets:\n  output_guard:\n    phone_regions: [GB, UK]\n")
    assert "targets.output_guard.phone_regions" in message and "unknown phone-number regions ['UK']" in message
