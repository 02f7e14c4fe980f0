"""Reproducible training of the input guard's learned stage.

Data: the real corpus (``evolve.corpus``: pinned registry sources split by
source, plus the project's own templated attacks — ``evolve/data/
classifier_corpus.yaml`` — company traffic and hard negatives), or, where
none is built, the small committed sample. Texts are canonicalised and cut
into windows exactly as the guard does before featurisation. C is chosen and
the thresholds calibrated on the validation sources. A fixed seed fixes the
solver, so the same inputs give the same weights. The result is a new
rule-set version carrying the model.
"""

from __future__ import annotations

import itertools
import logging
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from evolve.corpus.records import LabelledText
from kosmoi.stats import wilson
from targets.canonical import canonicalize
from targets.classifier import WINDOW_KIND, ClassifierSpec, features, pack, windows
from targets.rules import RuleSet
from targets.semantic import SemanticSpec

log = logging.getLogger(__name__)

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
    for key, base_index in (("multilingual_positives", 1000), ("indirect_templates", 2000), ("code_injection_templates", 3000), ("indirect_more", 4000)):
        for offset, template in enumerate(raw.get(key, [])):
            rendered = _render(template, slots, rng) if "{task}" in template else [template.replace("{{", "{").replace("}}", "}")]
            positives.extend(rendered)
            groups.extend([len(raw["positive_templates"]) + base_index + offset] * len(rendered))
    directive_slots = {name: list(values) for name, values in raw.get("tool_directive_slots", {}).items()}
    for offset, template in enumerate(raw.get("tool_directives", [])):
        rendered = _render(template, directive_slots, rng)
        positives.extend(rendered)
        groups.extend([len(raw["positive_templates"]) + 9000 + offset] * len(rendered))
    for offset, line in enumerate(raw.get("tool_marker_directives", [])):
        positives.append(str(line))
        groups.append(len(raw["positive_templates"]) + 9500 + offset)
    for language_index, (language, spec) in enumerate(sorted(raw.get("localised_attacks", {}).items())):
        for offset, template in enumerate(spec["templates"]):
            try:
                rendered = _render(template, {"task": list(spec["tasks"])}, rng)
            except (KeyError, IndexError) as exc:
                raise ValueError(f"classifier_corpus.yaml: localised_attacks.{language}: template {template!r} names an unknown slot ({exc})") from None
            positives.extend(rendered)
            groups.extend([len(raw["positive_templates"]) + 5000 + 100 * language_index + offset] * len(rendered))
    handwritten = [str(line) for line in (*raw["negatives"], *raw.get("benign_instructions", []), *raw.get("localised_benign", []), *raw.get("localised_everyday", []), *raw.get("tool_directive_benign", []))]
    chatter = chatterbot_lines()
    negatives = handwritten + chatter
    sources = {"positives": len(positives), "templates": len(raw["positive_templates"]), "negatives_handwritten": len(handwritten), "negatives_chatterbot": len(chatter)}
    return Corpus(tuple(positives), tuple(negatives), sources, tuple(groups))


WINDOW = 256
C_GRID = (2.0, 8.0, 32.0)


@dataclass(frozen=True)
class TrainingCorpus:
    """What the learned stage trains on (train split) and is calibrated on (validation split)."""

    train: tuple[LabelledText, ...]
    validation: tuple[LabelledText, ...]
    origin: str  # "corpus <dir>" or "committed sample"
    _matrices: dict = field(default_factory=dict, compare=False, repr=False)  # (split, featurisation) -> windows matrix

    def matrix(self, split: str, spec: ClassifierSpec):
        """The window matrix of the train or validation rows, featurised once per corpus (evolution retrains on it every generation)."""
        key = (split, spec.window, spec.bits, spec.words, spec.ngram_min, spec.ngram_max)
        if key not in self._matrices:
            rows = self.train if split == "train" else self.validation
            self._matrices[key] = _window_matrix([r.text for r in rows], spec)
        return self._matrices[key]

    def describe(self) -> dict[str, Any]:
        def count(rows: tuple[LabelledText, ...]) -> dict[str, int]:
            return {"attack": sum(r.is_attack for r in rows), "benign": sum(not r.is_attack for r in rows), "sources": len({r.source for r in rows})}

        return {"origin": self.origin, "train": count(self.train), "validation": count(self.validation)}


