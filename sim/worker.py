"""A simulation worker: hosts several staging replicas and advances them together.

Plain Python class; the runner wraps it as a Ray actor (``num_cpus=1``), one
per core. One remote call advances all of a worker's replicas by one unit of
work (thousands of episodes), never one call per episode. A worker can start
from snapshots of its replicas (resume, or recovery after a crash) and hands
out snapshots when asked.
"""

from __future__ import annotations

import os
import pickle
import time
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from attackers.archive import Archive
from kosmoi.redact import install_log_redaction, register_secret
from kosmoi.schemas import SCHEMAS, TABLES
from sim.config import Experiment
from sim.gateway import gateway_backends
from sim.generation import backend_keys
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
    snapshots: dict[int, bytes] = field(default_factory=dict)  # replica -> pickled state after this unit


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
        gateway: Any | None = None,
        snapshots: dict[int, bytes] | None = None,
        archive_json: str | None = None,
        secrets: dict[str, str] | None = None,
    ) -> None:
        """``secrets``: environment variables the targets read (endpoint headers, keys), from the driver."""
        install_log_redaction()  # worker logs go to Ray's log files and the driver's stderr
        for name, value in (secrets or {}).items():
            register_secret(value)
            os.environ[name] = value
        exp = Experiment.model_validate(experiment)
        ruleset = parse_ruleset(ruleset_json, "rule set from the driver")
        self.replicas = list(replicas)
        backends = gateway_backends(gateway, backend_keys(exp))
        archive = Archive.from_json(archive_json) if archive_json else None
        snapshots = snapshots or {}
        missing = [r for r in self.replicas if r not in snapshots]
        plans = {plan.replica: plan for plan in plan_run(exp, seed, missing)} if missing else {}
        self.sims: list[ReplicaSimulator] = []
        for replica in self.replicas:
            if replica in snapshots:
                sim: ReplicaSimulator = pickle.loads(snapshots[replica])
                sim.attach_backends(backends)
            else:
                sim = ReplicaSimulator(exp, plans[replica], seed, run_id, ruleset, generation, backends, archive)
            self.sims.append(sim)

    def ready(self) -> list[int]:
        """Round-trip used by the driver to wait for start-up."""
        return self.replicas

    def advance(self, segment: int, until: float, snapshot: bool = False) -> WorkerSegment:
        """Run every replica up to simulated time ``until``; optionally return snapshots of them."""
        started = time.perf_counter()
        outputs = [sim.advance(until) for sim in self.sims]
        tables = {}
        for name in TABLES:
            parts = [p for p in (getattr(out, name) for out in outputs) if p.num_rows]
            tables[name] = pa.concat_tables(parts) if parts else SCHEMAS[name].empty_table()
        stage_seconds: dict[str, float] = {}
        for out in outputs:
            for key, value in out.stage_seconds.items():
                stage_seconds[key] = stage_seconds.get(key, 0.0) + value
        snapshots = {}
        if snapshot:
            snap_started = time.perf_counter()
            snapshots = {replica: pickle.dumps(sim, protocol=pickle.HIGHEST_PROTOCOL) for replica, sim in zip(self.replicas, self.sims)}
            stage_seconds["snapshot"] = time.perf_counter() - snap_started
        return WorkerSegment(segment, tables, tables["episodes"].num_rows, time.perf_counter() - started, stage_seconds, snapshots)
