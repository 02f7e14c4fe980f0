"""Runs an experiment on Ray: plan, start workers, stream results, commit, summarise, track.

Replicas (independent staging copies) are fixed by the experiment; workers
(Ray actors, one per core by default) only host them, so ``--workers`` never
changes the results. The driver keeps one call in flight per worker and unit
of work, writes a unit's Parquet files as soon as every worker has delivered
it, then commits the unit in the manifest. Every ``checkpoint_every`` units
the workers also return snapshots of their replicas, written next to the
results, so that

- ``immune run --resume RUN_DIR`` continues from the latest snapshot after a
  crash, ``kill -9`` or Ctrl-C, re-simulates what was not committed, and ends
  with exactly the rows of an uninterrupted run;
- a worker that dies mid-run is restarted from the same snapshot (at most
  three times) while the others carry on;
- a first Ctrl-C stops handing out work, lets in-flight units finish, commits
  them and marks the run interrupted; a second one exits at once (the
  manifest on disk is always consistent).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import platform
import shutil
import signal
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

from kosmoi.ids import new_run_id
from kosmoi.metrics import Tally, bypass_rates, conversation_metrics, summary_metrics
from kosmoi.redact import redact
from kosmoi.schemas import SCHEMA_VERSIONS, SCHEMAS
from results.store import write_json
from sim.commit import Committer, ProgressCallback, read_checkpoint
from sim.config import ConfigError, Experiment, load_experiment
from sim.dispatch import WorkerPool
from sim.environment import apply_defaults, referenced_secrets
from sim.gateway import start_gateway
from sim.generation import check_provider_keys, start_shared_actors
from sim.locks import experiment_lock
from sim.manifest import Manifest, Status
from sim.plan import PlanSummary, segment_count, summarize_plan
from sim.tracking import flatten, log_run, resolve_tracking_uri
from sim.worker import SimulationWorker
from targets.rules import RuleSet, RuleSetError, load_ruleset, parse_ruleset

log = logging.getLogger(__name__)

# Numeric summary keys (what --fail-if may test).
SUMMARY_METRICS = (
    "episodes", "attack_episodes", "benign_episodes", "breach_rate", "false_positive_rate", "utility", "false_warrant_rate",
    "breaches", "damage_usd", "secrets_leaked", "records_exfiltrated", "cost_usd", "model_cost_usd", "warrants",
    "duration_s", "episodes_per_s",
)


@dataclass(slots=True)
class RunOptions:
    out: Path = Path("runs")
    seed: int | None = None
    workers: int | None = None
    address: str | None = None
    verbose: bool = False
    track: bool = True
    lock: bool = True
    handle_signals: bool = False  # the CLI turns Ctrl-C into a graceful stop


@dataclass(slots=True)
class RunResult:
    run_id: str
    run_dir: Path
    summary: dict[str, Any]
    status: str = "complete"
    tally: Tally = field(repr=False, default_factory=Tally)




@contextlib.contextmanager
def ray_session(address: str | None, workers: int | None, verbose: bool) -> Iterator[Any]:
    """Connect to (or start) Ray quietly; shut down only what we started."""
    apply_defaults()
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


class _Interrupt:
    """First Ctrl-C: stop gracefully. Second: exit at once."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> _Interrupt:
        if self.enabled:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        log.warning("stopping: finishing the units of work in flight (Ctrl-C again to exit at once)")

    def __exit__(self, *exc: object) -> None:
        if self.enabled and self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


@dataclass
class _Run:
    """Everything about one run that the loop needs."""

    exp: Experiment
    seed: int
    run_id: str
    run_dir: Path
    ruleset: RuleSet
    plan: PlanSummary
    manifest: Manifest
    tracking_extra: dict[str, Any] = field(default_factory=dict)

    @property
    def segment_length(self) -> float:
        """Simulated seconds per unit of work."""
        return self.exp.simulation.window_s * self.exp.simulation.segment_windows

    @property
    def planned(self) -> int:
        return self.plan.episodes

    @property
    def archive_json(self) -> str | None:
        path = self.run_dir / "archive.json"
        return path.read_text("utf-8") if path.exists() else None


