"""`immune runs` and `immune report`: reading results, for humans and for CI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from app.cli_common import console, fail, setup_logging, show_records

MAX_BAD_LINES_SHOWN = 5


def _load(paths: list[Path]):
    from results.store import load_runs

    try:
        return load_runs(*paths)
    except FileNotFoundError as exc:
        fail(str(exc))


def runs(
    paths: Annotated[list[Path] | None, typer.Argument(help="Run directories or directories holding runs (default: $IMMUNE_RUNS or runs/).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines on stdout, one object per run.")] = False,
) -> None:
    """List runs with their headline metrics (the same runs `mlflow ui` shows)."""
    setup_logging(False)
    found = _load(paths or [])
    frame = found.runs
    if as_json:
        for row in frame.to_dict(orient="records"):
            typer.echo(json.dumps(row, default=str))
        return
    def pct(value: object) -> str:
        return "–" if not isinstance(value, int | float) or value != value else f"{float(value):.2%}"

    rows = [
        [
            row.run_id, row.experiment, str(row.generation), row.status, "–" if row.episodes != row.episodes or row.episodes is None else f"{int(row.episodes):,}",
            pct(row.breach_rate), pct(row.false_positive_rate), pct(row.utility), str(row.rules_version or "–"),
        ]
        for row in frame.itertuples()
    ]
    show_records(f"{len(frame)} run(s)", ["run", "experiment", "gen", "status", "episodes", "breach", "FPR", "utility", "rules"], rows, optional=("status", "gen", "rules"))


def report(
    paths: Annotated[list[Path], typer.Argument(help="Run directories, evolution directories, or directories holding runs.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="HTML file to write.")] = Path("report.html"),
    title: Annotated[str, typer.Option(help="Report title.")] = "Kosmoi Immune report",
    top: Annotated[int, typer.Option(help="Surviving attacks to list.", min=1, max=1000)] = 25,
) -> None:
    """Write a self-contained HTML report (plots embedded, no network) for one or more runs."""
    setup_logging(False)
    from results.report import write_report

    found = _load(paths)
    if not output.parent.exists():
        fail(f"{output}: directory {output.parent} does not exist")
    path = write_report(found, output, title, top)
    console.print(f"report: {path} ({path.stat().st_size / 1024:,.0f} KiB, {len(found)} run(s))")


def register(app: typer.Typer) -> None:
    """Add these commands to the `immune` app."""
    app.command("runs")(runs)
    app.command("report")(report)
