"""Reproducible training of the input guard's light classifier.

Data: ``evolve/data/classifier_corpus.yaml`` (positives rendered from our own
templates; hand-written negatives and hard negatives) plus conversational
lines from the installed ``chatterbot-corpus`` package (BSD). Texts are
canonicalised exactly as the guard does before featurisation. A fixed seed
fixes the split, the sampling and the solver, so the same inputs give the same
weights. The result is a new rule-set version carrying the model.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from targets.canonical import canonicalize
from targets.classifier import KIND, ClassifierSpec, ngram_buckets, pack
from targets.rules import RuleSet
from targets.semantic import SemanticSpec

MAX_PER_TEMPLATE = 60
SEMANTIC_EXEMPLARS = 400


@dataclass(frozen=True, slots=True)
class Corpus:
    positives: tuple[str, ...]
    negatives: tuple[str, ...]
    sources: dict[str, int]
    positive_groups: tuple[int, ...] = ()  # template index of each positive (for a leak-free hold-out)


def _render(template: str, slots: dict[str, list[str]], rng: random.Random) -> list[str]:
    names = [name for name in slots if "{" + name + "}" in template]
    combos = list(itertools.product(*(slots[name] for name in names))) if names else [()]
    rng.shuffle(combos)
    return [template.format(**dict(zip(names, combo))) for combo in combos[:MAX_PER_TEMPLATE]]


def chatterbot_lines() -> list[str]:
    """Every utterance of the English chatterbot corpus."""
    root = resources.files("chatterbot_corpus").joinpath("data", "english")
    lines: list[str] = []
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith((".yml", ".yaml")):
            continue
        data = yaml.safe_load(entry.read_text("utf-8")) or {}
        for conversation in data.get("conversations", []):
            lines.extend(str(u) for u in conversation if isinstance(u, (str, int, float)) and str(u).strip())
    return lines


def load_corpus(seed: int = 0) -> Corpus:
    """Positives and negatives for training (deterministic for a seed)."""
    rng = random.Random(seed)
    raw: dict[str, Any] = yaml.safe_load(resources.files("evolve").joinpath("data", "classifier_corpus.yaml").read_text("utf-8"))
    slots = {name: list(values) for name, values in raw["slots"].items()}
    positives: list[str] = []
    groups: list[int] = []
    for index, template in enumerate(raw["positive_templates"]):
        rendered = _render(template, slots, rng)
        positives.extend(rendered)
        groups.extend([index] * len(rendered))
    handwritten = [str(line) for line in raw["negatives"]]
    chatter = chatterbot_lines()
    negatives = handwritten + chatter
    sources = {"positives": len(positives), "templates": len(raw["positive_templates"]), "negatives_handwritten": len(handwritten), "negatives_chatterbot": len(chatter)}
    return Corpus(tuple(positives), tuple(negatives), sources, tuple(groups))


def _matrix(texts: list[str], spec: ClassifierSpec):  # noqa: ANN202 - scipy.sparse.csr_matrix
    """Rows of n-gram counts scaled by 1/sqrt(total n-grams), exactly as the guard computes them."""
    from scipy.sparse import csr_matrix

    indptr = [0]
    indices: list[np.ndarray] = []
    values: list[np.ndarray] = []
    for text in texts:
        buckets = ngram_buckets(canonicalize(text).text, spec.ngram_min, spec.ngram_max, spec.bits)
        indices.append(buckets.astype(np.int64))
        values.append(np.full(len(buckets), 1.0 / np.sqrt(max(1, len(buckets))), dtype=np.float64))
        indptr.append(indptr[-1] + len(buckets))
    matrix = csr_matrix((np.concatenate(values), np.concatenate(indices), np.array(indptr)), shape=(len(texts), 1 << spec.bits))
    matrix.sum_duplicates()  # repeated n-grams become counts
    return matrix


def train_classifier(
    base: RuleSet,
    *,
    seed: int = 0,
    c: float = 8.0,
    holdout: float = 0.2,
    extra_positives: Sequence[str] = (),
    extra_negatives: Sequence[str] = (),
    version: str | None = None,
) -> tuple[RuleSet, dict[str, Any]]:
    """A new version of ``base`` carrying a freshly trained classifier, and the training report.

    ``extra_positives`` (attacks mined by the evolution loop) join the training
    side only; ``extra_negatives`` (the benign mining corpus: the company's own
    legitimate traffic) teach it that an ordinary invoice is not an attack.
    """
    from sklearn.linear_model import LogisticRegression

    corpus = load_corpus(seed)
    extra = list(dict.fromkeys(extra_positives))
    negatives = corpus.negatives + tuple(dict.fromkeys(extra_negatives))
    sources = {**corpus.sources, "positives_mined": len(extra), "negatives_extra": len(negatives) - len(corpus.negatives)}
    corpus = Corpus(corpus.positives + tuple(extra), negatives, sources, corpus.positive_groups + tuple([-1] * len(extra)))
    texts = list(corpus.positives) + list(corpus.negatives)
    labels = np.array([1] * len(corpus.positives) + [0] * len(corpus.negatives))
    # Hold out whole templates (not single renderings) so the report measures generalisation.
    rng = np.random.default_rng(seed)
    templates = np.unique([g for g in corpus.positive_groups if g >= 0])
    held_templates = set(rng.choice(templates, size=max(1, int(len(templates) * holdout)), replace=False).tolist())
    held_positive = np.array([g in held_templates for g in corpus.positive_groups])
    held_negative = rng.random(len(corpus.negatives)) < holdout
    held = np.concatenate([held_positive, held_negative])
    train_idx, test_idx = np.flatnonzero(~held), np.flatnonzero(held)
    shape = ClassifierSpec()
    x = _matrix(texts, shape)
    model = LogisticRegression(C=c, solver="liblinear", class_weight="balanced", random_state=seed, max_iter=1000)
    model.fit(x[train_idx], labels[train_idx])
    probabilities = model.predict_proba(x[test_idx])[:, 1]
    truth = labels[test_idx]

    def rates(threshold: float) -> dict[str, float]:
        predicted = probabilities >= threshold
        positives = max(1, int(truth.sum()))
        negatives = max(1, int((1 - truth).sum()))
        return {"recall": float((predicted & (truth == 1)).sum() / positives), "fpr": float((predicted & (truth == 0)).sum() / negatives)}

    thresholds = base.thresholds
    weights = model.coef_[0].astype(np.float32)
    keep = np.flatnonzero(np.abs(weights) > 1e-4).astype(np.uint32)
    report: dict[str, Any] = {
        "kind": KIND,
        "seed": seed,
        "C": c,
        "data": corpus.sources,
        "train": int(len(train_idx)),
        "holdout": int(len(test_idx)),
        "holdout_positives": int(truth.sum()),
        "holdout_negatives": int((1 - truth).sum()),
        "holdout_templates": len(held_templates),
        "at_flag": rates(thresholds.flag),
        "at_block": rates(thresholds.block),
        "nonzero_weights": int(len(keep)),
    }
    spec = ClassifierSpec(bias=float(model.intercept_[0]), indices=pack(keep, "<u4"), weights=pack(weights[keep], "<f4"), training=report)
    # Exemplars of the optional semantic stage: a deterministic sample of canonical positives.
    exemplar_rng = random.Random(seed)
    exemplars = sorted({canonicalize(t).text for t in exemplar_rng.sample(list(corpus.positives), min(SEMANTIC_EXEMPLARS, len(corpus.positives)))})
    semantic = (base.semantic or SemanticSpec()).model_copy(update={"exemplars": tuple(exemplars)})
    version = version or (str(int(base.version) + 1) if base.version.isdigit() else f"{base.version}+clf")
    trained = base.model_copy(update={"classifier": spec, "semantic": semantic, "version": version, "parent": base.version, "hash": None}).sealed()
    return trained, report


def write_ruleset(ruleset: RuleSet, path: Path) -> None:
    path.write_text(ruleset.to_json(), "utf-8")
