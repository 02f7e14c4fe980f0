"""Environment defaults for the libraries the engine drives (Ray, MLflow), applied by an explicit call.

:func:`apply_defaults` is called at start-up (the CLI's entry point) and by
every engine function that starts Ray or talks to MLflow, never on import: a
notebook that imports a module keeps its environment until it runs something.
Variables the user has set always win.
"""

from __future__ import annotations

import os

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
