"""What every `immune` command shares: consoles, logging, errors, tracking URIs, rule-set references."""

from __future__ import annotations

import logging
import os
from typing import NoReturn

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.text import Text

from kosmoi.redact import install_log_redaction, redact
from targets.rules import RuleSet, load_ruleset

# Markup off: what we print is mostly text we did not write (rule patterns such as ``[a-z']{0,8}``, payloads,
# replies, paths), and rich would take its brackets for markup. Our own styling goes through Text objects.
console = Console(markup=False)
err = Console(stderr=True, markup=False)


def setup_logging(verbose: bool) -> None:
    """Log to stderr through rich; WARNING and up unless ``verbose``; credentials redacted from every record."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err, show_time=verbose, show_path=verbose, rich_tracebacks=verbose)],
        force=True,
    )
    if not verbose:
        logging.getLogger("urllib3").setLevel(logging.ERROR)  # HTTP retries end in one clear error of ours
    install_log_redaction()


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``error: message`` (no traceback) and exit with ``code`` (2: the user's input was wrong)."""
    err.print(Text.assemble(("error: ", "bold red"), redact(message)), highlight=False, soft_wrap=True)  # plain text: brackets are not markup
    raise typer.Exit(code)


DEFAULT_TRACKING = "sqlite:///runs/mlflow.db"


def tracking_uri_for(uri: str | None) -> str:
    """The MLflow URI a registry command talks to; such commands fail fast rather than retry for minutes."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING


def load_rules(ref: str, tracking_uri: str | None = None) -> RuleSet:
    """builtin:NAME, a JSON file, or a models:/ URI from the MLflow registry."""
    if ref.startswith("models:/"):
        from evolve.registry import download_ruleset

        return download_ruleset(ref, tracking_uri_for(tracking_uri))[0]
    return load_ruleset(ref)


