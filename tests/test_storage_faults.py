"""A full disk while a run writes: a clear error, nothing half-written, what was committed stays readable, --resume finishes."""

from __future__ import annotations

import contextlib
import os
import resource
import subprocess
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from kosmoi.schemas import SCHEMAS
from results.store import RunWriter
from tests.conftest import ROOT, immune_cmd
from tests.synthetic_runs import EPISODE_DEFAULTS


def _episodes(n: int, payload_bytes: int) -> pa.Table:
    rows = [{**EPISODE_DEFAULTS, "episode_id": f"e{i}", "run_id": "r", "campaign_id": f"c{i}", "kind": "attack", "identity": "att", "payload": os.urandom(payload_bytes // 2).hex()} for i in range(n)]
    return pa.Table.from_pylist(rows, schema=SCHEMAS["episodes"])


@contextlib.contextmanager
def _file_size_limit(limit: int):
    """RLIMIT_FSIZE: writing past ``limit`` bytes fails with EFBIG (Python ignores SIGXFSZ) — a real I/O error."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def test_a_failed_parquet_write_names_the_file_and_leaves_nothing_half_written(tmp_path):
    writer = RunWriter(tmp_path / "run")
    writer.write_segment(0, {"episodes": _episodes(50, 200)})
    with _file_size_limit(200_000), pytest.raises(OSError) as caught:
        writer.write_segment(1, {"episodes": _episodes(2000, 2000)})  # ~4 MB: cannot be written
    assert caught.value.filename.endswith("episodes/seg-00001.parquet")
    assert sorted(p.name for p in (tmp_path / "run" / "episodes").iterdir()) == ["seg-00000.parquet"]
    assert len(pd.read_parquet(tmp_path / "run" / "episodes")) == 50  # what was written before is intact


@pytest.fixture()
def small_disk(tmp_path):
    yield from _tmpfs(tmp_path / "disk", 1200 * 1024 + (ROOT / "targets" / "data" / "baseline_rules.json").stat().st_size)  # fills mid-run, after the rule set's copy


@pytest.fixture()
def tiny_disk(tmp_path):
    yield from _tmpfs(tmp_path / "tiny", 64 * 1024)  # too small for even the run's rule-set copy


def _tmpfs(mount_point: Path, size: int):
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size // 1024}k", "tmpfs", str(mount_point)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip()[:100]}); the RLIMIT_FSIZE test above covers the writer")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], capture_output=True)


@pytest.mark.slow
def test_a_run_on_a_full_disk_fails_clearly_and_resumes_once_there_is_space(small_disk, tmp_path):
    smoke = str(ROOT / "experiments" / "smoke.yaml")
    env = {**os.environ, "MLFLOW_TRACKING_URI": ""}
    full = subprocess.run([*immune_cmd(), "run", smoke, "--out", str(small_disk / "runs"), "--no-track"], capture_output=True, text=True, timeout=600, env=env)
    assert full.returncode == 74, full.stderr[-2000:]
    assert "No space left on device" in full.stderr and "immune run --resume" in full.stderr and "Traceback" not in full.stderr
    run_dir = next(p for p in (small_disk / "runs").iterdir() if not p.name.startswith("."))
    assert not [p for p in run_dir.rglob("*") if ".tmp" in p.name]
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    resumed = subprocess.run([*immune_cmd(), "run", "--resume", str(run_dir), "--no-track"], capture_output=True, text=True, timeout=600, env=env)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    reference = subprocess.run([*immune_cmd(), "run", smoke, "--out", str(tmp_path / "ref"), "--no-track"], capture_output=True, text=True, timeout=600, env=env)
    assert reference.returncode == 0
    ref_dir = next(p for p in (tmp_path / "ref").iterdir() if p.is_dir() and not p.name.startswith("."))

    def rows(path: Path) -> pd.DataFrame:
        return pd.read_parquet(path / "episodes").drop(columns=["run_id"]).sort_values("episode_id").reset_index(drop=True)

    pd.testing.assert_frame_equal(rows(run_dir), rows(ref_dir))


def test_a_disk_full_before_anything_is_committed_is_a_clear_error_and_leaves_no_run(tiny_disk):
    smoke = str(ROOT / "experiments" / "smoke.yaml")
    done = subprocess.run([*immune_cmd(), "run", smoke, "--out", str(tiny_disk / "runs"), "--no-track"], capture_output=True, text=True, timeout=600, env={**os.environ, "MLFLOW_TRACKING_URI": ""})
    assert done.returncode == 74, done.stderr[-2000:]
    assert "No space left on device" in done.stderr and "Nothing was committed" in done.stderr and "Traceback" not in done.stderr
    assert not [p for p in (tiny_disk / "runs").iterdir() if not p.name.startswith(".")]