def _prepare_new(exp: Experiment, options: RunOptions, ruleset: RuleSet | None, generation: int, archive_json: str | None) -> _Run:
    seed = exp.seed if options.seed is None else options.seed
    if seed < 0:
        raise ConfigError(f"--seed: must be >= 0, got {seed}")
    if ruleset is None:
        try:
            ruleset = load_ruleset(exp.targets.rules)
        except RuleSetError as exc:
            raise ConfigError(f"targets.rules: {exc}") from None
    exp = exp.model_copy(update={"seed": seed})
    check_provider_keys(exp)
    run_id = new_run_id()
    run_dir = options.out / run_id
    run_dir.mkdir(parents=True, exist_ok=False)
    plan = summarize_plan(exp, seed)
    manifest = Manifest(run_id=run_id, experiment=exp.name, seed=seed, config_hash=exp.config_hash(), generation=generation, segments=segment_count(plan, exp))
    try:
        (run_dir / "config.yaml").write_text(yaml.safe_dump(exp.model_dump(mode="json"), sort_keys=False), "utf-8")
        (run_dir / "ruleset.json").write_text(ruleset.to_json(), "utf-8")  # the exact rules, for provenance and resume
        if archive_json:
            (run_dir / "archive.json").write_text(archive_json, "utf-8")  # the attackers' inherited recipes (evolution)
        manifest.save(run_dir)
    except OSError as exc:
        if exc.errno not in STORAGE_ERRNOS:
            raise
        shutil.rmtree(run_dir, ignore_errors=True)  # nothing was committed: leave no half-made run behind
        raise RunStorageError(f"cannot write {exc.filename or run_dir}: {exc.strerror or os.strerror(exc.errno or 0)}. Nothing was committed; free space and run again.") from exc
    return _Run(exp, seed, run_id, run_dir, ruleset, plan, manifest)


def _read_run_inputs(run_dir: Path) -> tuple[Experiment, RuleSet]:
    """The experiment and the exact rule set a run directory was started with."""
    exp = load_experiment(run_dir / "config.yaml")
    try:
        ruleset = parse_ruleset((run_dir / "ruleset.json").read_text("utf-8"), str(run_dir / "ruleset.json"))
    except (OSError, RuleSetError) as exc:
        raise ConfigError(f"{run_dir}: cannot read the run's rule set ({exc})") from None
    return exp, ruleset


def _prepare_resume(run_dir: Path) -> _Run:
    if not (run_dir / "manifest.json").exists():
        raise ConfigError(f"{run_dir}: not a run directory (no manifest.json)")
    manifest = Manifest.load(run_dir)
    if manifest.status == "complete":
        raise ConfigError(f"{run_dir}: run {manifest.run_id} is already complete")
    exp, ruleset = _read_run_inputs(run_dir)
    if exp.config_hash() != manifest.config_hash:
        raise ConfigError(f"{run_dir}: config.yaml does not match the manifest (edited after the run started?)")
    check_provider_keys(exp)
    plan = summarize_plan(exp, manifest.seed)
    manifest.resumes += 1
    manifest.status = "running"
    return _Run(exp, manifest.seed, manifest.run_id, run_dir, ruleset, plan, manifest)


def run_experiment(
    exp: Experiment,
    options: RunOptions,
    progress: ProgressCallback | None = None,
    *,
    ruleset: RuleSet | None = None,
    generation: int = 0,
    archive_json: str | None = None,
    tracking_extra: dict[str, Any] | None = None,
) -> RunResult:
    """Run one experiment end to end and return its summary.

    The evolution loop passes the generation's rule set (instead of
    ``targets.rules``), its number, the attackers' archive of inherited
    recipes and extra MLflow params/tags.
    """
    referenced_secrets(exp)  # an unset variable the targets read is an error now, before a run directory exists
    run = _prepare_new(exp, options, ruleset, generation, archive_json)
    run.tracking_extra = tracking_extra or {}
    return _execute(run, options, progress)


def resume_run(run_dir: Path, options: RunOptions, progress: ProgressCallback | None = None) -> RunResult:
    """Finish an interrupted or crashed run in place."""
    return _execute(_prepare_resume(run_dir), options, progress)


