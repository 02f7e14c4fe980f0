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

from attackers.mutations import PAYLOAD_SLOT
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


FRAMINGS_FILE = "real_framings.jsonl.gz"  # under attackers/data: the mutator's real_framing operator reads it
FRAMING_SOURCES = ("pyrit:in-the-wild",)  # train split, MIT: human-written jailbreaks around a {{ prompt }} slot
MAX_FRAMINGS = 160
MAX_FRAMING_CHARS = 1500


def draw_framings(rows: Sequence[LabelledText], objectives: Sequence[str]) -> list[dict[str, str]]:
    """Real attack framings for the mutator: train-split jailbreaks with the objective they were filled with put back as a slot.

    Only permissive sources of the train split (never validation or eval, so
    the guard's honest figures stay honest), at most ``MAX_FRAMINGS`` by stable
    hash, each at most ``MAX_FRAMING_CHARS`` long.
    """
    out: dict[str, dict[str, str]] = {}
    for row in sorted(rows, key=lambda r: stable_hash64("framing", r.source, r.origin, r.text)):
        if row.split != "train" or row.source not in FRAMING_SOURCES or any(tag in row.licence for tag in COPYLEFT) or len(row.text) > MAX_FRAMING_CHARS:
            continue
        objective = next((o for o in objectives if o in row.text), None)
        if objective is None or row.origin in out:
            continue
        out[row.origin] = {"id": f"{row.source}:{row.origin}", "source": row.source, "licence": row.licence, "template": row.text.replace(objective, PAYLOAD_SLOT)}
        if len(out) == MAX_FRAMINGS:
            break
    return sorted(out.values(), key=lambda f: f["id"])


REAL_TRAFFIC_FILE = "real_traffic.jsonl.gz"  # under targets/data: the simulation's customers send these
REAL_TRAFFIC_PER_SOURCE = 60
MAX_TRAFFIC_CHARS = 2000


def draw_real_traffic(rows: Sequence[LabelledText]) -> list[dict[str, str]]:
    """Real benign prompts for the simulation's customers: the validation split's benign rows, permissive sources only.

    The validation split is never trained on (it calibrates the learned
    stage, as the gate's held-out part does), so in-run false positives on
    these texts are honest measurements; at most ``REAL_TRAFFIC_PER_SOURCE``
    per source by stable hash, each at most ``MAX_TRAFFIC_CHARS`` long.
    """
    groups: dict[str, list[LabelledText]] = defaultdict(list)
    for row in rows:
        if row.split == "validation" and not row.is_attack and not any(tag in row.licence for tag in COPYLEFT) and len(row.text) <= MAX_TRAFFIC_CHARS:
            groups[row.source].append(row)
    out: list[dict[str, str]] = []
    for source in sorted(groups):
        ranked = sorted(groups[source], key=lambda r: stable_hash64("traffic", r.source, r.text))
        out.extend({"text": r.text, "source": r.source, "licence": r.licence, "category": r.category} for r in ranked[:REAL_TRAFFIC_PER_SOURCE])
    return out


def write_jsonl_gz(records: Sequence[dict[str, str]], path: Path) -> int:
    """Write ``records`` as gzipped JSON lines (deterministic bytes for the same records)."""
    with gzip.GzipFile(path, "wb", compresslevel=9, mtime=0) as raw:
        for record in records:
            raw.write((json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8"))
    return len(records)


def load_sample() -> list[LabelledText]:
    """Every row of the committed sample."""
    raw = resources.files("evolve").joinpath("data", SAMPLE_FILE).read_bytes()
    return [LabelledText(**json.loads(line)) for line in gzip.decompress(raw).decode("utf-8").splitlines() if line.strip()]
