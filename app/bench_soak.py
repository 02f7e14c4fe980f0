"""Soak benchmark: a long run with a fixed population, memory of every process sampled as episodes pile up.

The soak is the bench experiment's traffic kept up for longer: the same
arrival rate of attack campaigns and benign users, the same attempts each,
over an arrival window stretched to make the episodes asked for. Campaigns in
flight at any moment — what a replica must hold — stay the same, so memory
that rises with the episode count is state kept per episode or per finished
campaign: a leak. The driver, the Ray workers and Ray's own
processes (GCS, raylet, …) are sampled separately with psutil.

Memory is the *private* resident set (Linux ``RssAnon``): what the process
itself holds. Pages of Ray's shared-memory object store that a process has
touched also count in its RSS; they belong to the store (capped by
``object_store_memory``) and are reported apart, as ``object_store_mb`` (the
most any one process has mapped).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from sim.config import Experiment, load_experiment

BENCH_EXPERIMENT = Path(__file__).resolve().parent.parent / "experiments" / "bench.yaml"
MB = 2**20


@dataclass(frozen=True, slots=True)
class RssSample:
    """Private resident memory (MB) per kind of process at one moment."""

    seconds: float
    episodes: int
    driver_mb: float
    workers_mb: float  # all Ray worker processes together
    largest_worker_mb: float
    ray_system_mb: float  # GCS, raylet, dashboard, log monitor …
    object_store_mb: float  # shared object-store pages: the most mapped by any one process

    @property
    def total_mb(self) -> float:
        return self.driver_mb + self.workers_mb + self.ray_system_mb


def soak_experiment(episodes: int, base: Path = BENCH_EXPERIMENT) -> Experiment:
    """The bench experiment's traffic over a longer window: campaigns, users and arrival window scaled to ``episodes``."""
    exp = load_experiment(base)
    attacks, benign = exp.planned_episodes()
    factor = episodes / (attacks + benign)
    grunt = exp.attackers.grunt.model_copy(update={"count": max(1, round(exp.attackers.grunt.count * factor))})
    users = exp.benign.model_copy(update={"customers": max(1, round(exp.benign.customers * factor)), "employees": max(1, round(exp.benign.employees * factor))})
    simulation = exp.simulation.model_copy(update={"arrival_window_s": exp.simulation.arrival_window_s * factor})
    return exp.model_copy(update={"name": "soak", "simulation": simulation, "attackers": exp.attackers.model_copy(update={"grunt": grunt}), "benign": users})


def private_and_shared_mb(process: psutil.Process) -> tuple[float, float]:
    """(private resident MB, shared-memory resident MB); on systems without /proc, (RSS, 0)."""
    try:
        with open(f"/proc/{process.pid}/status", encoding="ascii", errors="replace") as status:
            fields = dict(line.split(":", 1) for line in status if line.startswith(("RssAnon", "RssShmem")))
        return int(fields["RssAnon"].split()[0]) / 1024, int(fields["RssShmem"].split()[0]) / 1024
    except (OSError, KeyError, ValueError):
        return process.memory_info().rss / MB, 0.0


def _is_ray_worker(process: psutil.Process) -> bool:
    try:
        cmdline = process.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    return bool(cmdline) and (cmdline[0].startswith("ray::") or any("default_worker.py" in part for part in cmdline))


class RssSampler:
    """Samples the RSS of this process and all its descendants on a background thread."""

    def __init__(self, interval_s: float = 1.0) -> None:
        self.interval_s = interval_s
        self.samples: list[RssSample] = []
        self.episodes = 0
        self._root = psutil.Process()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)
        self._started = 0.0

    def sample(self) -> RssSample:
        workers: list[float] = []
        system = 0.0
        driver, store = private_and_shared_mb(self._root)
        for child in self._root.children(recursive=True):
            try:
                private, shared = private_and_shared_mb(child)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            store = max(store, shared)
            if _is_ray_worker(child):
                workers.append(private)
            else:
                system += private
        sample = RssSample(time.perf_counter() - self._started, self.episodes, driver, sum(workers), max(workers, default=0.0), system, store)
        with self._lock:
            self.samples.append(sample)
        return sample

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def __enter__(self) -> RssSampler:
        self._started = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def at_fractions(samples: list[RssSample], planned: int, fractions: tuple[float, ...] = (0.1, 0.25, 0.5, 0.75, 1.0)) -> list[tuple[float, RssSample]]:
    """The first sample taken once each fraction of the planned episodes was done."""
    picked = []
    for fraction in fractions:
        reached = next((s for s in samples if s.episodes >= fraction * planned), None)
        if reached is not None:
            picked.append((fraction, reached))
    return picked


def growth_mb_per_million(samples: list[RssSample], planned: int, field: Callable[[RssSample], float]) -> float:
    """Memory growth between a quarter of the episodes and the end, per million episodes (0 = flat)."""
    marks = dict(at_fractions(samples, planned, (0.25, 1.0)))
    if 0.25 not in marks or 1.0 not in marks:
        return float("nan")
    start, end = marks[0.25], marks[1.0]
    done = end.episodes - start.episodes
    return (field(end) - field(start)) / done * 1e6 if done else float("nan")
