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




def show_records(title: str, columns: list[str], rows: list[list[str]], *, wide: tuple[str, ...] = ()) -> None:
    """Print a listing so that no value is cut.

    On a terminal wide enough for every column at full width: a table. On a
    narrower terminal: one block per record, ``column: value`` per line. When
    stdout is not a terminal (a pipe, a file): tab-separated values with a
    header line, values in full (tabs and newlines inside a value become
    spaces). ``wide`` columns (long free text such as patterns) are left to
    wrap in the table instead of counting towards its width.
    """
    from rich import box
    from rich.table import Table

    if not console.is_terminal:
        clean = [[value.replace("\t", " ").replace("\n", " ") for value in row] for row in rows]
        typer.echo("\t".join(columns))
        for row in clean:
            typer.echo("\t".join(row))
        return
    natural = sum(max([len(name), *(len(line) for row in rows for line in row[i].splitlines() or [""])]) + 3 for i, name in enumerate(columns) if name not in wide)
    natural += sum(24 for name in columns if name in wide)
    if natural <= console.width:
        table = Table(title=title, box=box.SIMPLE_HEAD)
        for name in columns:
            table.add_column(name, no_wrap=name not in wide, overflow="fold")
        for row in rows:
            table.add_row(*(Text(value) for value in row))
        console.print(table)
        return
    console.print(Text(title, style="bold"))
    label = max(len(name) for name in columns)
    for row in rows:
        console.print()
        for name, value in zip(columns, row):
            console.print(Text.assemble((f"{name:>{label}}: ", "dim"), value), soft_wrap=False, overflow="fold")