def sync_run(run_dir: Path, *, force: bool = False) -> dict[str, Any]:
    """Log a finished run to MLflow after the fact (its tracking server was down, or it ran with --no-track).

    Everything comes from the run directory — config, rule set, summary and the per-unit metric
    series rebuilt from the Parquet files — so the MLflow run is the one the run would have logged.
    Returns the updated summary; raises ConfigError when there is nothing (or nothing yet) to sync.
    """
    if not (run_dir / "manifest.json").exists() or not (run_dir / "summary.json").exists():
        raise ConfigError(f"{run_dir}: not a finished run directory (needs manifest.json and summary.json)")
    manifest = Manifest.load(run_dir)
    if manifest.status != "complete":
        raise ConfigError(f"{run_dir}: run {manifest.run_id} is {manifest.status}; finish it first (immune run --resume {run_dir})")
    summary = json.loads((run_dir / "summary.json").read_text("utf-8"))
    if summary.get("mlflow_run_id") and not force:
        raise ConfigError(f"{run_dir}: already tracked as MLflow run {summary['mlflow_run_id']} at {summary.get('mlflow_tracking_uri')} (--force logs it again)")
    exp, ruleset = _read_run_inputs(run_dir)
    run = _Run(exp, manifest.seed, manifest.run_id, run_dir, ruleset, PlanSummary(exp.simulation.replicas, 0, 0.0), manifest)  # no re-planning: the Parquet files say what ran
    evolution = run_dir.parent.parent
    if run_dir.parent.name == "runs" and (evolution / "state.json").exists():  # a generation of an evolution
        run.tracking_extra = {"params": {"evolution": evolution.name}, "tags": {"kosmoi.evolution": evolution.name}, "tracking_root": evolution.parent}
    tally, series = _rebuild_tally(run)
    before = dict(summary)
    summary["mlflow_run_id"] = None
    _track(run, summary, tally, series, RunOptions(out=run_dir.parent))
    if summary["mlflow_run_id"] is None:  # failed again: the summary on disk keeps what it had
        write_json(run_dir / "summary.json", before)
        return {**before, "mlflow_run_id": None, "mlflow_tracking_uri": summary.get("mlflow_tracking_uri")}
    write_json(run_dir / "summary.json", summary)
    return summary


def _rebuild_tally(run: _Run) -> tuple[Tally, list[tuple[float, dict[str, float]]]]:
    """The tally and metric series of the committed units (resume)."""
    tally, series = Tally(), []
    for segment in sorted(run.manifest.committed):
        name = f"seg-{segment:05d}.parquet"
        for table, add in (("episodes", tally.add_episodes), ("warrants", tally.add_warrants), ("calls", tally.add_calls)):
            path = run.run_dir / table / name
            if path.exists():
                add(_read_file(path, table))
        series.append(((segment + 1) * run.segment_length, summary_metrics(tally)))
    return tally, series


def _read_file(path: Path, table: str) -> pa.Table:
    import pyarrow.parquet as pq

    return pq.read_table(path, schema=SCHEMAS[table])


STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})


class RunStorageError(RuntimeError):
    """The run's directory could not be written (disk full, quota, read-only); what was committed is intact."""


def _execute(run: _Run, options: RunOptions, progress: ProgressCallback | None) -> RunResult:
    exp, manifest = run.exp, run.manifest
    lock = experiment_lock(options.out if not manifest.resumes else run.run_dir.parent, exp.name) if options.lock else contextlib.nullcontext()
    with lock:
        try:
            return _simulate(run, options, progress)
        except OSError as exc:
            if exc.errno not in STORAGE_ERRNOS:
                raise
            try:
                committed = len(Manifest.load(run.run_dir).committed)
            except (OSError, ValueError):
                committed = 0
            where = exc.filename or run.run_dir
            raise RunStorageError(
                f"cannot write {where}: {exc.strerror or os.strerror(exc.errno or 0)}. {committed} of {manifest.segments} units of work are "
                f"committed and readable in {run.run_dir}; free space, then continue with: immune run --resume {run.run_dir}"
            ) from exc


