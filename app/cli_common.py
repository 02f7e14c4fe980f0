"""What every `immune` command shares: consoles, logging, errors, tracking URIs, rule-set references."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import NoReturn

import typer
from rich import box
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table
from rich.text import Text

from kosmoi.redact import install_log_redaction, redact
from sim.environment import apply_defaults
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
    if err.is_terminal:
        err.print()  # on a terminal, a blank line parts the error from a progress bar or status line above it
    err.print(Text.assemble(("error: ", "bold red"), redact(message)), highlight=False, soft_wrap=True)  # plain text: brackets are not markup
    raise typer.Exit(code)


DEFAULT_TRACKING = "sqlite:///runs/mlflow.db"


def tracking_uri_for(uri: str | None) -> str:
    """The MLflow URI a registry command talks to; such commands fail fast rather than retry for minutes."""
    apply_defaults()
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING


def load_rules(ref: str, tracking_uri: str | None = None) -> RuleSet:
    """builtin:NAME, a JSON file, or a models:/ URI from the MLflow registry."""
    if ref.startswith("models:/"):
        from evolve.registry import download_ruleset

        return download_ruleset(ref, tracking_uri_for(tracking_uri))[0]
    if ref.startswith("builtin:"):
        return load_ruleset(ref)
    from targets.signing import load_verified

    return load_verified(Path(ref), require=False)




def show_records(title: str, columns: list[str], rows: list[list[str]], *, wide: tuple[str, ...] = (), optional: tuple[str, ...] = ()) -> None:
    """Print a listing so that no value is cut.

    On a terminal wide enough for every column at full width: a table. When
    it is narrower, the ``optional`` columns are left out first (in order, and
    said so); if the table still does not fit, one block per record,
    ``column: value`` per line. When stdout is not a terminal (a pipe, a
    file): tab-separated values with a header line, every column in full (tabs
    and newlines inside a value become spaces). ``wide`` columns (long free
    text such as patterns) wrap in the table instead of counting towards its
    width.
    """
    if not console.is_terminal:
        typer.echo("\t".join(columns))
        for row in rows:
            typer.echo("\t".join(value.replace("\t", " ").replace("\n", " ") for value in row))
        return

    natural = {name: max([len(name), *(len(line) for row in rows for line in row[i].splitlines() or [""])]) for i, name in enumerate(columns)}

    def width(names: list[str]) -> int:
        return sum(24 if name in wide else natural[name] for name in names) + 3 * len(names)  # padding and separation per column

    shown = list(columns)
    hidden: list[str] = []
    for name in optional:
        if width(shown) <= console.width:
            break
        shown.remove(name)
        hidden.append(name)
    if width(shown) <= console.width:
        table = Table(title=title, box=box.SIMPLE_HEAD, caption=f"{', '.join(hidden)} not shown at this width (--json shows everything)" if hidden else None)
        for name in shown:
            table.add_column(name, no_wrap=name not in wide, overflow="fold", min_width=None if name in wide else natural[name])
        for row in rows:
            table.add_row(*(Text(row[columns.index(name)]) for name in shown))
        console.print(table)
        return
    console.print(Text(title, style="bold"))
    label = max(len(name) for name in columns)
    for row in rows:
        console.print()
        for name, value in zip(columns, row):
            console.print(Text.assemble((f"{name:>{label}}: ", "dim"), value), soft_wrap=False, overflow="fold")
