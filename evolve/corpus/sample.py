"""The small committed sample of the corpus: tests and machines without a built corpus train on it.

A stratified draw (per split, source and label) from the built corpus,
without the sources whose copyleft licences forbid copying them into this
repository. ``immune data sample`` rewrites it from a fresh build.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from attackers.mutations import PAYLOAD_SLOT
from evolve.corpus.records import LabelledText
from evolve.corpus.sources import COPYLEFT
from kosmoi.ids import stable_hash64
from kosmoi.packaged import read_jsonl_gz, write_jsonl_gz

SAMPLE_FILE = "corpus_sample.jsonl.gz"
PER_SOURCE_LABEL = 40
MAX_TEXT_CHARS = 4000


def _permissive(row: LabelledText) -> bool:
    """Whether ``row``'s licence lets us copy it into this repository (no copyleft)."""
    return not any(tag in row.licence for tag in COPYLEFT)


def draw_sample(rows: Sequence[LabelledText], per_group: int = PER_SOURCE_LABEL) -> list[LabelledText]:
    """At most ``per_group`` rows per (split, source, label), by stable hash; copyleft sources left out."""
    groups: dict[tuple[str, str, str], list[LabelledText]] = defaultdict(list)
    for row in rows:
        if not _permissive(row) or len(row.text) > MAX_TEXT_CHARS:
            continue
        groups[(row.split, row.source, row.label)].append(row)
    out: list[LabelledText] = []
    for key in sorted(groups):
        ranked = sorted(groups[key], key=lambda r: stable_hash64("sample", r.source, r.text))
        out.extend(ranked[:per_group])
    return out


def write_sample(rows: Sequence[LabelledText], path: Path) -> int:
    return write_jsonl_gz([row.as_row() for row in rows], path)


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
        if row.split != "train" or row.source not in FRAMING_SOURCES or not _permissive(row) or len(row.text) > MAX_FRAMING_CHARS:
            continue
        objective = next((o for o in objectives if o in row.text), None)
        if objective is None or row.origin in out:
            continue
        out[row.origin] = {"id": f"{row.source}:{row.origin}", "source": row.source, "licence": row.licence, "template": row.text.replace(objective, PAYLOAD_SLOT)}
        if len(out) == MAX_FRAMINGS:
            break
    return sorted(out.values(), key=lambda f: f["id"])


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
        if row.split == "validation" and not row.is_attack and _permissive(row) and len(row.text) <= MAX_TRAFFIC_CHARS:
            groups[row.source].append(row)
    out: list[dict[str, str]] = []
    for source in sorted(groups):
        ranked = sorted(groups[source], key=lambda r: stable_hash64("traffic", r.source, r.text))
        out.extend({"text": r.text, "source": r.source, "licence": r.licence, "category": r.category} for r in ranked[:REAL_TRAFFIC_PER_SOURCE])
    return out


def load_sample() -> list[LabelledText]:
    """Every row of the committed sample."""
    return [LabelledText(**record) for record in read_jsonl_gz("evolve", SAMPLE_FILE)]
