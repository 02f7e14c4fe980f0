"""Crash-safe runs: resume after kill -9 and after Ctrl-C, worker death mid-run, locks, --fail-if."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from sim.config import parse_experiment
from sim.locks import experiment_lock
from sim.runner import RunOptions, run_experiment
from tests.conftest import immune_cmd

pytestmark = pytest.mark.slow

LONG = """
name: long-{tag}
seed: 21
simulation: {{replicas: 4, arrival_window_s: 1800, segment_windows: 3}}
attackers: {{grunt: {{count: 2400, attempts: 4}}}}
benign: {{customers: 200, vendors: 4, employees: 10, requests: 4}}
tracking: {{enabled: false}}
"""


def _write(tmp_path: Path, tag: str) -> Path:
    path = tmp_path / f"{tag}.yaml"
    path.write_text(LONG.format(tag=tag))
    return path


def _episodes(run_dir: Path) -> pd.DataFrame:
    df = pd.read_parquet(run_dir / "episodes").drop(columns=["run_id"])
    return df.sort_values("episode_id").reset_index(drop=True)


def _only_run(out: Path) -> Path:
    runs = [p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(runs) == 1, runs
    return runs[0]


def _wait_for_commits(out: Path, at_least: int, timeout: float = 120.0) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for run_dir in out.glob("2*"):
            manifest = run_dir / "manifest.json"
            if manifest.exists():
                try:
                    data = json.loads(manifest.read_text())
                except json.JSONDecodeError:
                    continue
                if len(data["committed"]) >= at_least and data.get("checkpoint") is not None:
                    return run_dir
        time.sleep(0.2)
    raise TimeoutError("the run committed nothing in time")


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> pd.DataFrame:
    """The uninterrupted run every resumed run must equal."""
    out = tmp_path_factory.mktemp("reference")
    proc = subprocess.run([*immune_cmd(), "run", str(_write(out, "ref")), "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return _episodes(_only_run(out))


def _same_as_reference(run_dir: Path, reference: pd.DataFrame) -> None:
    resumed = _episodes(run_dir)
    assert resumed["episode_id"].is_unique
    pd.testing.assert_frame_equal(resumed, reference)


def killed_mid_run(experiment: Path, out: Path) -> Path:
    """Start ``immune run`` in its own process group, kill -9 it once two units are committed and checkpointed; the run directory."""
    proc = subprocess.Popen([*immune_cmd(), "run", str(experiment), "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        return _wait_for_commits(out, at_least=2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def test_resume_after_kill_minus_9_equals_an_uninterrupted_run(tmp_path, reference):
    run_dir = killed_mid_run(_write(tmp_path, "ref"), tmp_path / "runs")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "running" and len(manifest["committed"]) < manifest["segments"]
    resumed = subprocess.run([*immune_cmd(), "run", "--resume", str(run_dir)], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    after = json.loads((run_dir / "manifest.json").read_text())
    assert after["status"] == "complete" and after["resumes"] == 1 and after["committed"] == list(range(after["segments"]))
    assert not (run_dir / "checkpoints").exists()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["episodes"] == len(reference)
    _same_as_reference(run_dir, reference)


def test_ctrl_c_stops_gracefully_and_the_run_resumes(tmp_path, reference):
    out = tmp_path / "runs"
    proc = subprocess.Popen([*immune_cmd(), "run", str(_write(tmp_path, "ref")), "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run_dir = _wait_for_commits(out, at_least=1)
    proc.send_signal(signal.SIGINT)
    _stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-2000:]
    assert "resume with: immune run --resume" in stderr
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "interrupted" and 1 <= len(manifest["committed"]) < manifest["segments"]
    assert manifest["committed"] == list(range(len(manifest["committed"])))
    resumed = subprocess.run([*immune_cmd(), "run", "--resume", str(run_dir)], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    _same_as_reference(run_dir, reference)


def _busy_worker_of_this_process(timeout: float = 60.0) -> int | None:
    """The pid of a simulation worker of *this* test's Ray that is running a unit of work.

    ``pgrep`` alone could pick an idle worker, or a dying one left by another
    test's cluster, and the run would then finish without a restart to see.
    Ray titles a worker ``ray::SimulationWorker.advance`` while it runs a unit.
    """
    import psutil

    deadline = time.monotonic() + timeout
    me = os.getpid()
    while time.monotonic() < deadline:
        for proc in psutil.process_iter(["pid", "cmdline"]):
            title = " ".join(proc.info["cmdline"] or [])
            if "SimulationWorker.advance" not in title:
                continue
            try:
                if any(parent.pid == me for parent in proc.parents()):
                    return int(proc.info["pid"])
            except psutil.NoSuchProcess:
                continue
        time.sleep(0.02)
    return None


def test_a_worker_killed_mid_run_is_restarted_and_nothing_is_lost(ray_local, tmp_path, reference):
    exp = parse_experiment(LONG.format(tag="ref"), "ref.yaml")
    out = tmp_path / "runs"
    killed: list[int] = []

    def assassin() -> None:
        _wait_for_commits(out, at_least=1)
        pid = _busy_worker_of_this_process()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    thread = threading.Thread(target=assassin, daemon=True)
    thread.start()
    result = run_experiment(exp, RunOptions(out=out, workers=2, track=False))
    thread.join(timeout=10)
    assert killed, "no worker process was found to kill"
    assert result.status == "complete" and result.summary["worker_restarts"] >= 1
    _same_as_reference(result.run_dir, reference)


def test_a_second_run_of_the_same_experiment_waits_its_turn(tmp_path):
    experiment = tmp_path / "tiny.yaml"
    experiment.write_text("name: locked\nattackers: {grunt: {count: 2, attempts: 1}}\nbenign: {customers: 1, vendors: 0, employees: 0, requests: 1}\ntracking: {enabled: false}\n")
    with experiment_lock(tmp_path / "runs", "locked"):
        proc = subprocess.run([*immune_cmd(), "run", str(experiment), "--out", str(tmp_path / "runs")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 75
    assert "another run of 'locked' is in progress" in proc.stderr and '"pid"' in proc.stderr


def test_fail_if_exits_3_and_bad_conditions_exit_2(tmp_path):
    experiment = tmp_path / "tiny.yaml"
    experiment.write_text("name: alarm\nattackers: {grunt: {count: 20, attempts: 2}}\nbenign: {customers: 4, vendors: 1, employees: 1, requests: 2}\ntracking: {enabled: false}\n")
    proc = subprocess.run([*immune_cmd(), "run", str(experiment), "--out", str(tmp_path / "runs"), "--fail-if", "breach_rate >= 0, utility > 2"], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 3 and "--fail-if: breach_rate >= 0" in proc.stderr
    assert "breach rate" in proc.stdout  # the summary is still printed
    bad = subprocess.run([*immune_cmd(), "run", str(experiment), "--fail-if", "breachrate > 0.1"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "unknown metric 'breachrate'" in bad.stderr
