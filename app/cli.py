"""The ``immune`` command line."""

from __future__ import annotations

import enum
import json
import logging
import operator
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from app.cli_analysis import register as register_analysis_commands
from app.cli_common import console, err, fail, load_rules, setup_logging, show_records, tracking_uri_for
from app.cli_data import register as register_data_commands
from app.cli_gateway import register as register_gateway_commands
from kosmoi.taxonomy import rule_tags
from sim.config import ConfigError, load_experiment
from sim.environment import apply_defaults
from targets.rules import RuleSetError, load_ruleset, parse_ruleset

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_show_locals=False, help="Kosmoi Immune: adversarial simulation of an LLM-agent defense stack.")
rules_app = typer.Typer(no_args_is_help=True, help="Inspect and maintain guardrail rule sets.")
app.add_typer(rules_app, name="rules")
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks that print numbers (record them in docs/benchmarks.md).")
app.add_typer(bench_app, name="bench")

def _experiment_unless_resuming(experiment: Path | None, resume: Path | None):
    """The validated experiment file; None when resuming (the run or evolution directory holds its own)."""
    if resume is not None:
        return None
    try:
        return load_experiment(experiment)  # type: ignore[arg-type]
    except ConfigError as exc:
        fail(str(exc))


def _fmt_rate(value: float) -> str:
    return f"{value:.2%}"


def _owasp_line(owasp: dict[str, dict]) -> str:
    """``LLM01 4.2 % · … · checked LLM03 · not exercised LLM04 …``: breach rate per attacked category."""
    attacked = [f"{tag} {_fmt_rate(row['breach_rate'])}" for tag, row in owasp.items() if row["status"] == "attacked"]
    parts = [", ".join(attacked) or "nothing attacked"]
    for status in ("checked", "not attacked", "not exercised"):
        tags = [tag for tag, row in owasp.items() if row["status"] == status]
        if tags:
            parts.append(f"{status} {' '.join(tags)}")
    return " · ".join(parts)


def _print_summary(summary: dict, run_dir: Path) -> None:
    table = Table(title=f"run {summary['run_id']} ({summary['experiment']})", show_header=False, title_justify="left")
    table.add_column("metric", style="bold")
    table.add_column("value")
    table.add_row("episodes", f"{summary['episodes']:,} ({summary['attack_episodes']:,} attack, {summary['benign_episodes']:,} benign)")
    intervals = summary.get("intervals", {})

    def with_ci(name: str) -> str:
        low_high = intervals.get(name)
        return _fmt_rate(summary[name]) + (f" [{_fmt_rate(low_high[0])}, {_fmt_rate(low_high[1])}]" if low_high else "")

    table.add_row("breach rate", f"{with_ci('breach_rate')} ({summary['breaches']:,} breaches)")
    table.add_row("false-positive rate", with_ci("false_positive_rate"))
    table.add_row("utility", with_ci("utility"))
    stages = ", ".join(f"{k} {v:,}" for k, v in summary["blocked_by_stage"].items()) or "none"
    table.add_row("attacks stopped by", stages)
    table.add_row("damage", f"${summary['damage_usd']:,.2f}, {summary['secrets_leaked']} secrets, {summary['records_exfiltrated']} records")
    table.add_row("warrants", f"{summary['warrants']} (false-warrant rate {_fmt_rate(summary['false_warrant_rate'])})")
    if summary.get("conversations"):
        c = summary["conversations"]
        table.add_row(
            "conversations",
            f"{int(c['attack_conversations']):,} attacking: {_fmt_rate(c['conversation_breach_rate'])} breached (single messages "
            f"{_fmt_rate(c['single_message_breach_rate'])}), turns to breach {c['turns_to_breach_median']:.0f} median / {c['turns_to_breach_p90']:.1f} p90, "
            f"{_fmt_rate(c['conversation_containment'])} contained; {int(c['benign_conversations']):,} benign: {_fmt_rate(c['conversation_false_positive_rate'])} flagged, "
            f"{_fmt_rate(c['conversation_utility'])} fully served",
        )
        strategies = {k.split(".", 1)[1]: v for k, v in c.items() if k.startswith("conversation_breach_rate.")}
        if strategies:
            table.add_row("  by strategy", ", ".join(f"{name} {_fmt_rate(rate)}" for name, rate in sorted(strategies.items())))
    if summary.get("coverage"):
        table.add_row("OWASP LLM 2025", _owasp_line(summary["coverage"]["owasp"]))
    if summary.get("model_calls"):
        calls = ", ".join(f"{status} {count:,}" for status, count in summary["model_calls"].items())
        table.add_row("model calls", f"{calls}; ${summary['model_cost_usd']:,.4f}")
    if summary.get("episodes_per_s") is not None:
        speed = f"{summary['episodes_per_s']:,.0f} episodes/s over {summary['duration_s']:.1f} s"
    else:
        speed = f"resumed ({summary.get('resumes', 0)}x): {summary['duration_s']:.1f} s in the last session"
    table.add_row("speed", f"{speed} ({summary['workers']} workers, {summary['replicas']} replicas)")
    table.add_row("results", str(run_dir))
    tracking = summary.get("mlflow_run_id") or "not tracked"
    table.add_row("mlflow", f"{tracking} @ {summary.get('mlflow_tracking_uri') or '-'}")
    console.print(table)


