"""A simulation worker: hosts several staging replicas and advances them together.

Plain Python class; the runner wraps it as a Ray actor (``num_cpus=1``), one
per core. One remote call advances all of a worker's replicas by one unit of
work (many thousands of episodes), never one call per episode.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from kosmoi.schemas import SCHEMAS, TABLES
from sim.config import Experiment
from sim.generation import build_backends
from sim.plan import plan_run
from sim.replica import ReplicaSimulator
from targets.rules import parse_ruleset


@dataclass(slots=True)
class WorkerSegment:
    """One unit of work's results from one worker."""

    segment: int
    tables: dict[str, pa.Table]
    episodes: int
    seconds: float
    stage_seconds: dict[str, float] = field(default_factory=dict)


class SimulationWorker:
    """Advances a fixed set of replicas through simulated time."""

    def __init__(
        self,
        experiment: dict[str, Any],
        seed: int,
        run_id: str,
        ruleset_json: str,
        replicas: list[int],
        generation: int = 0,
        shared: dict[str, Any] | None = None,
    ) -> None:
        exp = Experiment.model_validate(experiment)
        ruleset = parse_ruleset(ruleset_json, "rule set from the driver")
        plans = plan_run(exp, seed)
        self.replicas = list(replicas)
        backends = build_backends(exp, shared or {}, run_id)
        self.sims = [ReplicaSimulator(exp, plans[r], seed, run_id, ruleset, generation, backends) for r in replicas]

    def ready(self) -> list[int]:
        """Round-trip used by the driver to wait for start-up."""
        return self.replicas

    def advance(self, segment: int, until: float) -> WorkerSegment:
        """Run every replica up to simulated time ``until``."""
        started = time.perf_counter()
        outputs = [sim.advance(until) for sim in self.sims]
        tables = {}
        for name in TABLES:
            parts = [getattr(out, name) for out in outputs]
            parts = [p for p in parts if p.num_rows]
            tables[name] = pa.concat_tables(parts) if parts else SCHEMAS[name].empty_table()
        stage_seconds: dict[str, float] = {}
        for out in outputs:
            for key, value in out.stage_seconds.items():
                stage_seconds[key] = stage_seconds.get(key, 0.0) + value
        return WorkerSegment(segment, tables, tables["episodes"].num_rows, time.perf_counter() - started, stage_seconds)
