"""The learned stage of the input guard: hashed n-grams + a linear model, judged by windows.

Two kinds share the featurisation:

- ``char-ngram-logreg/2`` (the first model): character 3- to 5-grams of the
  canonical text; long texts judged on their first and last 2 KB.
- ``ngram-window-logreg/3``: character 3- to 5-grams *and* word unigrams and
  bigrams, computed per window of ``window`` characters (overlapping by a
  quarter); the text's logit is the largest window logit. A window is scored
  on its own, so length, repetition, code or markdown add no evidence: a
  harmless sentence scores the same alone or repeated ten times. A Platt
  calibration (``scale``, ``shift``, fitted on validation sources) maps the
  logit to a probability, so the rule set's flag/block thresholds correspond
  to measured false-positive rates.

Every feature is packed into a 64-bit integer tagged with its kind and hashed
into ``2**bits`` buckets by multiply-shift (Fibonacci) hashing — identical on
every machine and process. Feature values are counts scaled by
``1/sqrt(total features)`` (kind /2) or by the counts' L2 norm (kind /3, so
that repetition inside a window is no evidence either); the model is
``sigmoid(bias + w·x)``.

The weights live inside the rule set (``RuleSet.classifier``) so a rule-set
version pins its model; ``evolve.classifier_training`` trains them
reproducibly from the data the project ships.
"""

from __future__ import annotations

import base64
import math
import re
import zlib
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

KIND: Literal["char-ngram-logreg/2"] = "char-ngram-logreg/2"
WINDOW_KIND = "ngram-window-logreg/3"
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
HEAD_TAIL_BYTES = 2048  # kind /2, long texts: the classifier reads the first and last 2 KB (rules read everything)
MAX_WINDOWS = 64  # kind /3: at most this many windows are scored (evenly spread over a longer text)
_WORD_TAG = np.uint64(0x11 << 56)
_BIGRAM_TAG = np.uint64(0x12 << 56)
_LOW56 = np.uint64((1 << 56) - 1)


class ClassifierSpec(BaseModel):
    """Serialised model, stored in a rule set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["char-ngram-logreg/2", "ngram-window-logreg/3"] = KIND
    ngram_min: int = Field(default=3, ge=1, le=7)
    ngram_max: int = Field(default=5, ge=1, le=7)
    bits: int = Field(default=18, ge=10, le=24, description="2**bits hash buckets")
    words: bool = Field(default=False, description="kind /3: word unigrams and bigrams as features too")
    window: int = Field(default=0, ge=0, le=65536, description="kind /3: characters per window (0: the whole text)")
    scale: float = Field(default=1.0, gt=0.0, description="Platt calibration: p = sigmoid(scale * logit + shift)")
    shift: float = 0.0
    bias: float = 0.0
    indices: str = ""  # base64(zlib(uint32 little-endian bucket indices))
    weights: str = ""  # base64(zlib(float32 little-endian weights))
    training: dict[str, object] = Field(default_factory=dict)  # provenance: data, counts, metrics

    @model_serializer(mode="wrap")
    def _omit_unset_v3_fields(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Fields added with kind /3 are left out at their defaults, so a kind /2 rule set keeps its hash."""
        data: dict[str, Any] = handler(self)
        for name, default in _V3_DEFAULTS.items():
            if data.get(name) == default:
                data.pop(name)
        return data


_V3_DEFAULTS: dict[str, object] = {"words": False, "window": 0, "scale": 1.0, "shift": 0.0}


def pack(array: np.ndarray, dtype: str) -> str:
    return base64.b64encode(zlib.compress(np.ascontiguousarray(array, dtype=dtype).tobytes(), 9)).decode("ascii")


def unpack(blob: str, dtype: str) -> np.ndarray:
    return np.frombuffer(zlib.decompress(base64.b64decode(blob)), dtype=dtype) if blob else np.zeros(0, dtype=dtype)


def ngram_buckets(text: str, ngram_min: int, ngram_max: int, bits: int) -> np.ndarray:
    """Hashed bucket of every n-gram of ``text`` (with repeats; uint64)."""
    data = np.frombuffer((" " + text + " ").encode("utf-8", "replace"), dtype=np.uint8).astype(np.uint64)
    parts: list[np.ndarray] = []
    gram = data
    shift = np.uint64(64 - bits)
    with np.errstate(over="ignore"):
        for n in range(2, ngram_max + 1):
            if len(data) < n:
                break
            gram = (gram[:-1] << np.uint64(8)) | data[n - 1 :]  # the n-grams, packed big-endian
            if n >= ngram_min:
                parts.append(((gram | np.uint64(n << 56)) * _GOLDEN) >> shift)
        if ngram_min <= 1:
            parts.append(((data | np.uint64(1 << 56)) * _GOLDEN) >> shift)
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64)


