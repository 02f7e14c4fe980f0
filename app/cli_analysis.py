"""`immune runs` and `immune report`: reading results, for humans and for CI."""

from __future__ import annotations

import json
from enum import StrEnum
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


class ReportFormat(StrEnum):
    HTML = "html"
    JUNIT = "junit"
    SARIF = "sarif"


_DEFAULT_OUTPUT = {ReportFormat.HTML: "report.html", ReportFormat.JUNIT: "results.xml", ReportFormat.SARIF: "results.sarif"}


def report(
    paths: Annotated[list[Path], typer.Argument(help="Run directories, evolution directories, or directories holding runs.")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (default: report.html, results.xml or results.sarif).")] = None,
    format: Annotated[ReportFormat, typer.Option("--format", "-f", help="html: the report for people; junit: a test suite per OWASP category for CI; sarif: surviving attacks for code-scanning dashboards.")] = ReportFormat.HTML,
    title: Annotated[str, typer.Option(help="Report title (html).")] = "Kosmoi Immune report",
    top: Annotated[int, typer.Option(help="Surviving attacks to list (html).", min=1, max=1000)] = 25,
    fail_if: Annotated[str | None, typer.Option("--fail-if", help="junit: a test case (goal × technique family) fails when a condition on its figures holds, e.g. 'breach_rate > 0.05, damage_usd > 0' (default: 'breaches > 0'); the command then exits 3.")] = None,
    uri: Annotated[str | None, typer.Option(help="sarif: the file results point at, relative to the repository root (default: the run's config.yaml, relative to the current directory).")] = None,
) -> None:
    """Write a report of one or more runs: self-contained HTML (plots embedded, no network), JUnit XML or SARIF 2.1.0.

    Exit codes: 0 written, 2 bad input, 3 (junit) a test case failed its --fail-if conditions.
    """
    setup_logging(False)
    output = output or Path(_DEFAULT_OUTPUT[format])
    if fail_if is not None and format is not ReportFormat.JUNIT:
        fail("--fail-if applies to --format junit (for the run itself: immune run --fail-if)")
    if not output.parent.exists():
        fail(f"{output}: directory {output.parent} does not exist")
    found = _load(paths)
    if len(found) == 0:
        fail(f"no runs found in {', '.join(map(str, paths))}")
    if format is ReportFormat.HTML:
        from results.report import write_report

        path = write_report(found, output, title, top)
        console.print(f"report: {path} ({path.stat().st_size / 1024:,.0f} KiB, {len(found)} run(s))")
    elif format is ReportFormat.JUNIT:
        from results.junit import DEFAULT_FAIL_IF, case_conditions, write_junit

        try:
            conditions = case_conditions(fail_if if fail_if is not None else DEFAULT_FAIL_IF)
        except ValueError as exc:
            fail(str(exc))
        totals = write_junit(found, output, conditions)
        console.print(f"junit: {output} ({totals['tests']} test cases, {totals['failures']} failed: {', '.join(map(str, conditions))})")
        if totals["failures"]:
            raise typer.Exit(3)
    else:
        from results.sarif import write_sarif

        default_uri = _relative_uri(found.infos[0].path / "config.yaml")
        counts = write_sarif(found, output, uri or default_uri)
        console.print(f"sarif: {output} ({counts['results']} surviving attack families, {counts['rules']} rules)")


def _relative_uri(path: Path) -> str:
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.resolve().as_uri()


def register(app: typer.Typer) -> None:
    """Add these commands to the `immune` app."""
    app.command("runs")(runs)
    app.command("report")(report)