def _simulate(run: _Run, options: RunOptions, progress: ProgressCallback | None) -> RunResult:
    exp, manifest, run_dir = run.exp, run.manifest, run.run_dir
    tally, series = _rebuild_tally(run) if manifest.committed else (Tally(), [])
    start = manifest.checkpoint + 1 if manifest.checkpoint is not None else 0
    stage_seconds: dict[str, float] = {}
    started_total = time.perf_counter()
    status: Status = "complete"

    with ray_session(options.address, options.workers, options.verbose) as ray, _Interrupt(options.handle_signals) as interrupt:
        available = max(1, int(ray.cluster_resources().get("CPU", 1)))
        n_workers = options.workers or (available if options.address else min(available, os.cpu_count() or 1))
        n_workers = max(1, min(n_workers, run.plan.replicas))
        shared = start_shared_actors(ray, exp)
        gateway = start_gateway(ray, exp, shared, run.run_id)
        actor_cls = ray.remote(num_cpus=1)(SimulationWorker)
        config = exp.model_dump(mode="json")
        secrets = referenced_secrets(exp)
        ruleset_json = run.ruleset.to_json()
        snapshots = read_checkpoint(run_dir, manifest.checkpoint, run.plan.replicas) if manifest.checkpoint is not None else {}
        archive_json = run.archive_json

        def spawn(replicas: list[int], from_snapshots: dict[int, bytes]) -> Any:
            snapshots_here = {r: from_snapshots[r] for r in replicas if r in from_snapshots}
            return actor_cls.remote(config, run.seed, run.run_id, ruleset_json, replicas, manifest.generation, gateway, snapshots_here, archive_json, secrets)

        committer = Committer(
            run_dir, manifest, workers=n_workers, replicas=run.plan.replicas, segment_length=run.segment_length,
            tally=tally, series=series, snapshots=snapshots, planned=run.planned, progress=progress,
        )  # fmt: skip
        groups = [[r for r in range(run.plan.replicas) if r % n_workers == w] for w in range(n_workers)]
        pool = WorkerPool(
            ray, spawn, groups, start=start, segments=manifest.segments, segment_length=run.segment_length,
            checkpoint_every=exp.simulation.checkpoint_every, committer=committer, stop_requested=lambda: interrupt.requested,
        )  # fmt: skip
        pool.ready()
        startup_s = time.perf_counter() - started_total
        log.info("run %s: %d replicas on %d workers, units %d..%d of %d", run.run_id, run.plan.replicas, n_workers, start, manifest.segments - 1, manifest.segments)
        committer.report_progress()
        sim_started = time.perf_counter()
        pool.submit_all()
        while pool.busy:
            result = pool.next_result()
            if result is None:
                continue
            index, unit, part = result
            committer.receive(index, unit, part)
            for stage, seconds in part.stage_seconds.items():
                stage_seconds[stage] = stage_seconds.get(stage, 0.0) + seconds
            committer.commit_ready()
            pool.release_parked()
        duration_s = time.perf_counter() - sim_started
        if interrupt.requested and not committer.complete:
            status = "interrupted"

    committer.finish()
    manifest.status = status
    if status == "complete":
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
        manifest.checkpoint = None
    manifest.save(run_dir)
    summary = _summary(run, tally, duration_s, startup_s, n_workers, stage_seconds, status)
    if status == "complete":
        summary.update(_run_statistics(run_dir))
    if status == "complete" and tally.attempts != run.planned:
        raise RuntimeError(f"run {run.run_id} produced {tally.attempts} attempts, {run.planned} were planned")
    if status == "complete" and options.track and exp.tracking.enabled:
        _track(run, summary, tally, series, options)
        if summary.get("mlflow_run_id") is None:
            log.warning("log the run to MLflow later with: immune sync %s", run_dir)
    write_json(run_dir / "summary.json", summary)
    return RunResult(run.run_id, run_dir, summary, status, tally)


def _summary(run: _Run, tally: Tally, duration_s: float, startup_s: float, workers: int, stage_seconds: dict[str, float], status: str) -> dict[str, Any]:
    metrics = summary_metrics(tally)
    simulated = {k: v for k, v in stage_seconds.items() if k not in ("simulate", "snapshot")}
    return {
        "run_id": run.run_id,
        "experiment": run.exp.name,
        "status": status,
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
        "episodes_per_s": round(tally.episodes / duration_s, 1) if duration_s > 0 and not run.manifest.resumes else None,
        "stage_seconds": {k: round(v, 3) for k, v in sorted(simulated.items())},
        "snapshot_seconds": round(stage_seconds.get("snapshot", 0.0), 3),
        "workers": workers,
        "replicas": run.plan.replicas,
        "segments": run.manifest.segments,
        "resumes": run.manifest.resumes,
        "worker_restarts": run.manifest.worker_restarts,
        "seed": run.seed,
        "config_hash": run.exp.config_hash(),
        "rules": {"ref": run.exp.targets.rules, "name": run.ruleset.name, "version": run.ruleset.version, "hash": run.ruleset.hash},
        "schema_versions": SCHEMA_VERSIONS,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "mlflow_tracking_uri": None,
        "mlflow_run_id": None,
        **({"conversations": conversation_metrics(tally)} if tally.conversations else {}),
    }


