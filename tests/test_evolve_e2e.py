"""`immune evolve` end to end: generations in MLflow, rules mined from confirmed damage, resumable, deterministic, frozen control."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from tests import golden
from tests.conftest import immune_cmd

pytestmark = pytest.mark.slow

EVOLVE = """
name: evo-test
seed: 5
simulation: {replicas: 2, arrival_window_s: 300, segment_windows: 2, checkpoint_every: 0}
attackers: {grunt: {count: 300, attempts: 3}}
benign: {customers: 20, vendors: 2, employees: 4, requests: 3}
tracking: {experiment: evo-test}
"""
GENERATIONS = 3


def _evolve(args: list[str], cwd: Path, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([*immune_cmd(), "evolve", *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=600, **kw)


def _evolution_dir(out: Path) -> Path:
    found = sorted(out.glob("evo-*"))
    assert len(found) == 1, found
    return found[0]


def _curve(directory: Path) -> list[dict]:
    return json.loads((directory / "curve.json").read_text())


def _rules(directory: Path, generation: int) -> list[tuple[str, str, str]]:
    data = json.loads((directory / "rules" / f"g{generation:03d}.json").read_text())
    return [(r["id"], r["pattern"], r["action"]) for r in data["rules"]]


@pytest.fixture(scope="module")
def evolved(tmp_path_factory):
    root = tmp_path_factory.mktemp("evolve")
    (root / "evo.yaml").write_text(EVOLVE)
    done = _evolve(["evo.yaml", "--generations", str(GENERATIONS), "--out", "out"], root)
    assert done.returncode == 0, done.stderr[-3000:]
    return root, _evolution_dir(root / "out"), done


def test_the_evolution_reproduces_the_golden_one(evolved):
    """Same experiment, same seed: the same curve, rule sets and generation runs as recorded (tests/golden.py)."""
    _, directory, _ = evolved
    golden.check("evolve", golden.evolution_digest(directory))


def test_each_generation_is_an_mlflow_run_and_registers_a_staging_version(evolved):
    from mlflow.tracking import MlflowClient

    root, directory, done = evolved
    assert "breach" in done.stdout and "results:" in done.stdout
    client = MlflowClient(f"sqlite:///{root / 'out' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("evo-test")
    runs = client.search_runs([experiment.experiment_id], order_by=["params.generation ASC"])
    assert [r.data.params["generation"] for r in runs] == [str(g) for g in range(GENERATIONS)]
    for run in runs:
        for metric in ("breach_rate", "false_positive_rate", "rules", "new_rules", "archive_coverage"):
            assert metric in run.data.metrics, (metric, run.data.metrics.keys())
        assert run.data.tags["kosmoi.evolution"] == directory.name
    versions = sorted(client.search_model_versions("name='kosmoi-guardrails'"), key=lambda v: int(v.version))
    assert len(versions) == GENERATIONS
    assert str(client.get_model_version_by_alias("kosmoi-guardrails", "staging").version) == str(versions[-1].version)
    assert [v.tags["kosmoi.generation"] for v in versions] == [str(g) for g in range(GENERATIONS)]  # the generation printed next to "model vN"
    assert versions[1].tags["kosmoi.parent_version"] == str(versions[0].version)


def test_rules_are_mined_only_from_confirmed_damage_and_the_breach_rate_falls(evolved):
    _root, directory, _ = evolved
    curve = _curve(directory)
    assert len(curve) == GENERATIONS
    assert curve[0]["breaches"] > 10 and curve[-1]["breach_rate"] < 0.5 * curve[0]["breach_rate"]
    assert all(row["false_positive_rate"] <= 0.01 for row in curve)
    state = json.loads((directory / "state.json").read_text())
    first_run = directory / "runs" / state["records"][0]["run_id"]
    episodes = pd.read_parquet(first_run / "episodes").set_index("episode_id")
    mined = [r for r in json.loads((directory / "rules" / "g001.json").read_text())["rules"] if r["provenance"].get("source") == "mined"]
    assert mined and len(mined) == curve[0]["new_rules"]
    for rule in mined:
        assert rule["provenance"]["generation"] == 0 and rule["provenance"]["run_id"] == state["records"][0]["run_id"]
        sources = episodes.loc[rule["provenance"]["attack_ids"]]
        assert sources["breached"].all() and (sources["input_action"] != "block").all() and (sources["kind"] == "attack").all()


def test_a_killed_evolution_resumes_from_its_last_generation_and_matches(evolved, tmp_path):
    _root, reference, _ = evolved
    (tmp_path / "evo.yaml").write_text(EVOLVE)
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.Popen([*immune_cmd(), "evolve", "evo.yaml", "--generations", str(GENERATIONS), "--out", "out"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    state_path = None
    while time.monotonic() < deadline:
        candidates = list((tmp_path / "out").glob("evo-*/state.json"))
        if candidates:
            try:
                if len(json.loads(candidates[0].read_text())["records"]) >= 1:
                    state_path = candidates[0]
                    break
            except json.JSONDecodeError:
                pass
        time.sleep(0.2)
    assert state_path is not None, "the first generation never finished"
    time.sleep(1.0)  # into the second generation
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)
    directory = state_path.parent
    done_before = len(json.loads(state_path.read_text())["records"])
    assert done_before < GENERATIONS
    resumed = _evolve(["--resume", str(directory), "--generations", str(GENERATIONS)], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _curve(directory) == _curve(reference)  # same seed, same curve, interrupted or not
    for generation in range(GENERATIONS + 1):
        assert _rules(directory, generation) == _rules(reference, generation)


def test_the_frozen_control_never_patches(tmp_path):
    (tmp_path / "evo.yaml").write_text(EVOLVE)
    done = _evolve(["evo.yaml", "--generations", "2", "--frozen", "--no-track", "--out", "out"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    directory = _evolution_dir(tmp_path / "out")
    assert "frozen" in done.stdout
    assert (directory / "rules" / "g000.json").read_text() == (directory / "rules" / "g002.json").read_text()
    curve = _curve(directory)
    assert all(row["new_rules"] == 0 for row in curve) and all(row["breaches"] > 10 for row in curve)
    assert not (tmp_path / "out" / "mlflow.db").exists()


def test_a_bad_resume_directory_is_a_clear_error(tmp_path):
    done = _evolve(["--resume", str(tmp_path / "nowhere")], tmp_path)
    assert done.returncode == 2 and "nowhere" in done.stderr and "Traceback" not in done.stderr