@app.command()
def run(
    experiment: Annotated[Path | None, typer.Argument(help="Experiment YAML file (not needed with --resume).")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for run results.")] = Path("runs"),
    seed: Annotated[int | None, typer.Option(help="Override the experiment's seed.", min=0)] = None,
    workers: Annotated[int | None, typer.Option(help="Ray worker actors (default: one per core).", min=1)] = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster: 'auto' or 'ray://host:10001'. Default: start Ray locally.")] = None,
    resume: Annotated[Path | None, typer.Option(help="Finish an interrupted or crashed run: its directory.")] = None,
    fail_if: Annotated[str | None, typer.Option("--fail-if", help="Exit 3 when a condition on the summary holds, e.g. 'breach_rate > 0.05'.")] = None,
    no_track: Annotated[bool, typer.Option("--no-track", help="Do not log to MLflow.")] = False,
    no_lock: Annotated[bool, typer.Option("--no-lock", help="Allow overlapping runs of the same experiment.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Ray and MLflow logs and full tracebacks.")] = False,
) -> None:
    """Run an experiment: campaigns of attackers plus benign traffic against the staging stack.

    Exit codes: 0 done, 2 bad input, 3 a --fail-if condition holds, 75 another run of the
    experiment holds the lock, 130 interrupted (resume with --resume RUN_DIR), 1 other errors.
    """
    setup_logging(verbose)
    if verbose:
        os.environ["MLFLOW_LOGGING_LEVEL"] = "INFO"
    from kosmoi.conditions import parse_conditions
    from sim.locks import LockHeld
    from sim.runner import SUMMARY_METRICS, RunOptions, RunStorageError, resume_run, run_experiment

    if resume is None and experiment is None:
        fail("give an experiment file, or --resume RUN_DIR")
    conditions = []
    if fail_if:
        try:
            conditions = parse_conditions(fail_if, {name: 0.0 for name in SUMMARY_METRICS})
        except ValueError as exc:
            fail(str(exc))
    exp = _experiment_unless_resuming(experiment, resume)
    options = RunOptions(
        out=out if resume is None else resume.parent,
        seed=seed,
        workers=workers,
        address=address or os.environ.get("IMMUNE_RAY_ADDRESS"),
        verbose=verbose,
        track=not no_track,
        lock=not no_lock,
        handle_signals=True,
    )
    label = exp.name if exp is not None else f"resuming {resume}"
    columns = (TextColumn("{task.description}", style="bold", markup=False), BarColumn(), MofNCompleteColumn(), TextColumn("episodes"), TimeElapsedColumn(), TimeRemainingColumn())
    try:
        with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as bar:
            task = bar.add_task(f"{label}: starting Ray", total=None)

            def on_progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total, description=label)

            result = resume_run(resume, options, on_progress) if resume is not None else run_experiment(exp, options, on_progress)
    except ConfigError as exc:
        fail(str(exc))
    except LockHeld as exc:
        fail(str(exc), 75)
    except RunStorageError as exc:
        fail(str(exc), 74)
    except KeyboardInterrupt:
        fail("interrupted at once; committed units of work are kept — resume with: immune run --resume <run dir>", 130)
    except Exception as exc:
        if verbose:
            logging.getLogger("immune").exception("the run failed")  # through the redacting log filter
        fail(f"{type(exc).__name__}: {exc}" + ("" if verbose else " (run with -v for the traceback)"), 1)
    if result.status == "interrupted":
        _print_summary(result.summary, result.run_dir)
        fail(f"interrupted after {result.summary['episodes']:,} episodes; resume with: immune run --resume {result.run_dir}", 130)
    _print_summary(result.summary, result.run_dir)
    tripped = [str(c) for c in conditions if c.holds(result.summary)]
    if tripped:
        fail(f"--fail-if: {'; '.join(tripped)}", 3)


class ScanStage(str, enum.Enum):
    input = "input"
    output = "output"