def _run_statistics(run_dir: Path) -> dict[str, Any]:
    """Read back from the files just written: the headline rates' 95 % cluster-bootstrap ``intervals``
    (results.analysis) and the OWASP LLM 2025 / MITRE ATLAS ``coverage`` matrix (results.coverage)."""
    from results.analysis import rates
    from results.coverage import coverage_summary
    from results.store import load_runs

    runs = load_runs(run_dir)
    row = rates(runs).iloc[0]
    intervals: dict[str, Any] = {"method": "cluster bootstrap, 95 % (campaigns / benign identities; Wilson at 0 or 100 %)"}
    for name in ("breach_rate", "false_positive_rate", "utility"):
        intervals[name] = [round(float(row[f"{name}_low"]), 6), round(float(row[f"{name}_high"]), 6)]
    return {"intervals": intervals, "coverage": coverage_summary(runs)}


def coverage_metrics(summary: Mapping[str, Any]) -> dict[str, float]:
    """MLflow metrics of the coverage matrix: per attacked OWASP category and ATLAS technique, attacks, breach rate, damage."""
    out: dict[str, float] = {}
    for group in ("owasp", "atlas"):
        for tag, row in summary.get("coverage", {}).get(group, {}).items():
            if row["attacks"]:
                out.update({f"{group}.{tag}.attacks": float(row["attacks"]), f"{group}.{tag}.breach_rate": float(row["breach_rate"])})
                if "damage_usd" in row:
                    out[f"{group}.{tag}.damage_usd"] = float(row["damage_usd"])
                if row.get("harmed_sessions"):  # knowledge poisoning: harm in other customers' sessions
                    out[f"{group}.{tag}.harmed_sessions"] = float(row["harmed_sessions"])
                    out[f"{group}.{tag}.harm_usd"] = float(row["harm_usd"])
    return out


def _track(run: _Run, summary: dict[str, Any], tally: Tally, series: list[tuple[float, dict[str, float]]], options: RunOptions) -> None:
    tracking_uri, artifact_location = resolve_tracking_uri(run.tracking_extra.get("tracking_root") or (options.out if not run.manifest.resumes else run.run_dir.parent))
    summary["mlflow_tracking_uri"] = redact(tracking_uri)  # a URI may carry user:password

    def artifacts(mlflow_run_id: str) -> list[Path]:
        summary["mlflow_run_id"] = mlflow_run_id
        write_json(run.run_dir / "summary.json", summary)
        return [run.run_dir / "summary.json", run.run_dir / "config.yaml", run.run_dir / "ruleset.json"]

    params = flatten(run.exp.model_dump(mode="json", exclude={"description"}))
    params.update({"workers": str(summary["workers"]), "replicas": str(run.plan.replicas), "config_hash": run.exp.config_hash(), "rules.hash": str(run.ruleset.hash)})
    params.update({"generation": str(run.manifest.generation), "rules.version": run.ruleset.version})
    params.update({k: str(v) for k, v in run.tracking_extra.get("params", {}).items()})
    metrics = {**summary_metrics(tally), "episodes": float(tally.episodes), "duration_s": float(summary["duration_s"])}
    for name, (low, high) in ((k, v) for k, v in summary.get("intervals", {}).items() if k != "method"):
        metrics[f"{name}_ci_low"], metrics[f"{name}_ci_high"] = float(low), float(high)
    if summary["episodes_per_s"] is not None:
        metrics["episodes_per_s"] = float(summary["episodes_per_s"])
    metrics.update(coverage_metrics(summary))
    steps = [(f"sim.{name}", value, int(sim_time)) for sim_time, values in series for name, value in values.items() if name in ("breach_rate", "false_positive_rate", "damage_usd", "cost_usd", "warrants")]
    summary["mlflow_run_id"] = log_run(
        tracking_uri=tracking_uri,
        artifact_location=artifact_location,
        experiment_name=run.exp.tracking.experiment,
        run_name=run.run_id,
        params=params,
        metrics=metrics,
        tags={
            "kosmoi.run_id": run.run_id, "kosmoi.experiment": run.exp.name, "kosmoi.run_dir": str(run.run_dir.resolve()),
            "kosmoi.owasp.not_exercised": ",".join(summary.get("coverage", {}).get("not_exercised", [])), **run.tracking_extra.get("tags", {}),
        },
        artifacts=artifacts,
        metric_steps=steps,
    )
