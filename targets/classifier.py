"""The light classifier of the input guard: hashed character n-grams + logistic regression.

Features are the distinct character 3- to 5-grams of the canonical text
(padded with spaces), hashed into ``buckets`` with a fixed 64-bit
multiply-xor hash (identical on every machine and process), weighted
``1/sqrt(k)`` for ``k`` distinct n-grams. The model is ``sigmoid(bias + w·x)``.
Hashing is vectorised with numpy, so a 1 KB text costs tens of microseconds.

The weights live inside the rule set (``RuleSet.classifier``) so a rule-set
version pins its model; ``evolve.classifier_training`` trains them
reproducibly from the data the project ships.
"""

from __future__ import annotations

import base64
import math
import zlib
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

KIND = "char-ngram-logreg/1"
_PRIME = np.uint64(0x100000001B3)
_MIX = np.uint64(0x9E3779B97F4A7C15)
HEAD_TAIL_BYTES = 2048  # long texts: the classifier reads the first and last 2 KB (rules read everything)


class ClassifierSpec(BaseModel):
    """Serialised model, stored in a rule set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["char-ngram-logreg/1"] = KIND
    ngram_min: int = Field(default=3, ge=1, le=8)
    ngram_max: int = Field(default=5, ge=1, le=8)
    buckets: int = Field(default=1 << 18, ge=1024, le=1 << 24)
    bias: float = 0.0
    indices: str = ""  # base64(zlib(uint32 little-endian bucket indices))
    weights: str = ""  # base64(zlib(float32 little-endian weights))
    training: dict[str, object] = Field(default_factory=dict)  # provenance: data, counts, metrics


def pack(array: np.ndarray, dtype: str) -> str:
    return base64.b64encode(zlib.compress(np.ascontiguousarray(array, dtype=dtype).tobytes(), 9)).decode("ascii")


def unpack(blob: str, dtype: str) -> np.ndarray:
    return np.frombuffer(zlib.decompress(base64.b64decode(blob)), dtype=dtype) if blob else np.zeros(0, dtype=dtype)


def ngram_buckets(text: str, ngram_min: int, ngram_max: int, buckets: int) -> np.ndarray:
    """Distinct hashed n-gram buckets of ``text`` (sorted uint32)."""
    raw = (" " + text + " ").encode("utf-8", "replace")
    data = np.frombuffer(raw, dtype=np.uint8).astype(np.uint64)
    parts = []
    size = len(data)
    with np.errstate(over="ignore"):
        for n in range(ngram_min, ngram_max + 1):
            if size < n:
                break
            h = np.full(size - n + 1, np.uint64(n), dtype=np.uint64)
            for k in range(n):
                h = h * _PRIME + data[k : size - n + 1 + k]
            h ^= h >> np.uint64(29)
            h *= _MIX
            h ^= h >> np.uint64(32)
            parts.append(h % np.uint64(buckets))
    if not parts:
        return np.zeros(0, dtype=np.uint32)
    return np.unique(np.concatenate(parts)).astype(np.uint32)


class Classifier:
    """Inference with a :class:`ClassifierSpec`."""

    def __init__(self, spec: ClassifierSpec) -> None:
        self.spec = spec
        dense = np.zeros(spec.buckets, dtype=np.float32)
        indices = unpack(spec.indices, "<u4")
        weights = unpack(spec.weights, "<f4")
        if len(indices) != len(weights) or (len(indices) and int(indices.max()) >= spec.buckets):
            raise ValueError("classifier weights are corrupt (index/weight mismatch)")
        dense[indices] = weights
        self._weights = dense
        self._bias = float(spec.bias)

    @classmethod
    def from_spec(cls, spec: ClassifierSpec) -> Classifier:
        return cls(spec)

    def _logit(self, text: str) -> float:
        spec = self.spec
        features = ngram_buckets(text, spec.ngram_min, spec.ngram_max, spec.buckets)
        if len(features) == 0:
            return self._bias
        return self._bias + float(self._weights[features].sum()) / math.sqrt(len(features))

    def probability(self, canonical_text: str) -> float:
        """P(attack) for a canonical text."""
        if len(canonical_text) > 2 * HEAD_TAIL_BYTES:
            logit = max(self._logit(canonical_text[:HEAD_TAIL_BYTES]), self._logit(canonical_text[-HEAD_TAIL_BYTES:]))
        else:
            logit = self._logit(canonical_text)
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, logit))))