@app.command()
def scan(
    stage: Annotated[ScanStage, typer.Option(help="Which guardrail to run.")] = ScanStage.input,
    rules: Annotated[str, typer.Option(help="Rule set: builtin:NAME, a JSON file, or models:/kosmoi-guardrails@production.")] = "builtin:baseline",
    batch: Annotated[int, typer.Option(help="Lines per output flush.", min=1)] = 1024,
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI for models:/ rules (default: MLFLOW_TRACKING_URI, else sqlite:///runs/mlflow.db).")] = None,
    reload_every: Annotated[float, typer.Option(help="Re-read --rules every N seconds (a changed file or a moved alias); a version that fails to load is reported and the last good one stays active. 0: never.", min=0)] = 0.0,
) -> None:
    """Read JSON lines {"text": ...} on stdin; write one verdict line per input line."""
    setup_logging(False)
    from app.rules_source import LiveRuleSet
    from app.scan import Scanner

    try:
        source = LiveRuleSet(rules, lambda ref: load_rules(ref, tracking_uri), reload_every)
    except RuleSetError as exc:
        fail(str(exc))
    scanner = Scanner(source if reload_every > 0 else source.current, stage.value)
    try:
        lines, errors = scanner.run(sys.stdin.buffer, sys.stdout, batch)
    except BrokenPipeError:
        raise typer.Exit(0) from None
    if errors:
        logging.getLogger("immune.scan").info("%d of %d lines had errors", errors, lines)


@rules_app.command("show")
def rules_show(
    ref: Annotated[str, typer.Argument(help="builtin:NAME, a JSON file or a models:/ URI.")],
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI for models:/ references.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print it as JSON: everything but the classifier's weights.")] = False,
) -> None:
    """A rule set for humans: version, lineage, thresholds, classifier and every rule with its provenance."""
    try:
        ruleset = load_rules(ref, tracking_uri)
    except RuleSetError as exc:
        fail(str(exc))
    if as_json:
        data = json.loads(ruleset.to_json())
        if data.get("classifier"):
            data["classifier"] = {k: v for k, v in data["classifier"].items() if k not in ("indices", "weights")}
        for rule in data.get("rules", []):  # derived from the id (kosmoi.taxonomy), not stored: the artifact's hash stays
            tags = rule_tags(rule["id"])
            rule["owasp"], rule["atlas"] = list(tags.owasp), list(tags.atlas)
        typer.echo(json.dumps(data, indent=2))
        return
    console.print(Text.assemble((ruleset.name, "bold"), f" v{ruleset.version} (parent {ruleset.parent or '-'}) {ruleset.hash}"))
    console.print(f"thresholds: flag {ruleset.thresholds.flag}, block {ruleset.thresholds.block}; classifier: {ruleset.classifier.kind if ruleset.classifier else 'none'}; semantic exemplars: {len(ruleset.semantic.exemplars) if ruleset.semantic else 0}")
    rows = []
    for rule in ruleset.rules:
        source = str(rule.provenance.get("source", ""))
        if source == "mined":
            source += f" g{rule.provenance.get('generation')} ({rule.provenance.get('cluster_size')} attacks)"
        tags = rule_tags(rule.id)
        rows.append([rule.id, f"{rule.kind}, {rule.action}, {rule.stage}", " ".join((*tags.owasp, *tags.atlas)) or "-", source, rule.pattern, rule.description])  # the whole pattern: it is what runs
    show_records(f"{len(rows)} rules", ["id", "kind", "owasp", "source", "pattern", "description"], rows, wide=("pattern", "description"))


@rules_app.command("diff")
def rules_diff(
    old: Annotated[str, typer.Argument(help="The older rule set.")],
    new: Annotated[str, typer.Argument(help="The newer rule set.")],
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI for models:/ references.")] = None,
) -> None:
    """What changed between two rule sets: rules added, removed or changed; thresholds; classifier."""
    try:
        a, b = load_rules(old, tracking_uri), load_rules(new, tracking_uri)
    except RuleSetError as exc:
        fail(str(exc))
    before, after = {r.id: r for r in a.rules}, {r.id: r for r in b.rules}
    console.print(f"{a.name} v{a.version} -> {b.name} v{b.version}")
    for rule_id in sorted(after.keys() - before.keys()):
        console.print(Text.assemble((f"+ {rule_id}", "green"), f" {after[rule_id].pattern}  ", (after[rule_id].description, "dim")), highlight=False, soft_wrap=True)
    for rule_id in sorted(before.keys() - after.keys()):
        console.print(Text.assemble((f"- {rule_id}", "red"), f" {before[rule_id].pattern}"), highlight=False, soft_wrap=True)
    for rule_id in sorted(before.keys() & after.keys()):
        if before[rule_id] != after[rule_id]:
            console.print(Text.assemble((f"~ {rule_id}", "yellow"), f" {before[rule_id].pattern} -> {after[rule_id].pattern}"), highlight=False, soft_wrap=True)
    if a.thresholds != b.thresholds:
        console.print(f"thresholds: {a.thresholds} -> {b.thresholds}")
    if (a.classifier and a.classifier.weights) != (b.classifier and b.classifier.weights):
        console.print("classifier: retrained")
    console.print(f"{len(after.keys() - before.keys())} added, {len(before.keys() - after.keys())} removed")


@rules_app.command("validate")
def rules_validate(ref: Annotated[str, typer.Argument(help="builtin:NAME or a rule-set JSON file.")]) -> None:
    """Check a rule set: schema, hash, unique ids, every rule linear-time."""
    try:
        ruleset = load_ruleset(ref)
    except RuleSetError as exc:
        fail(str(exc))
    console.print(f"{ref}: ok — {ruleset.name} v{ruleset.version}, {len(ruleset.rules)} rules, {ruleset.hash}")


@rules_app.command("seal")
def rules_seal(path: Annotated[Path, typer.Argument(help="Rule-set JSON file to (re)compute the hash of, in place.")]) -> None:
    """Validate a hand-edited rule set and write its content hash into it."""
    try:
        raw = json.loads(path.read_text("utf-8"))
    except OSError as exc:
        fail(f"{path}: cannot read ({exc.strerror})")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        fail(f"{path}: not valid JSON ({exc})")
    if isinstance(raw, dict):
        raw.pop("hash", None)
    try:
        ruleset = parse_ruleset(json.dumps(raw), str(path), require_hash=False)
    except RuleSetError as exc:
        fail(str(exc))
    path.write_text(ruleset.to_json(), "utf-8")
    console.print(f"{path}: sealed {ruleset.sealed().hash}")


@rules_app.command("keygen")
def rules_keygen(out: Annotated[Path, typer.Option(help="Directory for signing.key (mode 0600) and signing.pub.")]) -> None:
    """Create an Ed25519 key pair for signing rule sets (keep signing.key off the tracking server)."""
    from targets.signing import generate_keypair

    private, public = generate_keypair(out)
    console.print(f"private key {private} (set IMMUNE_SIGNING_KEY to it where versions are registered); public key {public} (list it in IMMUNE_TRUSTED_KEYS where they are used)")


@rules_app.command("sign")
def rules_sign(
    path: Annotated[Path, typer.Argument(help="Rule-set JSON file; the signature is written next to it (FILE.sig).")],
    key: Annotated[Path | None, typer.Option(help="Private key (default IMMUNE_SIGNING_KEY, else the default key).")] = None,
) -> None:
    """Sign a rule-set file with an Ed25519 key."""
    from targets.signing import load_private_key, sign, signature_path, signing_key

    try:
        ruleset = load_ruleset(path)
        signature = sign(ruleset, load_private_key(key) if key else signing_key())
    except RuleSetError as exc:
        fail(str(exc))
    signature_path(path).write_text(signature.to_json(), "utf-8")
    console.print(f"{path}: signed by key {signature.key_id}")


@rules_app.command("verify")
def rules_verify(ref: Annotated[str, typer.Argument(help="A rule-set file (FILE.sig beside it) or models:/NAME@ALIAS.")]) -> None:
    """Check a rule set's signature against the trusted keys; exit 1 with the reason when it does not hold."""
    from targets.signing import load_verified, read_signature, signature_path

    try:
        if ref.startswith("models:/"):
            ruleset = load_rules(ref)
            console.print(f"{ref}: signature ok — {ruleset.name} v{ruleset.version}, {ruleset.hash}")
            return
        ruleset = load_verified(Path(ref), require=True)
        signer = read_signature(signature_path(Path(ref))).key_id
    except RuleSetError as exc:
        fail(str(exc), 1)
    except Exception as exc:  # the registry unreachable, say
        fail(f"{type(exc).__name__}: {exc}")
    console.print(f"{ref}: signature ok — {ruleset.name} v{ruleset.version}, signed by key {signer}")


def _user_texts(paths: list[Path] | None, label: str) -> list[str]:
    """Texts of the given label from users' files (a malformed file is an error naming file and line)."""
    from app.cli_data import load_user_rows

    return [row.text for row in load_user_rows(paths, label) if row.label == label]


@rules_app.command("train-classifier")
def rules_train_classifier(
    base: Annotated[str, typer.Option(help="Rule set to add the classifier to.")] = "builtin:baseline",
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the new rule-set version.")] = Path("ruleset.json"),
    seed: Annotated[int, typer.Option(help="Seed of the solver.")] = 0,
    c: Annotated[float | None, typer.Option("--c", help="Inverse regularisation strength (default: chosen on the validation sources).", min=1e-6)] = None,
    cache: Annotated[Path | None, typer.Option(help="Cache directory of the built corpus (`immune data build`).")] = None,
    attacks: Annotated[list[Path] | None, typer.Option(help="Your own attacks to train on as well (.jsonl, .csv, .parquet, save_to_disk dir, PyRIT .yaml).")] = None,
    benign: Annotated[list[Path] | None, typer.Option(help="Your own benign traffic to train on as well.")] = None,
) -> None:
    """Train the learned stage reproducibly on the corpus's train sources, calibrate it on its validation sources, and write a new rule-set version."""
    setup_logging(False)
    from evolve.classifier_training import train_classifier, training_corpus

    try:
        ruleset = load_ruleset(base)
    except RuleSetError as exc:
        fail(str(exc))
    extra_attacks, extra_benign = _user_texts(attacks, "attack"), _user_texts(benign, "benign")
    with console.status("training the learned stage"):
        trained, report = train_classifier(ruleset, seed=seed, c=c, corpus=training_corpus(cache), extra_positives=extra_attacks, extra_negatives=extra_benign)
    out.write_text(trained.to_json(), "utf-8")
    flag, block = report["at_flag"], report["at_block"]
    data = report["data"]
    console.print(
        Text(
            f"{out}: {trained.name} v{trained.version} ({trained.hash}); trained on {data['train']['attack']:,} attacks and {data['train']['benign']:,} benign texts "
            f"({data['origin']}), C={report['C']:g}, {report['mil_rounds']} multiple-instance refit(s); validation sources: recall {flag['recall']:.1%} / FPR {flag['fpr']:.2%} at flag, "
            f"recall {block['recall']:.1%} / FPR {block['fpr']:.2%} at block"
        )
    )


@app.command()
def sync(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory whose MLflow logging failed or was skipped.")],
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else the run's embedded SQLite store).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Log again even if the run is already tracked.")] = False,
) -> None:
    """Log a finished run to MLflow now: params, metrics and their series over simulated time, artifacts."""
    setup_logging(False)
    from sim.runner import sync_run

    if tracking_uri:
        os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
    try:
        summary = sync_run(run_dir, force=force)
    except ConfigError as exc:
        fail(str(exc))
    if not summary.get("mlflow_run_id"):
        fail(f"could not log {run_dir} to {summary.get('mlflow_tracking_uri')}; the run's local results are untouched — try again later", 1)
    console.print(f"{summary['run_id']} -> MLflow run {summary['mlflow_run_id']} @ {summary['mlflow_tracking_uri']}")


@app.command()
def budget(
    ledger: Annotated[Path | None, typer.Option(help="Ledger file (default: IMMUNE_LEDGER_PATH, else the user data directory).")] = None,
    defcon: Annotated[int, typer.Option(help="DEFCON level whose caps to compare with.", min=1, max=5)] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print today's rows and the remaining sniper allowance as JSON.")] = False,
) -> None:
    """Today's spending on paid models, and what remains under the DEFCON caps."""
    from attackers.budget import DEFAULT_POLICY, BudgetLedger

    book = BudgetLedger(ledger)
    caps = DEFAULT_POLICY[defcon]
    rows = book.today()
    usage = book.usage("sniper")
    if as_json:
        typer.echo(json.dumps({"ledger": str(book.path), "defcon": defcon, "today": rows, "sniper": {"attacks_today": usage.attacks_today, "attacks_this_hour": usage.attacks_this_hour, "usd_today": usage.usd_today}}, default=str))
        return
    listed = [[str(r["tier"]), str(r["provider"]), str(r["model"]), f"{r['attacks']:,}", f"${r['usd']:.4f}", str(r["open"])] for r in rows]
    show_records(f"model spend today (UTC) — ledger {book.path}", ["tier", "provider", "model", "attacks", "dollars", "open"], listed or [["-", "-", "-", "0", "—", "0"]])

    def left(cap: float | None, used: float, fmt: str) -> str:
        return "uncapped" if cap is None else fmt.format(max(0.0, cap - used))

    console.print(
        f"DEFCON {defcon} sniper caps: {caps.attacks_per_day if caps.attacks_per_day is not None else 'no'} attacks/day, "
        f"{caps.attacks_per_hour if caps.attacks_per_hour is not None else 'no'} attacks/hour, "
        f"{'$' + format(caps.usd_per_day, '.2f') if caps.usd_per_day is not None else 'no'} /day. Remaining today: "
        f"{left(caps.attacks_per_day, usage.attacks_today, '{:.0f} attacks')}, this hour: {left(caps.attacks_per_hour, usage.attacks_this_hour, '{:.0f} attacks')}, "
        f"dollars: {left(caps.usd_per_day, usage.usd_today, '${:.4f}')}."
    )


@bench_app.command("analysis")
def bench_analysis(
    paths: Annotated[list[Path], typer.Argument(help="Runs to analyse (run directories or directories holding runs).")],
    report: Annotated[bool, typer.Option(help="Also time writing the HTML report (to a temporary file).")] = True,
) -> None:
    """Seconds and peak memory of the common aggregations (results.analysis) over real runs."""
    import tempfile

    from app import bench_analysis as bench
    from results.store import load_runs

    try:
        runs = load_runs(*paths)
    except FileNotFoundError as exc:
        fail(str(exc))
    rows = sum(batch.num_rows for batch in runs.batches("episodes", columns=["kind"]))
    console.print(f"{len(runs)} run(s), {rows:,} episodes, {bench.parquet_bytes(runs) / 2**20:,.1f} MiB of episode Parquet; peak RSS before: {bench.peak_rss_mb():,.0f} MB")
    with tempfile.TemporaryDirectory() as tmp:
        timings = bench.time_analyses(runs, Path(tmp) / "report.html" if report else None)
    table = Table(title="analysis")
    for column in ("aggregation", "seconds", "episodes/s", "peak RSS MB"):
        table.add_column(column, justify="left" if column == "aggregation" else "right")
    for t in timings:
        table.add_row(t.name, f"{t.seconds:,.2f}", f"{rows / t.seconds:,.0f}" if t.seconds else "–", f"{t.peak_rss_mb:,.0f}")
    console.print(table)


@bench_app.command("conversations")
def bench_conversations(
    experiment: Annotated[Path, typer.Argument(help="A multi-turn experiment.")] = Path("experiments/multiturn.yaml"),
    workers: Annotated[int | None, typer.Option(help="Ray worker actors (default: one per core).", min=1)] = None,
) -> None:
    """What the session-level input guard and the conversation sentinel each take off multi-turn attacks (four runs of one experiment)."""
    from app import bench_conversations as bench

    exp = _experiment_unless_resuming(experiment, None)
    if not exp.attackers.grunt.conversations.share:
        fail(f"{experiment}: attackers.grunt.conversations.share is 0, so the experiment holds no conversations")
    results = bench.run_variants(exp, workers, progress=lambda msg: err.print(msg, highlight=False))
    table = Table(title=f"{exp.name}: breach rate per conversation (95 % Wilson intervals)")
    for column in ("defenses", "conversations breached", "single messages breached", "turns to breach (median / p90)", "contained", "benign conversations flagged", "turns/s"):
        table.add_column(column, justify="left" if column == "defenses" else "right")
    for r in results:
        m = r.metrics
        table.add_row(
            r.name, bench.shown(r.conversation_breach), bench.shown(r.single_breach), f"{m.get('turns_to_breach_median', 0):.0f} / {m.get('turns_to_breach_p90', 0):.1f}",
            f"{100 * m.get('conversation_containment', 0):.1f} %", f"{100 * m.get('conversation_false_positive_rate', 0):.1f} %", f"{r.turns_per_s:,.0f}",
        )  # fmt: skip
    console.print(table)
    strategies = sorted({s for r in results for s in r.by_strategy})
    by = Table(title="breach rate per conversation, by strategy")
    by.add_column("defenses")
    for strategy in strategies:
        by.add_column(strategy, justify="right")
    for r in results:
        by.add_row(r.name, *(bench.shown(r.by_strategy[s]) if s in r.by_strategy else "–" for s in strategies))
    console.print(by)


@bench_app.command("hostile")
def bench_hostile(
    quick: Annotated[bool, typer.Option(help="Sizes 64 KB and 1 MB only.")] = False,
) -> None:
    """Guardrail time per MB on hostile input (both stages), at growing sizes: linear or not, and the worst case."""
    from app import bench_hostile as bench

    sizes = (64 * 1024, bench.MB) if quick else (64 * 1024, bench.MB, 4 * bench.MB)
    rows = bench.run(sizes, progress=lambda msg: err.print(msg, highlight=False))
    table = Table(title="hostile input (input guard with its size limit raised; by default it refuses > 16 KB at once)")
    for column in ("input", "stage", *(f"{size // 1024:,} KB s/MB" for size in sizes), "growth", "peak RSS MB"):
        table.add_column(column, justify="left" if column in {"input", "stage"} else "right")
    worst = max(rows, key=lambda r: r.seconds_per_mb)
    for name in bench.GENERATORS:
        for stage in ("input", "output"):
            mine = [r for r in rows if r.generator == name and r.stage == stage]
            growth = mine[-1].seconds_per_mb / mine[0].seconds_per_mb if mine[0].seconds_per_mb else float("nan")
            table.add_row(name, stage, *(f"{r.seconds_per_mb:,.3f}" for r in mine), f"{growth:,.2f}x", f"{mine[-1].peak_rss_mb:,.0f}")
    console.print(table)
    console.print(f"worst: {worst.generator} ({worst.stage} guard) {worst.seconds_per_mb:,.3f} s/MB at {worst.size_bytes:,} B; 'growth' is s/MB at the largest size over s/MB at the smallest (1.0 = linear)")


@bench_app.command("soak")
def bench_soak(
    episodes: Annotated[int, typer.Option(help="Episodes to simulate (the bench traffic, kept up for longer).", min=10_000)] = 2_000_000,
    workers: Annotated[int | None, typer.Option(min=1, help="Ray workers (default: one per core).")] = None,
    interval: Annotated[float, typer.Option(help="Seconds between memory samples.", min=0.1)] = 2.0,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Keep the run here (default: a temporary directory, removed after).")] = None,
    samples_csv: Annotated[Path | None, typer.Option("--samples", help="Also write every memory sample to this CSV file.")] = None,
) -> None:
    """A long run whose memory (driver, Ray workers, Ray's own processes) must stay flat as episodes pile up."""
    import csv
    import dataclasses
    import tempfile
    import time

    from app import bench_soak as bench
    from sim.runner import RunOptions, run_experiment

    exp = bench.soak_experiment(episodes)
    attacks, benign = exp.planned_episodes()
    planned = attacks + benign
    err.print(
        f"soak: {planned:,} episodes — {exp.attackers.grunt.count:,} grunt campaigns and {exp.benign.customers + exp.benign.vendors + exp.benign.employees:,} "
        f"benign users arriving over {exp.simulation.arrival_window_s / 3600:,.1f} simulated hours"
    )
    with tempfile.TemporaryDirectory(prefix="immune-soak-") as tmp:
        options = RunOptions(out=out or Path(tmp), workers=workers, track=False, lock=False)
        with bench.RssSampler(interval) as sampler, Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(), console=err) as bar:
            task = bar.add_task("episodes", total=planned)

            def progress(done: int, total: int) -> None:
                sampler.episodes = done
                sampler.sample()  # one sample per committed unit of work too, while Ray is still up
                bar.update(task, completed=done, total=total)

            started = time.perf_counter()
            result = run_experiment(exp, options, progress)
            elapsed = time.perf_counter() - started
    samples = sampler.samples
    if samples_csv is not None:
        with samples_csv.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, [f.name for f in dataclasses.fields(bench.RssSample)])
            writer.writeheader()
            writer.writerows(dataclasses.asdict(s) for s in samples)
    done = result.summary.get("episodes", planned)
    console.print(f"{done:,} episodes in {elapsed:,.0f} s ({done / elapsed:,.0f} episodes/s), {len(samples)} memory samples every {interval:g} s")
    table = Table(title="private resident memory (MB) as the episodes pile up")
    names = ("driver_mb", "workers_mb", "largest_worker_mb", "ray_system_mb", "total_mb", "object_store_mb")
    for column in ("episodes done", "driver", "Ray workers (all)", "largest worker", "Ray system", "total", "object-store pages"):
        table.add_column(column, justify="right")
    for fraction, s in bench.at_fractions(samples, planned):
        table.add_row(f"{fraction:.0%} ({s.episodes:,})", *(f"{getattr(s, name):,.0f}" for name in names))
    table.add_row("peak", *(f"{max(getattr(s, name) for s in samples):,.0f}" for name in names))
    console.print(table)
    growth = {name: bench.growth_mb_per_million(samples, planned, operator.attrgetter(name)) for name in ("driver_mb", "largest_worker_mb", "total_mb")}
    console.print("growth from 25 % to 100 % of the episodes, MB per million episodes: " + ", ".join(f"{k.removesuffix('_mb').replace('_', ' ')} {v:+,.1f}" for k, v in growth.items()))