def training_corpus(root: Path | None = None) -> TrainingCorpus:
    """The built corpus (``immune data build``) if there is one, else the committed sample (with a warning)."""
    from evolve.corpus.build import load_split_or_sample

    train, origin = load_split_or_sample("train", root)
    validation, _ = load_split_or_sample("validation", root)
    if origin == "committed sample":
        log.warning("no corpus built (run `immune data build`); training the classifier on the small committed sample")
    return TrainingCorpus(tuple(train), tuple(validation), origin)


def spec_shape() -> ClassifierSpec:
    """The featurisation of the learned stage (kind /3)."""
    return ClassifierSpec(kind="ngram-window-logreg/3", words=True, window=WINDOW, bits=20)


def _window_matrix(texts: Sequence[str], spec: ClassifierSpec):
    """One row per window of each canonical text: L2-normalised hashed counts, as the guard computes them."""
    from scipy.sparse import csr_matrix
    from sklearn.preprocessing import normalize

    indptr = [0]
    indices: list[np.ndarray] = []
    values: list[np.ndarray] = []
    owner: list[int] = []
    for index, text in enumerate(texts):
        for window in windows(canonicalize(text).text, spec.window):
            found = features(window, spec)
            if len(found) == 0:
                continue
            indices.append(found.astype(np.int64))
            values.append(np.ones(len(found), dtype=np.float64))
            indptr.append(indptr[-1] + len(found))
            owner.append(index)
    if not indices:
        return csr_matrix((0, 1 << spec.bits)), np.zeros(0, dtype=np.int64)
    matrix = csr_matrix((np.concatenate(values), np.concatenate(indices), np.array(indptr)), shape=(len(owner), 1 << spec.bits))
    matrix.sum_duplicates()
    return normalize(matrix, norm="l2", copy=False), np.array(owner, dtype=np.int64)


def text_logits(model, matrix, owner: np.ndarray, n: int) -> np.ndarray:
    """The largest window logit of each text."""
    window_logits = model.decision_function(matrix) if matrix.shape[0] else np.zeros(0)
    out = np.full(n, -60.0)
    np.maximum.at(out, owner, window_logits)
    return out


def _quantile(values: np.ndarray, q: float) -> float:
    return float(np.quantile(values, q)) if len(values) else 0.0


def calibrate(benign_logits: np.ndarray, flag_fpr: float, block_fpr: float, thresholds) -> tuple[float, float]:
    """Platt (scale, shift) putting the flag/block thresholds at the given benign false-positive rates."""
    low, high = _quantile(benign_logits, 1 - flag_fpr), _quantile(benign_logits, 1 - block_fpr)
    z_flag = math.log(thresholds.flag / (1 - thresholds.flag))
    z_block = math.log(thresholds.block / (1 - min(thresholds.block, 0.999999)))
    if high - low < 1e-6:
        high = low + 1.0
    scale = (z_block - z_flag) / (high - low)
    return scale, z_flag - scale * low


PRUNE_BELOW = 0.01  # weights smaller than this are dropped before calibration (keeps ~91 % of the L1 mass)
FPR_BUDGET = 0.01  # the bound on real benign traffic flagged or blocked
BLOCK_FPR = 0.001  # the classifier alone blocks at most this share of validation benign texts


def flag_fpr_for(benign_n: int, budget: float = FPR_BUDGET) -> float:
    """The validation FPR to flag at: the largest whose 95 % Wilson upper bound stays within ``budget``.

    With 2,879 validation benign texts that is about 0.6 %; a smaller
    validation split earns a stricter threshold, since its measured rate says less
    (never below twice the block rate, so that flag and block stay apart).
    """
    best = 2 * BLOCK_FPR
    for k in range(benign_n + 1):
        if wilson(k, benign_n)[1] > budget:
            break
        best = max(best, k / benign_n)
    return best


