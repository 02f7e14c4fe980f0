"""`immune runs`, `immune report` and `immune eval`: reading results, for humans and for CI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich import box
from rich.table import Table

from sim.cli_common import console, fail, load_rules, setup_logging
from targets.rules import RuleSetError

MAX_BAD_LINES_SHOWN = 5


def _load(paths: list[Path]):  # noqa: ANN202 - sim.results.Runs
    from sim.results import load_runs

    try:
        return load_runs(*paths)
    except FileNotFoundError as exc:
        fail(str(exc))


def runs(
    paths: Annotated[Optional[list[Path]], typer.Argument(help="Run directories or directories holding runs (default: $IMMUNE_RUNS or runs/).")] = None,
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
    table = Table(title=f"{len(frame)} run(s)", box=box.SIMPLE_HEAD)
    for column in ("run", "experiment", "gen", "status", "episodes", "breach", "FPR", "utility", "rules"):
        table.add_column(column, justify="left" if column in {"run", "experiment", "status", "rules"} else "right", no_wrap=column in {"run", "breach", "FPR", "utility"})

    def pct(value: object) -> str:
        return "–" if value is None or value != value else f"{float(value):.2%}"  # noqa: PLR0124 - NaN check

    for row in frame.itertuples():
        table.add_row(
            row.run_id, row.experiment, str(row.generation), row.status, "–" if row.episodes != row.episodes or row.episodes is None else f"{int(row.episodes):,}",
            pct(row.breach_rate), pct(row.false_positive_rate), pct(row.utility), str(row.rules_version or "–"),
        )
    console.print(table)


def report(
    paths: Annotated[list[Path], typer.Argument(help="Run directories, evolution directories, or directories holding runs.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="HTML file to write.")] = Path("report.html"),
    title: Annotated[str, typer.Option(help="Report title.")] = "Kosmoi Immune report",
    top: Annotated[int, typer.Option(help="Surviving attacks to list.", min=1, max=1000)] = 25,
) -> None:
    """Write a self-contained HTML report (plots embedded, no network) for one or more runs."""
    setup_logging(False)
    from sim.report import write_report

    found = _load(paths)
    if not output.parent.exists():
        fail(f"{output}: directory {output.parent} does not exist")
    path = write_report(found, output, title, top)
    console.print(f"report: {path} ({path.stat().st_size / 1024:,.0f} KiB, {len(found)} run(s))")


def _read_jsonl(path: Path, what: str, with_category: bool) -> list[tuple[str, str]]:
    """(text, category) per line of a JSON-lines file; every bad line is reported, none silently dropped."""
    if not path.is_file():
        fail(f"{path}: no such file ({what})")
    items: list[tuple[str, str]] = []
    bad: list[str] = []
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw.decode("utf-8"))
                if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                    raise ValueError('expected an object with a string "text"')
                category = record.get("category", "attack" if with_category else "benign")
                items.append((record["text"], str(category)))
            except (UnicodeDecodeError, ValueError) as exc:
                bad.append(f"{path}:{number}: {str(exc).splitlines()[0][:120]}")
    if bad:
        shown = "; ".join(bad[:MAX_BAD_LINES_SHOWN])
        fail(f"{len(bad)} bad line(s) in {what} — {shown}{' ...' if len(bad) > MAX_BAD_LINES_SHOWN else ''}")
    if not items:
        fail(f"{path}: no texts ({what})")
    return items


def evaluate_rules(
    rules: Annotated[str, typer.Option(help="Rule set: builtin:NAME, a JSON file, or models:/kosmoi-guardrails@production.")] = "builtin:baseline",
    attacks: Annotated[Optional[Path], typer.Option(help='JSON lines {"text": ..., "category": ...} that should be blocked.')] = None,
    benign: Annotated[Optional[Path], typer.Option(help='JSON lines {"text": ...} that should be allowed.')] = None,
    tracking_uri: Annotated[Optional[str], typer.Option(help="MLflow tracking URI for models:/ rules.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the evaluation as JSON.")] = False,
) -> None:
    """Recall per category and false-positive rate (95 % Wilson intervals) and scan latency of a rule set on your own labelled texts.

    The same computation as the promotion gate: an attack counts as caught when it is blocked; a
    benign text counts as a false positive when it is blocked or flagged.
    """
    setup_logging(False)
    if attacks is None and benign is None:
        fail("give --attacks and/or --benign (JSON lines with a \"text\" field)")
    from evolve.gate import evaluate

    try:
        ruleset = load_rules(rules, tracking_uri)
    except RuleSetError as exc:
        fail(str(exc))
    attack_items = _read_jsonl(attacks, "attacks", True) if attacks else []
    benign_texts = [text for text, _ in _read_jsonl(benign, "benign texts", False)] if benign else []
    result = evaluate(ruleset, attack_items, benign_texts)
    data = {"rules": {"ref": rules, "name": ruleset.name, "version": ruleset.version, "hash": ruleset.hash}, **result.as_dict()}
    if as_json:
        typer.echo(json.dumps(data))
        return
    console.print(f"{ruleset.name} v{ruleset.version} ({ruleset.hash})")
    table = Table()
    for column in ("set", "texts", "blocked / flagged+blocked", "rate", "95 % CI"):
        table.add_column(column, justify="left" if column == "set" else "right")
    for category, rate in sorted(result.recall_by_category.items()):
        low, high = rate.ci95
        table.add_row(f"attacks: {category}", f"{rate.n:,}", f"{rate.hits:,} blocked", f"{rate.value:.2%}", f"[{low:.2%}, {high:.2%}]")
    if attack_items:
        low, high = result.recall.ci95
        table.add_row("attacks: all (recall)", f"{result.recall.n:,}", f"{result.recall.hits:,} blocked", f"{result.recall.value:.2%}", f"[{low:.2%}, {high:.2%}]")
    if benign_texts:
        low, high = result.false_positive_rate.ci95
        fpr = result.false_positive_rate
        table.add_row("benign (false-positive rate)", f"{fpr.n:,}", f"{fpr.hits:,} flagged or blocked", f"{fpr.value:.2%}", f"[{low:.2%}, {high:.2%}]")
    console.print(table)
    console.print(f"scan latency: p50 {result.latency_p50_us:,.0f} µs, p99 {result.latency_p99_us:,.0f} µs")


def register(app: typer.Typer) -> None:
    """Add these commands to the `immune` app."""
    app.command("runs")(runs)
    app.command("report")(report)
    app.command("eval")(evaluate_rules)