@bench_app.command("gateway")
def bench_gateway(
    calls: Annotated[int, typer.Option(min=10, help="Tool calls per side.")] = 600,
) -> None:
    """Tool-call latency through the MCP gateway on localhost, side by side with the in-process gateway."""
    from app import bench_gateway as bench

    table = Table(title=f"tool calls through the gateway ({calls:,} per side, one session, in sequence)")
    for column in ("path", "calls", "p50 µs", "p99 µs"):
        table.add_column(column, justify="left" if column == "path" else "right")
    for label, measure in (("in process", bench.in_process), ("MCP, streamable HTTP, bearer token", bench.over_mcp)):
        result = measure(calls)
        table.add_row(label, f"{result.calls:,}", f"{result.p50_us:,.0f}", f"{result.p99_us:,.0f}")
    console.print(table)


@bench_app.command("endpoint")
def bench_endpoint(
    episodes: Annotated[int, typer.Option(min=10, help="Episodes per side.")] = 200,
) -> None:
    """Episodes through a deployed agent (HTTP + MCP tools) side by side with the in-process LLM victim, same scripted model."""
    from app.bench_endpoint import run_endpoint_bench

    result = run_endpoint_bench(episodes)
    table = Table(title=f"one tool call per episode, scripted model ({episodes:,} episodes per side, alternating, one worker)")
    for column in ("victim", "episodes/s", "p50 ms", "p99 ms"):
        table.add_column(column, justify="left" if column == "victim" else "right")
    for label, per_s, p50, p99 in result.rows():
        table.add_row(label, f"{per_s:,.0f}", f"{p50:,.1f}", f"{p99:,.1f}")
    console.print(table)


