"""The small committed sample of the corpus: tests and machines without a built corpus train on it.

A stratified draw (per split, source and label) from the built corpus,
without the sources whose copyleft licences forbid copying them into this
repository. ``immune data sample`` rewrites it from a fresh build.
"""

from __future__ import annotations

import gzip
import json
from collections import defaultdict
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from evolve.corpus.records import LabelledText
from evolve.corpus.sources import COPYLEFT
from kosmoi.ids import stable_hash64

SAMPLE_FILE = "corpus_sample.jsonl.gz"
PER_SOURCE_LABEL = 40
MAX_TEXT_CHARS = 4000


def draw_sample(rows: Sequence[LabelledText], per_group: int = PER_SOURCE_LABEL) -> list[LabelledText]:
    """At most ``per_group`` rows per (split, source, label), by stable hash; copyleft sources left out."""
    groups: dict[tuple[str, str, str], list[LabelledText]] = defaultdict(list)
    for row in rows:
        if any(tag in row.licence for tag in COPYLEFT) or len(row.text) > MAX_TEXT_CHARS:
            continue
        groups[(row.split, row.source, row.label)].append(row)
    out: list[LabelledText] = []
    for key in sorted(groups):
        ranked = sorted(groups[key], key=lambda r: stable_hash64("sample", r.source, r.text))
        out.extend(ranked[:per_group])
    return out


def write_sample(rows: Sequence[LabelledText], path: Path) -> int:
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=9) as handle:
        for row in rows:
            handle.write(json.dumps(row.as_row(), ensure_ascii=False, sort_keys=True) + "\n")
    return len(rows)


def load_sample() -> list[LabelledText]:
    """Every row of the committed sample."""
    raw = resources.files("evolve").joinpath("data", SAMPLE_FILE).read_bytes()
    return [LabelledText(**json.loads(line)) for line in gzip.decompress(raw).decode("utf-8").splitlines() if line.strip()]