MIL_ROUNDS = 1  # at most this many refits on each attack's highest-scoring windows (multiple-instance learning), chosen on validation
MIL_KEEP = 2  # windows of an attack text kept as positives after a round


def _balanced_weights(owners: np.ndarray, y: np.ndarray, keep: np.ndarray, n_texts: int) -> np.ndarray:
    """Window weights: each text weighs the same over its kept windows; the classes weigh the same in total."""
    kept_per_text = np.bincount(owners[keep], minlength=n_texts).astype(np.float64)
    weight = np.where(keep, 1.0 / np.maximum(kept_per_text[owners], 1.0), 0.0)
    for label in (0, 1):
        mask = (y == label) & keep
        if mask.any():
            weight[mask] *= int(keep.sum()) / (2.0 * weight[mask].sum())
    return weight


def _attack_windows_to_keep(logits: np.ndarray, owners: np.ndarray, y: np.ndarray, top: int) -> np.ndarray:
    """Every benign window, and the ``top`` highest-scoring windows of each attack text.

    An attack's label belongs to the text, not to each window: a long jailbreak is mostly story or
    filler, and teaching the model that such prose is an attack is what flags long harmless texts.
    The guard judges a text by its worst window, so the positives to learn from are those windows.
    """
    order = np.lexsort((-logits, owners))
    sorted_owners = owners[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_owners)) + 1]
    run_start = np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order)) - run_start
    return (y == 0) | (rank < top)