@bench_app.command("guards")
def bench_guards(
    quick: Annotated[bool, typer.Option(help="Only 10 and 1,000 rules, texts up to 10 KB.")] = False,
    engines: Annotated[bool, typer.Option(help="Also compare rule engines (Hyperscan, RE2, Python re).")] = True,
    corpus: Annotated[str | None, typer.Option(help="Instead: scan the built corpus — 'real' (every split) or one split — p50/p99 by length bucket, texts/s one by one and in batches.")] = None,
    rules: Annotated[list[str] | None, typer.Option(help="With --corpus: guards to compare side by side (rule sets or --guard specs; default builtin:baseline).")] = None,
    limit: Annotated[int, typer.Option(help="With --corpus: at most this many texts (a stable sample).", min=100)] = 10_000,
    peers: Annotated[bool, typer.Option(help="With --corpus: also LlamaFirewall's and LLM Guard's offline scanners, where installed.")] = False,
) -> None:
    """p50/p99 per guard stage by text size and rule count, engine comparison, input scans/s."""
    from app import bench_guards as bench

    if corpus:
        _bench_corpus(corpus, rules or ["builtin:baseline"], limit, peers)
        return

    counts = (10, 1_000) if quick else bench.RULE_COUNTS
    sizes = (100, 1_000, 10_000) if quick else bench.SIZES
    rows = bench.stage_latencies(counts, sizes, progress=lambda msg: err.print(msg))
    table = Table(title="guard stages (µs)")
    for column in ("stage", "rules", "text", "p50", "p99"):
        table.add_column(column, justify="right" if column != "stage" else "left")
    for row in rows:
        table.add_row(row.stage + (f" [{row.engine}]" if row.engine else ""), f"{row.rules:,}", f"{row.size:,} B", f"{row.p50_us:,.1f}", f"{row.p99_us:,.1f}")
    console.print(table)
    if engines:
        table = Table(title="rule engines, matching only (µs)")
        for column in ("engine", "texts", "rules", "text", "p50", "p99"):
            table.add_column(column, justify="right" if column not in ("engine", "texts") else "left")
        for row in bench.engine_comparison(counts, tuple(s for s in sizes if s <= 10_000)):
            table.add_row(row.engine, row.stage.removeprefix("rules (").rstrip(")"), f"{row.rules:,}", f"{row.size:,} B", f"{row.p50_us:,.1f}", f"{row.p99_us:,.1f}")
        console.print(table)
    rate, done = bench.input_throughput()
    console.print(f"input guard, shipped rules, one core: {rate:,.0f} scans/s ({done:,} scans of 60-400 B texts, 20% attacks)")