_WORD_BYTES = re.compile(rb"[0-9A-Za-z_\x80-\xff]+")  # ASCII word characters and whole UTF-8 sequences


def word_buckets(text: str, bits: int) -> np.ndarray:
    """Hashed bucket of every word and word bigram of ``text`` (words: runs of ASCII word bytes or UTF-8 letters)."""
    words = _WORD_BYTES.findall(text.encode("utf-8", "replace"))
    if not words:
        return np.zeros(0, dtype=np.uint64)
    crc = zlib.crc32
    ids = np.array([crc(w) | (len(w) << 32) for w in words], dtype=np.uint64)
    shift = np.uint64(64 - bits)
    with np.errstate(over="ignore"):
        unigrams = ((ids | _WORD_TAG) * _GOLDEN) >> shift
        if len(ids) < 2:
            return unigrams
        pairs = (((ids[:-1] * _GOLDEN) ^ ids[1:]) & _LOW56) | _BIGRAM_TAG
        return np.concatenate([unigrams, (pairs * _GOLDEN) >> shift])


def features(text: str, spec: ClassifierSpec) -> np.ndarray:
    """Every hashed feature of one window (char n-grams, and words when the spec asks)."""
    found = ngram_buckets(text, spec.ngram_min, spec.ngram_max, spec.bits)
    if spec.words:
        found = np.concatenate([found, word_buckets(text, spec.bits)])
    return found


def windows(text: str, size: int) -> list[str]:
    """Overlapping windows of ``size`` characters (stride 3/4 of it), at most MAX_WINDOWS, cut at spaces where possible."""
    if size <= 0 or len(text) <= size:
        return [text]
    stride = max(1, size * 3 // 4)
    starts = list(range(0, len(text) - size + stride, stride))
    if len(starts) > MAX_WINDOWS:
        step = len(starts) / MAX_WINDOWS
        starts = [starts[int(i * step)] for i in range(MAX_WINDOWS)]
    out = []
    for start in starts:
        if start:
            space = text.find(" ", start, start + 32)
            start = space + 1 if space >= 0 else start
        out.append(text[start : start + size])
    return out


class Classifier:
    """Inference with a :class:`ClassifierSpec`."""

    def __init__(self, spec: ClassifierSpec) -> None:
        self.spec = spec
        buckets = 1 << spec.bits
        dense = np.zeros(buckets, dtype=np.float32)
        indices = unpack(spec.indices, "<u4")
        weights = unpack(spec.weights, "<f4")
        if len(indices) != len(weights) or (len(indices) and int(indices.max()) >= buckets):
            raise ValueError("classifier weights are corrupt (index/weight mismatch)")
        dense[indices] = weights
        self._weights = dense
        self._bias = float(spec.bias)

    @classmethod
    def from_spec(cls, spec: ClassifierSpec) -> Classifier:
        return cls(spec)

    def _logit(self, text: str) -> float:
        found = features(text, self.spec)
        if len(found) == 0:
            return self._bias
        if self.spec.kind == WINDOW_KIND:  # L2-normalised counts: repeating a window's content changes nothing
            found.sort()
            changes = np.flatnonzero(found[1:] != found[:-1])
            ends = np.empty(len(changes) + 2, dtype=np.int64)
            ends[0], ends[1:-1], ends[-1] = -1, changes, len(found) - 1
            runs = ends[1:] - ends[:-1]  # how often each distinct feature occurs
            return self._bias + float(self._weights[found].sum()) / math.sqrt(float(runs @ runs))
        return self._bias + float(self._weights[found].sum()) / math.sqrt(len(found))

    def logit(self, canonical_text: str) -> float:
        """The uncalibrated score: the largest window logit (kind /3) or head/tail logit (kind /2)."""
        if self.spec.kind == WINDOW_KIND:
            return max(self._logit(window) for window in windows(canonical_text, self.spec.window))
        if len(canonical_text) > 2 * HEAD_TAIL_BYTES:
            return max(self._logit(canonical_text[:HEAD_TAIL_BYTES]), self._logit(canonical_text[-HEAD_TAIL_BYTES:]))
        return self._logit(canonical_text)

    def probability(self, canonical_text: str) -> float:
        """P(attack) for a canonical text (calibrated for kind /3)."""
        z = self.spec.scale * self.logit(canonical_text) + self.spec.shift
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))
