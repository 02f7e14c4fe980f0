"""The light classifier of the input guard: hashed character n-grams + logistic regression.

Features are the character 3- to 5-grams of the canonical text (padded with
spaces), each packed into a 64-bit integer with its length as a tag and hashed
into ``2**bits`` buckets by multiply-shift (Fibonacci) hashing — identical on
every machine and process. Feature values are n-gram counts scaled by
``1/sqrt(total n-grams)``; the model is ``sigmoid(bias + w·x)``. Everything
is vectorised with numpy: ~15 µs for 100 bytes, ~25 µs per kilobyte.

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

KIND = "char-ngram-logreg/2"
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
HEAD_TAIL_BYTES = 2048  # long texts: the classifier reads the first and last 2 KB (rules read everything)


class ClassifierSpec(BaseModel):
    """Serialised model, stored in a rule set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["char-ngram-logreg/2"] = KIND
    ngram_min: int = Field(default=3, ge=1, le=7)
    ngram_max: int = Field(default=5, ge=1, le=7)
    bits: int = Field(default=18, ge=10, le=24, description="2**bits hash buckets")
    bias: float = 0.0
    indices: str = ""  # base64(zlib(uint32 little-endian bucket indices))
    weights: str = ""  # base64(zlib(float32 little-endian weights))
    training: dict[str, object] = Field(default_factory=dict)  # provenance: data, counts, metrics


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
        spec = self.spec
        features = ngram_buckets(text, spec.ngram_min, spec.ngram_max, spec.bits)
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