def _bench_corpus(split: str, refs: list[str], limit: int, peers: bool) -> None:
    from app import bench_guards as bench
    from app.guard_specs import GuardSpecError, build_guard
    from evolve.corpus.build import CorpusMissing, load_split
    from evolve.corpus.records import SPLITS
    from kosmoi.ids import stable_hash64
    from targets.input_guard import InputGuard

    try:
        rows = [row for name in SPLITS for row in load_split(name)] if split == "real" else load_split(split)
        scanners = {ref: build_guard(ref, load_rules).scanner for ref in refs}
    except (CorpusMissing, ValueError) as exc:
        fail(str(exc))
    if peers:
        for spec in bench.PEERS:
            try:
                scanners[spec] = build_guard(spec, load_rules).scanner
            except GuardSpecError as exc:
                err.print(f"peer {spec} left out: {exc}")
    texts = [r.text for r in sorted(rows, key=lambda r: stable_hash64("bench", r.text))[:limit]]
    what = "all splits (benign and attack texts at their real lengths)" if split == "real" else f"the {split} split"
    err.print(f"{len(texts):,} texts of {what}, mean {sum(len(t.encode('utf-8', 'replace')) for t in texts) / max(1, len(texts)):,.0f} bytes; three rounds, best kept")
    result = bench.corpus_latency(scanners, texts)
    table = Table(title=f"input guard on {len(texts):,} real texts (µs, one core, side by side)")
    for column in ("guard", "length (bytes)", "texts", "p50", "p99"):
        table.add_column(column, justify="left" if column in ("guard", "length (bytes)") else "right")
    for ref, entry in result.items():
        buckets: dict[str, dict[str, float]] = entry["buckets"]  # type: ignore[assignment]  # the shape corpus_latency documents
        for bucket, stats in buckets.items():
            table.add_row(Text(ref), bucket, f"{stats['texts']:,}", f"{stats['p50']:,.0f}", f"{stats['p99']:,.0f}")
        table.add_row(Text(ref), "texts/s, one by one", "", f"{entry['texts_per_s']:,.0f}", "")
        if entry["batch_texts_per_s"] is not None:
            table.add_row(Text(ref), "texts/s, scan_many", "", f"{entry['batch_texts_per_s']:,.0f}", "")
    console.print(table)
    table = Table(title="scan_many by kind of text (µs per text, best of three)")
    for column in ("guard", "kind", "share", "mean bytes", "µs per text"):
        table.add_column(column, justify="left" if column in ("guard", "kind") else "right")
    for ref, scanner in scanners.items():
        if isinstance(scanner, InputGuard):
            for kind, cost in bench.kind_costs(scanner, texts).items():
                table.add_row(Text(ref), kind, f"{cost['share']:.0%}", f"{cost['mean_bytes']:,.0f}", f"{cost['us_per_text']:,.0f}")
    if table.row_count:
        console.print(table)
    console.print(f"calibration: sum(range(10**6)) takes {bench.calibration_ms():.1f} ms here (python -m timeit)")


