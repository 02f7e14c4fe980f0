"""The driver's dispatch side: one call in flight per worker, bounded run-ahead, and recovery of dead workers.

Each worker (a Ray actor hosting a fixed set of replicas) is handed its next
unit of work as soon as it returns the previous one, unless it is more than
:data:`MAX_UNITS_AHEAD` units ahead of the oldest uncommitted unit (then it
is parked until the slowest worker catches up, which bounds the driver's
memory). A worker that dies is restarted from the latest checkpoint, at most
:data:`MAX_WORKER_RESTARTS` times, while the others carry on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sim.commit import Committer
from sim.worker import WorkerSegment

log = logging.getLogger(__name__)

MAX_WORKER_RESTARTS = 3
MAX_UNITS_AHEAD = 2  # how far a fast worker may run ahead of the oldest uncommitted unit (bounds the driver's memory)

Spawn = Callable[[list[int], dict[int, bytes]], Any]  # (replicas, snapshots) -> a ready-to-call worker actor


@dataclass
class _Worker:
    replicas: list[int]
    actor: Any
    next_segment: int
    restarts: int = 0


class WorkerPool:
    """Hands out units of work to the workers and returns what comes back, restarting workers that die."""

    def __init__(
        self,
        ray: Any,
        spawn: Spawn,
        groups: list[list[int]],
        *,
        start: int,
        segments: int,
        segment_length: float,
        checkpoint_every: int,
        committer: Committer,
        stop_requested: Callable[[], bool],
    ) -> None:
        self.ray = ray
        self.spawn = spawn
        self.segments = segments
        self.segment_length = segment_length
        self.checkpoint_every = checkpoint_every
        self.committer = committer
        self.stop_requested = stop_requested
        self.workers = [_Worker(replicas, spawn(replicas, committer.latest_snapshots), start) for replicas in groups]
        self._inflight: dict[Any, tuple[int, int]] = {}
        self._parked: set[int] = set()  # workers waiting for the slowest one to catch up

    def ready(self) -> None:
        """Wait until every worker has built its replicas."""
        self.ray.get([w.actor.ready.remote() for w in self.workers])

    @property
    def busy(self) -> bool:
        return bool(self._inflight)

    def submit_all(self) -> None:
        for index in range(len(self.workers)):
            self._submit(index)

    def _submit(self, index: int) -> None:
        worker = self.workers[index]
        unit = worker.next_segment
        if unit >= self.segments or self.stop_requested():
            return
        if unit > self.committer.next_to_write + MAX_UNITS_AHEAD:
            self._parked.add(index)  # its results would only pile up in this process until the slowest worker delivers
            return
        worker.next_segment += 1
        every = self.checkpoint_every
        snapshot = every > 0 and (unit + 1) % every == 0 and unit + 1 < self.segments
        self._inflight[worker.actor.advance.remote(unit, (unit + 1) * self.segment_length, snapshot)] = (index, unit)

    def next_result(self, timeout_s: float = 0.5) -> tuple[int, int, WorkerSegment] | None:
        """``(worker, unit, part)`` of the next call to finish, or None (nothing yet, or a worker died and was restarted)."""
        from ray.exceptions import RayActorError

        ready, _ = self.ray.wait(list(self._inflight), num_returns=1, timeout=timeout_s)
        if not ready:
            return None
        index, unit = self._inflight.pop(ready[0])
        try:
            part: WorkerSegment = self.ray.get(ready[0])
        except RayActorError as exc:
            self._recover(index, exc)
            return None
        self._submit(index)
        return index, unit, part

    def release_parked(self) -> None:
        """Hand work to the workers that were waiting for the slowest one."""
        for index in sorted(self._parked):
            self._parked.discard(index)
            self._submit(index)

    def _recover(self, index: int, exc: BaseException) -> None:
        worker = self.workers[index]
        worker.restarts += 1
        self.committer.manifest.worker_restarts += 1
        if worker.restarts > MAX_WORKER_RESTARTS:
            raise RuntimeError(f"worker for replicas {worker.replicas} died {worker.restarts} times; last error: {exc}") from None
        resume_from = self.committer.resume_unit
        log.warning("a worker (replicas %s) died; restarting it from unit %d", worker.replicas, resume_from)
        for ref, (i, _unit) in list(self._inflight.items()):
            if i == index:
                del self._inflight[ref]
        self.committer.forget_worker(index)
        worker.actor = self.spawn(worker.replicas, self.committer.latest_snapshots)
        worker.next_segment = resume_from
        self._submit(index)
