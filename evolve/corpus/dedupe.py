"""Exact and near duplicates, within the corpus and across its splits.

Exact: texts equal after case folding and whitespace folding are one text
(the first in split order train → validation → eval wins, so evaluation
never holds a copy of a training text). Near: MinHash over word 5-shingles
(``datasketch``; 128 permutations, LSH at Jaccard 0.7): a validation or
evaluation text that nearly duplicates a training text — or an evaluation
text a validation one — is dropped. Texts shorter than five words are
compared exactly only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from evolve.corpus.records import SPLITS, LabelledText

NEAR_THRESHOLD = 0.7
PERMUTATIONS = 128
SHINGLE = 5
_WORD = re.compile(r"\w+", re.UNICODE)


def normalised(text: str) -> str:
    return " ".join(text.casefold().split())


def _shingles(text: str) -> set[bytes]:
    words = _WORD.findall(text.casefold())
    return {" ".join(words[i : i + SHINGLE]).encode("utf-8") for i in range(max(0, len(words) - SHINGLE + 1))}


def deduplicate(rows: Sequence[LabelledText]) -> tuple[list[LabelledText], dict[str, int]]:
    """Rows without exact duplicates, and without near duplicates across splits; and what was removed."""
    from datasketch import MinHash, MinHashLSH

    order = {split: i for i, split in enumerate(SPLITS)}
    ranked = sorted(rows, key=lambda r: order.get(r.split, len(SPLITS)))
    seen: set[str] = set()
    exact: list[LabelledText] = []
    removed = {"exact": 0, "near_cross_split": 0, "conflicting_labels": 0}
    labels: dict[str, str] = {}
    for row in ranked:
        key = normalised(row.text)
        if not key:
            continue
        if key in seen:
            removed["exact"] += 1
            if labels[key] != row.label:
                removed["conflicting_labels"] += 1
            continue
        seen.add(key)
        labels[key] = row.label
        exact.append(row)
    lsh = MinHashLSH(threshold=NEAR_THRESHOLD, num_perm=PERMUTATIONS)
    kept: list[LabelledText] = []
    for index, row in enumerate(exact):
        shingles = _shingles(row.text)
        if not shingles:
            kept.append(row)
            continue
        signature = MinHash(num_perm=PERMUTATIONS, seed=1)
        signature.update_batch(list(shingles))
        matches = lsh.query(signature)
        if any(split_of != row.split for split_of in (m.split("|", 1)[0] for m in matches)):
            removed["near_cross_split"] += 1
            continue
        lsh.insert(f"{row.split}|{index}", signature)
        kept.append(row)
    return kept, removed