@app.command()
def evolve(
    experiment: Annotated[Path | None, typer.Argument(help="Experiment YAML file (not needed with --resume).")] = None,
    generations: Annotated[int, typer.Option(help="Generations to run.", min=1, max=1000)] = 10,
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for results (an evo-<id> directory is made inside).")] = Path("runs"),
    frozen: Annotated[bool, typer.Option("--frozen", help="Control run: evolve the attackers but never patch the rules.")] = False,
    resume: Annotated[Path | None, typer.Option(help="Continue an evolution directory from its last finished generation.")] = None,
    workers: Annotated[int | None, typer.Option(min=1)] = None,
    address: Annotated[str | None, typer.Option()] = None,
    no_track: Annotated[bool, typer.Option("--no-track")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Co-evolve attackers and rules: each generation runs the experiment, mines what got through, registers a new rule set."""
    setup_logging(verbose)
    from evolve.loop import EvolutionOptions
    from evolve.loop import evolve as run_evolution

    if experiment is None and resume is None:
        fail("give an experiment file, or --resume EVOLUTION_DIR")
    exp = _experiment_unless_resuming(experiment, resume)
    options = EvolutionOptions(out=out if resume is None else resume.parent, generations=generations, frozen=frozen, workers=workers, address=address, verbose=verbose, track=not no_track, resume=resume)

    def on_generation(done: int, total: int, record) -> None:
        if record is not None:
            # two short lines (each under 80 columns) rather than one that wraps mid-word
            err.print(
                f"generation {record.generation}: breach rate {record.breach_rate:.2%} ({record.breaches:,}/{record.attack_episodes:,}), FPR {record.false_positive_rate:.2%}"
                + (f", model v{record.model_version}" if record.model_version else ""),
                highlight=False,
                soft_wrap=True,
            )
            err.print(
                f"  rules {record.rules} (+{record.new_rules} -{record.pruned}), input bypass {record.input_bypass_rate:.1%}, "
                f"archive {record.archive_coverage:.0%} filled, {record.breaching_coverage:.0%} breaching",
                highlight=False,
                soft_wrap=True,
            )

    try:
        result = run_evolution(exp, options, on_generation)
    except ConfigError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail("interrupted; finished generations are kept — resume with: immune evolve --resume <evolution dir>", 130)
    table = Table(title=f"evolution {result.state.evolution_id}{' (frozen rules)' if result.state.frozen else ''}")
    # breach rate; input-guard bypass rate; benign FPR; rules and new rules; archive cells filled and with a breach
    for column in ("gen", "breach", "bypass", "FPR", "rules", "new", "cells", "breaching"):
        table.add_column(column, justify="right")
    for row in result.curve:
        table.add_row(
            str(row["generation"]), f"{row['breach_rate']:.2%}", f"{row['input_bypass_rate']:.1%}", f"{row['false_positive_rate']:.2%}",
            str(row["rules"]), str(row["new_rules"]), f"{row['archive_coverage']:.0%}", f"{row['breaching_coverage']:.0%}",
        )
    console.print(table)
    console.print(f"results: {result.directory}")


@app.command()
def promote(
    version: Annotated[str | None, typer.Option(help="Model version to promote (default: the one aliased 'staging').")] = None,
    force: Annotated[bool, typer.Option(help="Promote even if the gate fails (needs --reason).")] = False,
    reason: Annotated[str, typer.Option(help="Why (recorded with the move).")] = "",
    benign: Annotated[list[Path] | None, typer.Option(help="Your own benign traffic for the gate's false-positive bound (.jsonl, .csv, .parquet, save_to_disk dir).")] = None,
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else sqlite:///runs/mlflow.db).")] = None,
) -> None:
    """Move the 'production' alias of kosmoi-guardrails to a version, if the promotion gate passes.

    The gate's benign texts: the real corpus's validation sources, a held-out share of the company's
    traffic and hard negatives, and any --benign files you give.
    """
    setup_logging(False)
    from evolve.benign_corpus import build_benign_corpus
    from evolve.registry import promote as do_promote

    gate = build_benign_corpus().texts("gate") + _user_texts(benign, "benign")
    try:
        version_moved, result = do_promote(tracking_uri=tracking_uri_for(tracking_uri), benign=gate, version=version, force=force, reason=reason)
    except RuleSetError as exc:
        fail(str(exc))
    candidate = result.candidate
    console.print(
        f"candidate v{version_moved}: held-out attacks allowed {candidate['allow_rate']['rate']:.2%}, benign FPR {candidate['false_positive_rate']['rate']:.2%}"
        + (f"; production allows {result.production['allow_rate']['rate']:.2%}" if result.production else "; no production version yet")
    )
    if not result.passed and not force:
        fail(f"gate failed: {result.reason} (use --force --reason '...' to override)", 3)
    console.print(f"production -> v{version_moved}" + (" (forced)" if force and not result.passed else ""))


@app.command()
def rollback(
    reason: Annotated[str, typer.Option(help="Why (recorded with the move).")] = "",
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else sqlite:///runs/mlflow.db).")] = None,
) -> None:
    """Move the 'production' alias back to the version it held before the last promotion."""
    setup_logging(False)
    from evolve.registry import rollback as do_rollback

    try:
        before, after = do_rollback(tracking_uri=tracking_uri_for(tracking_uri), reason=reason)
    except RuleSetError as exc:
        fail(str(exc))
    console.print(f"production: v{before} -> v{after}")


@app.command("history")
def alias_history(
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else sqlite:///runs/mlflow.db).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the moves as JSON (for scripts).")] = False,
) -> None:
    """Every recorded move of the kosmoi-guardrails aliases (staging, production), oldest first."""
    setup_logging(False)
    from evolve.registry import history

    try:
        moves = history(tracking_uri_for(tracking_uri))
    except RuleSetError as exc:
        fail(str(exc))
    if as_json:
        typer.echo(json.dumps(moves, indent=2, default=str))
        return
    if not moves:
        console.print("no alias moves recorded for kosmoi-guardrails yet (run `immune evolve` to register versions)")
        return
    rows = []
    for move in moves:
        how = "rollback" if move.get("rollback") else "forced" if move.get("forced") else "gate passed" if move.get("alias") == "production" else "registered"
        rows.append([str(move.get("at", "")), str(move.get("alias", "")), str(move.get("version", "")), str(move.get("from") or "-"), str(move.get("by", "")), how, str(move.get("reason", ""))])
    show_records("kosmoi-guardrails alias moves", ["at", "alias", "version", "from", "by", "how", "reason"], rows, wide=("reason",), optional=("by",))


register_analysis_commands(app)
register_data_commands(app)
register_gateway_commands(app)


def main() -> None:
    """Console-script entry point."""
    apply_defaults()
    app()


if __name__ == "__main__":
    main()
