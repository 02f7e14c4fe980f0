"""Environment defaults for the libraries the engine drives (Ray, MLflow), applied by an explicit call.

:func:`apply_defaults` is called at start-up (the CLI's entry point) and by
every engine function that starts Ray or talks to MLflow, never on import: a
notebook that imports a module keeps its environment until it runs something.
Variables the user has set always win.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sim.config import Experiment

DEFAULTS: dict[str, str] = {
    "RAY_USAGE_STATS_ENABLED": "0",  # a security tool does not phone home
    "MLFLOW_DISABLE_TELEMETRY": "true",
    # Fail fast instead of retrying for minutes against an unreachable tracking server.
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_LOGGING_LEVEL": "WARNING",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


def apply_defaults() -> None:
    """Set every variable of :data:`DEFAULTS` the environment does not set already (idempotent)."""
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)


def referenced_secrets(exp: Experiment) -> dict[str, str]:
    """The environment variables the experiment's targets read in workers (endpoint headers, keys, canaries,
    guard-stage headers), with their values from this process; an unset one is a ConfigError naming them.

    The driver hands them to its workers as a constructor argument (Ray's runtime environments are logged).
    """
    from sim.config import ConfigError
    from targets.http_json import env_refs

    names = env_refs(exp.targets.model_dump(mode="json"))
    if exp.targets.endpoint is not None:
        names |= exp.targets.endpoint.env_names()
    missing = sorted(name for name in names if name not in os.environ)
    if missing:
        raise ConfigError(f"{exp.name}: the targets read environment variable(s) {', '.join(missing)}, which are not set")
    return {name: os.environ[name] for name in sorted(names)}
