"""MLflow tracking of runs.

Tracking URI: ``MLFLOW_TRACKING_URI`` if set, else the embedded default
``sqlite:///<out>/mlflow.db`` with artifacts in ``<out>/mlartifacts``.
A tracking server that cannot be reached never loses a run: the local
results stay complete and the caller gets ``None`` plus a warning.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from sim.environment import apply_defaults

log = logging.getLogger(__name__)



def resolve_tracking_uri(out_dir: Path) -> tuple[str, str | None]:
    """``(tracking_uri, artifact_location)``; the location is only set for the embedded default."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env, None
    out = out_dir.resolve()
    return f"sqlite:///{out / 'mlflow.db'}", (out / "mlartifacts").as_uri()


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": "1"}`` (lists joined by commas)."""
    flat: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, name + "."))
        elif isinstance(value, (list, tuple)):
            flat[name] = ",".join(map(str, value))
        else:
            flat[name] = str(value)
    return flat


def _quiet_mlflow() -> None:
    """Keep MLflow's and its HTTP client's chatter out of the CLI unless -v asked for INFO."""
    if logging.getLogger().getEffectiveLevel() <= logging.INFO:
        return
    for name in ("mlflow", "alembic", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.ERROR)  # per-retry warnings; we warn once


def log_run(
    *,
    tracking_uri: str,
    artifact_location: str | None,
    experiment_name: str,
    run_name: str,
    params: Mapping[str, str],
    metrics: Mapping[str, float],
    tags: Mapping[str, str],
    artifacts: Callable[[str], Iterable[Path]],
    metric_steps: Iterable[tuple[str, float, int]] = (),
) -> str | None:
    """Log one finished run; returns the MLflow run id, or None if tracking failed.

    ``artifacts`` is called with the new MLflow run id (so files can record it)
    and returns the files to attach.
    """
    apply_defaults()
    try:
        _quiet_mlflow()
        from mlflow.entities import Metric, Param
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=tracking_uri)
        experiment = client.get_experiment_by_name(experiment_name)
        if experiment is None:
            experiment_id = client.create_experiment(experiment_name, artifact_location=artifact_location)
        else:
            experiment_id = experiment.experiment_id
        run = client.create_run(experiment_id, run_name=run_name, tags=dict(tags))
        run_id = run.info.run_id
        now = int(time.time() * 1000)
        param_list = [Param(k, v[:6000]) for k, v in sorted(params.items())]
        for start in range(0, len(param_list), 100):
            client.log_batch(run_id, params=param_list[start : start + 100])
        metric_list = [Metric(k, float(v), now, 0) for k, v in sorted(metrics.items())]
        metric_list += [Metric(k, float(v), now, step) for k, v, step in metric_steps]
        for start in range(0, len(metric_list), 1000):
            client.log_batch(run_id, metrics=metric_list[start : start + 1000])
        for path in artifacts(run_id):
            client.log_artifact(run_id, str(path))
        client.set_terminated(run_id, "FINISHED")
        return run_id
    except Exception as exc:
        log.warning("MLflow tracking at %s failed (%s: %s); the run's local results are complete", tracking_uri, type(exc).__name__, str(exc)[:300])
        return None