def train_classifier(
    base: RuleSet,
    *,
    seed: int = 0,
    c: float | None = None,
    extra_positives: Sequence[str] = (),
    extra_negatives: Sequence[str] = (),
    version: str | None = None,
    corpus: TrainingCorpus | None = None,
    mil_rounds: int | None = None,
) -> tuple[RuleSet, dict[str, Any]]:
    """A new version of ``base`` carrying a freshly trained learned stage, and the training report.

    Trains on the corpus's train split (real prompts and attacks from the
    pinned sources, plus the project's own templates and traffic), picks C
    and calibrates the thresholds on the validation split (sources never
    trained on). ``extra_positives`` (attacks mined by the evolution loop)
    and ``extra_negatives`` (the company's legitimate traffic) join the
    training side only.
    """
    from scipy.sparse import vstack
    from sklearn.base import clone
    from sklearn.linear_model import LogisticRegression

    corpus = corpus or training_corpus()
    spec = spec_shape()
    x_base, owner_base = corpus.matrix("train", spec)
    labels_base = np.array([r.is_attack for r in corpus.train], dtype=np.int64)
    extras = [(t, 1) for t in dict.fromkeys(extra_positives)] + [(t, 0) for t in dict.fromkeys(extra_negatives)]
    x_extra, owner_extra = _window_matrix([t for t, _ in extras], spec)
    labels_extra = np.array([y for _, y in extras], dtype=np.int64)
    x = vstack([x_base, x_extra]).tocsr() if x_extra.shape[0] else x_base
    owners = np.concatenate([owner_base, owner_extra + len(corpus.train)])
    text_labels = np.concatenate([labels_base, labels_extra])
    y = text_labels[owners]
    weight = _balanced_weights(owners, y, np.ones(len(y), dtype=bool), len(text_labels))
    x_val, owner_val = corpus.matrix("validation", spec)
    val_labels = np.array([r.is_attack for r in corpus.validation], dtype=bool)

    def fits(c_value: float, rounds: int) -> Iterator[tuple[int, Any]]:
        """The plain fit, then each multiple-instance refit (the guard scores a text by its worst window)."""
        model = LogisticRegression(C=c_value, solver="liblinear", random_state=seed, max_iter=2000).fit(x, y, sample_weight=weight)
        yield 0, model
        for round_ in range(1, rounds + 1):
            keep = _attack_windows_to_keep(model.decision_function(x), owners, y, MIL_KEEP)
            model = clone(model).fit(x, y, sample_weight=_balanced_weights(owners, y, keep, len(text_labels)))
            yield round_, model

    def recall_at(model, fpr: float) -> float:
        logits = text_logits(model, x_val, owner_val, len(corpus.validation))
        threshold = _quantile(logits[~val_labels], 1 - fpr)
        return float((logits[val_labels] > threshold).mean()) if val_labels.any() else 0.0

    grid = (c,) if c is not None else C_GRID
    rounds_grid = (mil_rounds,) if mil_rounds is not None else tuple(range(MIL_ROUNDS + 1))
    searched = len(grid) * len(rounds_grid) > 1
    scored = []
    for c_value in grid:
        for round_, candidate in fits(c_value, max(rounds_grid)):
            if round_ in rounds_grid:
                scored.append((recall_at(candidate, 0.01) if searched else 0.0, -c_value, -round_, candidate))
    # Ties go to the stronger regularisation and to fewer refits.
    _, neg_c, neg_rounds, model = max(scored, key=lambda item: (item[0], item[1], item[2]))
    chosen_c, chosen_rounds = -neg_c, -neg_rounds
    model.coef_[np.abs(model.coef_) < PRUNE_BELOW] = 0.0  # tiny weights: a quarter of the file, nothing of the verdicts
    logits = text_logits(model, x_val, owner_val, len(corpus.validation))
    thresholds = base.thresholds
    flag_fpr = flag_fpr_for(int((~val_labels).sum()))
    scale, shift = calibrate(logits[~val_labels], flag_fpr, BLOCK_FPR, thresholds)
    probabilities = 1.0 / (1.0 + np.exp(-np.clip(scale * logits + shift, -60, 60)))

    def rates(threshold: float) -> dict[str, float]:
        flagged = probabilities >= threshold
        return {
            "recall": float(flagged[val_labels].mean()) if val_labels.any() else 0.0,
            "fpr": float(flagged[~val_labels].mean()) if (~val_labels).any() else 0.0,
        }

    weights = model.coef_[0].astype(np.float32)
    keep = np.flatnonzero(weights != 0).astype(np.uint32)
    report: dict[str, Any] = {
        "kind": WINDOW_KIND,
        "seed": seed,
        "C": chosen_c,
        "mil_rounds": chosen_rounds,
        "C_grid": {f"{-nc}/mil{-nr}": round(r, 4) for r, nc, nr, _ in scored} if searched else {},
        "data": {**corpus.describe(), "positives_mined": sum(1 for _, y_ in extras if y_), "negatives_extra": sum(1 for _, y_ in extras if not y_)},
        "train_windows": int(x.shape[0]),
        "validation": {"texts": len(corpus.validation), "attacks": int(val_labels.sum())},
        "calibration": {"flag_fpr_target": flag_fpr, "block_fpr_target": BLOCK_FPR, "scale": scale, "shift": shift},
        "at_flag": rates(thresholds.flag),
        "at_block": rates(thresholds.block),
        "nonzero_weights": len(keep),
    }
    trained_spec = spec.model_copy(
        update={"bias": float(model.intercept_[0]), "indices": pack(keep, "<u4"), "weights": pack(weights[keep], "<f4"), "scale": scale, "shift": shift, "training": report}
    )
    positives = [r.text for r in corpus.train if r.is_attack] + [t for t, y_ in extras if y_]
    exemplar_rng = random.Random(seed)
    exemplars = sorted({canonicalize(t).text[:2000] for t in exemplar_rng.sample(positives, min(SEMANTIC_EXEMPLARS, len(positives)))})
    semantic = (base.semantic or SemanticSpec()).model_copy(update={"exemplars": tuple(exemplars)})
    version = version or (str(int(base.version) + 1) if base.version.isdigit() else f"{base.version}+clf")
    trained = base.model_copy(update={"classifier": trained_spec, "semantic": semantic, "version": version, "parent": base.version, "hash": None}).sealed()
    return trained, report


def write_ruleset(ruleset: RuleSet, path: Path) -> None:
    path.write_text(ruleset.to_json(), "utf-8")
