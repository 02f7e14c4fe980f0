"""The driver's commit side: each unit of work is written once every worker has delivered it, then committed.

Units are committed in order. A unit's Parquet files are written, the tally
and the metric series are updated, the replicas' snapshots (when the unit
carries them) become the new checkpoint, and only then does the manifest
record the unit as committed — so the manifest on disk is always consistent
with the files next to it.
"""

from __future__ import annotations

import ctypes
import functools
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from kosmoi.metrics import Tally, summary_metrics
from kosmoi.schemas import SCHEMAS, TABLES
from results.store import RunWriter
from sim.manifest import Manifest
from sim.worker import WorkerSegment

ProgressCallback = Callable[[int, int], None]  # (episodes done so far, episodes planned)


def merge_parts(parts: list[WorkerSegment]) -> dict[str, pa.Table]:
    """One table per name from every worker's part of a unit."""
    merged = {}
    for name in TABLES:
        tables = [p.tables[name] for p in parts if p.tables[name].num_rows]
        merged[name] = pa.concat_tables(tables) if tables else SCHEMAS[name].empty_table()
    return merged


def checkpoint_dir(run_dir: Path, segment: int) -> Path:
    return run_dir / "checkpoints" / f"seg-{segment:05d}"


def write_checkpoint(run_dir: Path, segment: int, snapshots: dict[int, bytes]) -> None:
    """Write the replicas' snapshots atomically (a directory renamed into place); older checkpoints go."""
    directory = checkpoint_dir(run_dir, segment)
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for replica, blob in snapshots.items():
        path = tmp / f"replica-{replica:04d}.pkl"
        try:
            path.write_bytes(blob)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)  # the previous checkpoint stays the valid one
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
    if directory.exists():
        shutil.rmtree(directory)
    os.replace(tmp, directory)
    for old in (run_dir / "checkpoints").glob("seg-*"):
        if old != directory and not old.name.endswith(".tmp"):
            shutil.rmtree(old, ignore_errors=True)


def read_checkpoint(run_dir: Path, segment: int, replicas: int) -> dict[int, bytes]:
    directory = checkpoint_dir(run_dir, segment)
    return {r: (directory / f"replica-{r:04d}.pkl").read_bytes() for r in range(replicas)}


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        trim: Callable[[int], int] = ctypes.CDLL("libc.so.6").malloc_trim
        return trim
    except (OSError, AttributeError):
        return None  # not glibc


def release_freed_memory() -> None:
    """Give the OS back what a committed unit freed (Arrow's pool, glibc's heap), so long runs stay flat."""
    pa.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


class Committer:
    """Collects the workers' parts of each unit and commits complete units in order."""

    def __init__(
        self,
        run_dir: Path,
        manifest: Manifest,
        *,
        workers: int,
        replicas: int,
        segment_length: float,
        tally: Tally,
        series: list[tuple[float, dict[str, float]]],
        snapshots: dict[int, bytes],
        planned: int,
        progress: ProgressCallback | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.manifest = manifest
        self.workers = workers
        self.replicas = replicas
        self.segment_length = segment_length
        self.tally = tally
        self.series = series
        self.planned = planned
        self.progress = progress
        self.writer = RunWriter(run_dir)
        self.committed = set(manifest.committed)
        self.next_to_write = manifest.next_segment
        self.done_episodes = tally.attempts
        self.latest_snapshots: dict[int, bytes] = dict(snapshots)
        self.latest_snapshot_segment = manifest.checkpoint
        self._received: dict[int, dict[int, WorkerSegment]] = {}

    def report_progress(self) -> None:
        if self.progress:
            self.progress(self.done_episodes, self.planned)

    @property
    def resume_unit(self) -> int:
        """The unit a restarted worker continues from: the one after the latest checkpoint."""
        return self.latest_snapshot_segment + 1 if self.latest_snapshot_segment is not None else 0

    @property
    def complete(self) -> bool:
        return len(self.committed) >= self.manifest.segments

    def receive(self, worker: int, unit: int, part: WorkerSegment) -> None:
        """One worker's part of one unit (a unit committed before a resume is not written twice)."""
        if unit not in self.committed:
            self._received.setdefault(unit, {})[worker] = part

    def forget_worker(self, worker: int) -> None:
        """Drop what a worker that died delivered for uncommitted units: it re-simulates them."""
        for parts in self._received.values():
            parts.pop(worker, None)

    def commit_ready(self) -> None:
        """Commit every unit, in order, that all workers have delivered."""
        while self.next_to_write in self._received and len(self._received[self.next_to_write]) == self.workers:
            self._commit(self.next_to_write, list(self._received.pop(self.next_to_write).values()))
            self.next_to_write += 1
            self.report_progress()
        while self.next_to_write in self.committed:
            self.next_to_write += 1

    def _commit(self, unit: int, parts: list[WorkerSegment]) -> None:
        tables = merge_parts(parts)
        self.writer.write_segment(unit, tables)
        tally = self.tally
        tally.add_episodes(tables["episodes"])
        tally.add_warrants(tables["warrants"])
        tally.add_calls(tables["calls"])
        self.series.append(((unit + 1) * self.segment_length, summary_metrics(tally)))
        self.done_episodes = tally.attempts
        snapshots = {r: blob for p in parts for r, blob in p.snapshots.items()}
        if snapshots and len(snapshots) == self.replicas:
            write_checkpoint(self.run_dir, unit, snapshots)
            self.latest_snapshots, self.latest_snapshot_segment = snapshots, unit
            self.manifest.checkpoint = unit
        self.committed.add(unit)
        self.manifest.committed = sorted(self.committed)
        self.manifest.save(self.run_dir)
        del parts, tables
        release_freed_memory()

    def finish(self) -> None:
        self.writer.finish()
