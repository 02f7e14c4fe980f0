"""Runs an experiment on Ray: plan, start workers, stream results, summarise, track.

Replicas (independent staging copies) are fixed by the experiment; workers
(Ray actors, one per core by default) only host them, so ``--workers`` never
changes the results. The driver pipelines one call per worker per unit of
work, writes each unit's Parquet files as soon as every worker has delivered
it, and folds the rows into the metric tally.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

from kosmoi.ids import new_run_id
from kosmoi.metrics import Tally, bypass_rates, summary_metrics
from kosmoi.schemas import SCHEMA_VERSIONS, SCHEMAS, TABLES
from sim.config import ConfigError, Experiment
from sim.generation import check_provider_keys, start_shared_actors
from sim.plan import plan_run, segment_count
from sim.results import RunWriter, write_json
from sim.tracking import flatten, log_run, resolve_tracking_uri
from sim.worker import SimulationWorker, WorkerSegment
from targets.rules import RuleSetError, load_ruleset

log = logging.getLogger(__name__)

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # a security tool does not phone home


@dataclass(slots=True)
class RunOptions:
    out: Path = Path("runs")
    seed: int | None = None
    workers: int | None = None
    address: str | None = None
    verbose: bool = False
    track: bool = True


@dataclass(slots=True)
class RunResult:
    run_id: str
    run_dir: Path
    summary: dict[str, Any]
    tally: Tally = field(repr=False, default_factory=Tally)


ProgressCallback = Callable[[int, int], None]  # (episodes done so far, episodes planned)


@contextlib.contextmanager
def ray_session(address: str | None, workers: int | None, verbose: bool) -> Iterator[Any]:
    """Connect to (or start) Ray quietly; shut down only what we started."""
    import ray

    if ray.is_initialized():
        yield ray
        return
    level = logging.INFO if verbose else logging.ERROR
    if address:
        ray.init(address=address, logging_level=level, log_to_driver=verbose)
    else:
        cpus = max(workers or 0, os.cpu_count() or 1)
        ray.init(num_cpus=cpus, logging_level=level, log_to_driver=verbose, include_dashboard=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def _cluster_cpus(ray: Any) -> int:
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def _merge(parts: list[WorkerSegment]) -> dict[str, pa.Table]:
    merged = {}
    for name in TABLES:
        tables = [p.tables[name] for p in parts if p.tables[name].num_rows]
        merged[name] = pa.concat_tables(tables) if tables else SCHEMAS[name].empty_table()
    return merged


def run_experiment(exp: Experiment, options: RunOptions, progress: ProgressCallback | None = None) -> RunResult:
    """Run one experiment end to end and return its summary."""
    seed = exp.seed if options.seed is None else options.seed
    if seed < 0:
        raise ConfigError(f"--seed: must be >= 0, got {seed}")
    try:
        ruleset = load_ruleset(exp.targets.rules)
    except RuleSetError as exc:
        raise ConfigError(f"targets.rules: {exc}") from None
    exp = exp.model_copy(update={"seed": seed})
    check_provider_keys(exp)
    run_id = new_run_id()
    out = options.out
    run_dir = out / run_id
    run_dir.mkdir(parents=True, exist_ok=False)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(exp.model_dump(mode="json"), sort_keys=False), "utf-8")
    plans = plan_run(exp, seed)
    n_segments = segment_count(plans, exp)
    segment_length = exp.simulation.window_s * exp.simulation.segment_windows
    planned = sum(p.episodes for p in plans)
    writer = RunWriter(run_dir)
    tally = Tally()
    segment_seconds: list[float] = []
    started_total = time.perf_counter()

    with ray_session(options.address, options.workers, options.verbose) as ray:
        available = _cluster_cpus(ray)
        workers = options.workers or (available if options.address else min(available, os.cpu_count() or 1))
        workers = max(1, min(workers, len(plans)))
        assignment = [[r for r in range(len(plans)) if r % workers == w] for w in range(workers)]
        actor_cls = ray.remote(num_cpus=1)(SimulationWorker)
        config = exp.model_dump(mode="json")
        shared = start_shared_actors(ray, exp)
        actors = [actor_cls.remote(config, seed, run_id, ruleset.to_json(), replicas, 0, shared) for replicas in assignment]
        ray.get([a.ready.remote() for a in actors])
        startup_s = time.perf_counter() - started_total
        log.info("run %s: %d replicas on %d workers, %d units of work, %d episodes planned", run_id, len(plans), workers, n_segments, planned)

        sim_started = time.perf_counter()
        inflight: dict[Any, tuple[int, int]] = {}
        received: dict[int, list[WorkerSegment]] = {}
        for w, actor in enumerate(actors):
            inflight[actor.advance.remote(0, segment_length)] = (w, 0)
        next_to_write = 0
        done_episodes = 0
        while inflight:
            ready, _ = ray.wait(list(inflight), num_returns=1)
            w, k = inflight.pop(ready[0])
            part: WorkerSegment = ray.get(ready[0])
            received.setdefault(k, []).append(part)
            done_episodes += part.episodes
            if progress:
                progress(done_episodes, planned)
            if k + 1 < n_segments:
                inflight[actors[w].advance.remote(k + 1, (k + 2) * segment_length)] = (w, k + 1)
            while next_to_write in received and len(received[next_to_write]) == workers:
                parts = received.pop(next_to_write)
                tables = _merge(parts)
                writer.write_segment(next_to_write, tables)
                tally.add_episodes(tables["episodes"])
                tally.add_warrants(tables["warrants"])
                tally.add_calls(tables["calls"])
                segment_seconds.append(max(p.seconds for p in parts))
                next_to_write += 1
        duration_s = time.perf_counter() - sim_started
    writer.finish()

    metrics = summary_metrics(tally)
    summary: dict[str, Any] = {
        "run_id": run_id,
        "experiment": exp.name,
        "episodes": tally.episodes,
        "attack_episodes": tally.attack_episodes,
        "benign_episodes": tally.benign_episodes,
        "breach_rate": metrics["breach_rate"],
        "false_positive_rate": metrics["false_positive_rate"],
        "utility": metrics["utility"],
        "false_warrant_rate": metrics["false_warrant_rate"],
        "blocked_by_stage": dict(sorted(tally.attack_blocked_by_stage.items())),
        "benign_blocked_by_stage": dict(sorted(tally.benign_blocked_by_stage.items())),
        "bypass_rate_by_stage": bypass_rates(tally),
        "breaches": tally.breached,
        "damage_usd": tally.damage_usd,
        "secrets_leaked": tally.secrets_leaked,
        "records_exfiltrated": tally.records_exfiltrated,
        "cost_usd": tally.cost_usd,
        "model_calls": dict(sorted(tally.model_calls.items())),
        "model_cost_usd": round(tally.model_cost_usd, 6),
        "warrants": tally.warrants,
        "duration_s": round(duration_s, 3),
        "startup_s": round(startup_s, 3),
        "episodes_per_s": round(tally.episodes / duration_s, 1) if duration_s > 0 else 0.0,
        "workers": workers,
        "replicas": len(plans),
        "seed": seed,
        "config_hash": exp.config_hash(),
        "rules": {"ref": exp.targets.rules, "name": ruleset.name, "version": ruleset.version, "hash": ruleset.hash},
        "schema_versions": SCHEMA_VERSIONS,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "mlflow_tracking_uri": None,
        "mlflow_run_id": None,
    }
    if tally.episodes != planned:
        raise RuntimeError(f"run {run_id} produced {tally.episodes} episodes, {planned} were planned")
    if options.track and exp.tracking.enabled:
        tracking_uri, artifact_location = resolve_tracking_uri(out)
        summary["mlflow_tracking_uri"] = tracking_uri

        def artifacts(mlflow_run_id: str) -> list[Path]:
            summary["mlflow_run_id"] = mlflow_run_id
            write_json(run_dir / "summary.json", summary)
            return [run_dir / "summary.json", run_dir / "config.yaml"]

        params = flatten(exp.model_dump(mode="json", exclude={"description"}))
        params.update({"workers": str(workers), "replicas": str(len(plans)), "config_hash": exp.config_hash(), "rules.hash": str(ruleset.hash)})
        summary["mlflow_run_id"] = log_run(
            tracking_uri=tracking_uri,
            artifact_location=artifact_location,
            experiment_name=exp.tracking.experiment,
            run_name=run_id,
            params=params,
            metrics={**metrics, "episodes": float(tally.episodes), "episodes_per_s": summary["episodes_per_s"], "duration_s": duration_s},
            tags={"kosmoi.run_id": run_id, "kosmoi.experiment": exp.name, "kosmoi.run_dir": str(run_dir.resolve())},
            artifacts=artifacts,
        )
    write_json(run_dir / "summary.json", summary)
    return RunResult(run_id, run_dir, summary, tally)
