"""End to end: `immune run` on the embedded defaults, and determinism across worker counts."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from kosmoi.schemas import EPISODES, schema_version
from sim.runner import RunOptions, run_experiment
from tests import golden
from tests.conftest import ROOT, immune_cmd

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> tuple[Path, dict, str]:
    out = tmp_path_factory.mktemp("runs")
    proc = subprocess.run(
        [*immune_cmd(), "run", str(ROOT / "experiments" / "smoke.yaml"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "MLFLOW_TRACKING_URI": ""},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dirs = [p for p in out.iterdir() if p.is_dir() and (p / "summary.json").exists()]
    assert len(run_dirs) == 1
    return run_dirs[0], json.loads((run_dirs[0] / "summary.json").read_text()), proc.stdout + proc.stderr


def test_smoke_reproduces_the_golden_run(smoke_run):
    """Same experiment, same seed: the same episodes, events, cases, warrants and summary as recorded (tests/golden.py)."""
    run_dir, _, _ = smoke_run
    golden.check("smoke", golden.run_digest(run_dir))


def test_smoke_prints_a_summary_quietly(smoke_run):
    _run_dir, summary, output = smoke_run
    assert f"run {summary['run_id']}" in output and "breach rate" in output
    for noise in ("Started a local Ray instance", "INFO", "Traceback", "WARNING"):
        assert noise not in output


def test_smoke_parquet_matches_the_summary(smoke_run):
    run_dir, summary, _ = smoke_run
    files = sorted((run_dir / "episodes").glob("*.parquet"))
    assert files and schema_version(pq.read_schema(files[0])) == ("episodes", 4)
    df = pd.read_parquet(run_dir / "episodes")
    assert set(EPISODES.names) <= set(df.columns)
    assert len(df) == summary["episodes"] >= 1000
    assert df["episode_id"].is_unique and (df["run_id"] == summary["run_id"]).all()
    attacks, benign = df[df.kind == "attack"], df[df.kind == "benign"]
    assert len(attacks) == summary["attack_episodes"] and len(benign) == summary["benign_episodes"]
    assert summary["breach_rate"] == pytest.approx(attacks["breached"].mean())
    flagged = (benign["input_action"] != "allow") | (benign["output_action"] != "allow")
    assert summary["false_positive_rate"] == pytest.approx(flagged.mean())
    real = benign[benign["generator"] == "real-traffic"]  # real people's prompts are part of the benign traffic and of its FPR
    assert 0.05 * len(benign) < len(real) < 0.4 * len(benign) and real["payload"].str.len().mean() > 2 * benign[benign["generator"] == "traffic"]["payload"].str.len().mean()
    assert summary["blocked_by_stage"] == attacks["blocked_stage"].value_counts().to_dict()
    assert summary["damage_usd"] == pytest.approx(attacks["damage_usd"].sum())
    # every attack carries its OWASP / ATLAS ids, benign traffic none; the summary's matrix counts them
    assert attacks["owasp"].map(lambda ids: "LLM01" in ids).all() and benign["owasp"].map(len).eq(0).all()
    coverage = summary["coverage"]["owasp"]
    for tag, row in coverage.items():
        mine = attacks[attacks["owasp"].map(lambda ids, tag=tag: tag in ids)]
        assert row["attacks"] == len(mine) and row["breaches"] == int(mine["breached"].sum()), tag
    assert set(summary["coverage"]["not_exercised"]) == {t for t, r in coverage.items() if r["status"] == "not exercised"}
    assert 0 < summary["breach_rate"] < 1 and summary["false_positive_rate"] < 0.2
    assert summary["episodes_per_s"] > 0 and summary["duration_s"] > 0
    for key in ("mlflow_tracking_uri", "mlflow_run_id", "seed", "config_hash"):
        assert summary[key] not in (None, "")
    for table in ("events", "cases", "warrants"):
        assert (run_dir / table).is_dir()
        pd.read_parquet(run_dir / table)
    events = pd.read_parquet(run_dir / "events")
    assert set(events["episode_id"]) - {""} <= set(df["episode_id"])


def test_smoke_is_an_mlflow_run_with_metrics(smoke_run):
    from mlflow.tracking import MlflowClient

    run_dir, summary, _ = smoke_run
    assert summary["mlflow_tracking_uri"] == f"sqlite:///{(run_dir.parent / 'mlflow.db').resolve()}"
    client = MlflowClient(summary["mlflow_tracking_uri"])
    run = client.get_run(summary["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.metrics["breach_rate"] == pytest.approx(summary["breach_rate"])
    assert run.data.metrics["false_positive_rate"] == pytest.approx(summary["false_positive_rate"])
    low, high = summary["intervals"]["breach_rate"]
    assert low < summary["breach_rate"] < high and run.data.metrics["breach_rate_ci_low"] == pytest.approx(low)
    assert run.data.metrics["utility_ci_high"] == pytest.approx(summary["intervals"]["utility"][1])
    assert run.data.params["attackers.grunt.count"] == "240"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"summary.json", "config.yaml", "ruleset.json"} <= artifacts
    history = client.get_metric_history(run.info.run_id, "sim.breach_rate")
    assert len(history) == summary["segments"] >= 2  # one point per unit of work, step = simulated seconds
    assert [m.step for m in history] == sorted(m.step for m in history)
    assert history[-1].value == pytest.approx(summary["breach_rate"])


def test_smoke_summary_has_a_stage_breakdown(smoke_run):
    _, summary, _ = smoke_run
    stages = summary["stage_seconds"]
    for stage in ("identity", "input_guard", "victim_and_tools", "output_guard", "oracle", "sentinels_and_court", "attack_generation", "benign_generation", "arrow"):
        assert stage in stages and stages[stage] >= 0
    assert summary["status"] == "complete" and summary["resumes"] == 0


def _episodes(run_dir: Path) -> pd.DataFrame:
    df = pd.read_parquet(run_dir / "episodes").drop(columns=["run_id"])
    return df.sort_values("episode_id").reset_index(drop=True)


def test_same_seed_same_results_whatever_the_workers(ray_local, tiny_experiment, tmp_path):
    one = run_experiment(tiny_experiment, RunOptions(out=tmp_path, workers=1, track=False))
    two = run_experiment(tiny_experiment, RunOptions(out=tmp_path, workers=2, track=False))
    other_seed = run_experiment(tiny_experiment, RunOptions(out=tmp_path, workers=2, seed=12, track=False))
    assert one.summary["workers"] == 1 and two.summary["workers"] == 2
    a, b = _episodes(one.run_dir), _episodes(two.run_dir)
    pd.testing.assert_frame_equal(a, b)
    assert one.summary["breach_rate"] == two.summary["breach_rate"]
    c = _episodes(other_seed.run_dir)
    assert set(c["episode_id"]).isdisjoint(a["episode_id"])
    warrants_a = pd.read_parquet(one.run_dir / "warrants").drop(columns=["run_id"]).sort_values("warrant_id").reset_index(drop=True)
    warrants_b = pd.read_parquet(two.run_dir / "warrants").drop(columns=["run_id"]).sort_values("warrant_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(warrants_a, warrants_b)


def test_unreachable_tracking_server_loses_nothing(ray_local, tiny_experiment, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    exp = tiny_experiment.model_copy(update={"tracking": tiny_experiment.tracking.model_copy(update={"enabled": True})})
    result = run_experiment(exp, RunOptions(out=tmp_path, workers=2))
    assert result.summary["mlflow_run_id"] is None
    assert result.summary["mlflow_tracking_uri"] == "http://127.0.0.1:9"
    assert "MLflow tracking at http://127.0.0.1:9 failed" in caplog.text
    assert len(pd.read_parquet(result.run_dir / "episodes")) == result.summary["episodes"] == sum(exp.planned_episodes())
    assert f"immune sync {result.run_dir}" in caplog.text
    # the server is back (here: a local store): `immune sync` logs what the run would have logged
    from mlflow.tracking import MlflowClient

    store = f"sqlite:///{tmp_path / 'later.db'}"
    done = subprocess.run([*immune_cmd(), "sync", str(result.run_dir), "--tracking-uri", store], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((result.run_dir / "summary.json").read_text())
    run = MlflowClient(store).get_run(summary["mlflow_run_id"])
    assert run.data.metrics["breach_rate"] == pytest.approx(result.summary["breach_rate"])
    assert run.data.metrics["breach_rate_ci_low"] == pytest.approx(summary["intervals"]["breach_rate"][0])
    assert len(MlflowClient(store).get_metric_history(run.info.run_id, "sim.breach_rate")) == summary["segments"]
    again = subprocess.run([*immune_cmd(), "sync", str(result.run_dir), "--tracking-uri", store], capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "already tracked" in again.stderr


def test_parquet_schemas_are_exactly_the_declared_ones(smoke_run):
    """Every table on disk carries the versioned schema of kosmoi/schemas.py (readers depend on it)."""
    from kosmoi.schemas import SCHEMAS, TABLES

    run_dir, _, _ = smoke_run
    for table in TABLES:
        files = sorted((run_dir / table).glob("*.parquet"))
        assert files, table
        for path in files:
            schema = pq.read_schema(path)
            assert schema.equals(SCHEMAS[table], check_metadata=False), f"{path}: {schema} != {SCHEMAS[table]}"
            assert schema_version(schema) == (table, int(SCHEMAS[table].metadata[b"kosmoi.schema_version"]))


def test_the_readme_example_summary_is_what_the_smoke_run_prints(smoke_run):
    """The quick start shows a real run's numbers: the smoke run is seeded, so they cannot drift unnoticed."""
    _, _, output = smoke_run
    readme = (ROOT / "README.md").read_text("utf-8")
    example = readme.split("ending with a summary like:", 1)[1].split("```", 2)[1]
    stable = ("episodes", "breach rate", "false-positive rate", "utility", "attacks stopped by", "damage", "warrants")

    def fields(text: str) -> dict[str, str]:
        found = {}
        for line in text.splitlines():
            cells = [c.strip() for c in line.replace("┃", "│").split("│") if c.strip()]
            if len(cells) >= 2 and cells[0] in stable:
                found[cells[0]] = cells[1]
            elif len(cells) == 1 and found and list(found)[-1] == "attacks stopped by":  # a wrapped continuation
                found["attacks stopped by"] += " " + cells[0]
        return found

    shown, printed = fields(example), fields(output)
    assert set(shown) == set(stable), shown
    assert shown == {k: printed[k] for k in stable}, (shown, printed)
