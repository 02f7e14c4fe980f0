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
import itertools
import math
import re
import threading
import zlib
from collections.abc import Sequence
from typing import Any, Literal, cast

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

from targets import classifier_jit

KIND: Literal["char-ngram-logreg/2"] = "char-ngram-logreg/2"
WINDOW_KIND = "ngram-window-logreg/3"
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
HEAD_TAIL_BYTES = 2048  # kind /2, long texts: the classifier reads the first and last 2 KB (rules read everything)
MAX_WINDOWS = 64  # kind /3: at most this many windows are scored (evenly spread over a longer text)
_WORD_TAG = np.uint64(0x11 << 56)
_BIGRAM_TAG = np.uint64(0x12 << 56)
_LOW56 = np.uint64((1 << 56) - 1)
_SEPARATOR = b" \xc0 "  # between windows in a batch buffer (0xC0 never occurs in UTF-8)
_SEPARATOR_WORD = b"\xc0"
_BATCH_CHARS = 256 * 1024  # a batch's windows hold about this many characters (bounded memory per kernel call)
_BATCH_WINDOWS = 4096  # and at most this many windows


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
_WORD_BYTE_TABLE = np.array([_WORD_BYTES.fullmatch(bytes([byte])) is not None for byte in range(256)], dtype=np.bool_)  # the same, for the kernel


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
        self.compiled = classifier_jit.AVAILABLE  # batches go through the compiled kernel (False: numpy)
        self._scratch = threading.local()  # the kernel's per-bucket flags, one array per thread

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_scratch"]  # per-thread scratch space is made anew where the classifier is unpickled
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._scratch = threading.local()

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

    def logits(self, canonical_texts: Sequence[str]) -> np.ndarray:
        """:meth:`logit` of many texts at once (float64); kind /3 scores whole batches of windows.

        The compiled kernel (:mod:`targets.classifier_jit`) or, without numba, a vectorised numpy batch:
        the same features, counts and norms as :meth:`logit`, with sums in float64 instead of float32, so
        a logit may differ from it in the seventh significant digit (the verdicts over the corpus are
        identical, ``tests/test_batch_scan.py``). A text's logit does not depend on its batch.
        """
        if self.spec.kind != WINDOW_KIND:
            return np.array([self.logit(text) for text in canonical_texts], dtype=np.float64)
        out = np.empty(len(canonical_texts), dtype=np.float64)
        owners: list[int] = []
        pieces: list[str] = []
        budget = 0
        for index, text in enumerate(canonical_texts):
            for window in windows(text, self.spec.window):
                pieces.append(window)
                owners.append(index)
                budget += len(window)
            if budget >= _BATCH_CHARS or len(pieces) >= _BATCH_WINDOWS - MAX_WINDOWS:
                self._text_logits(pieces, owners, out)
                pieces, owners, budget = [], [], 0
        if pieces:
            self._text_logits(pieces, owners, out)
        return out

    def _text_logits(self, pieces: list[str], owners: list[int], out: np.ndarray) -> None:
        """Window logits of one batch, reduced to each owner text's largest (written to ``out``)."""
        window_logits = self._compiled_window_logits(pieces) if self.compiled else self._window_logits(pieces)
        if owners[0] == owners[-1]:  # one text (the one-text path): no reduction needed
            out[owners[0]] = window_logits.max()
            return
        owner = np.asarray(owners, dtype=np.int64)
        starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
        out[owner[starts]] = np.maximum.reduceat(window_logits, starts)

    def _compiled_window_logits(self, pieces: list[str]) -> np.ndarray:
        """``bias + w·x`` per window, by the compiled kernel (:mod:`targets.classifier_jit`)."""
        spec = self.spec
        encoded = [(" " + piece + " ").encode("utf-8", "replace") for piece in pieces]
        offsets = np.fromiter(itertools.accumulate(map(len, encoded), initial=0), dtype=np.int64, count=len(encoded) + 1)
        data = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        kernel = classifier_jit.window_logits_kernel()
        seen = getattr(self._scratch, "seen", None)
        if seen is None:  # one per thread (the kernel runs without the GIL), reused: a fresh 1 MB per call cost ~10 µs in page faults
            seen = self._scratch.seen = np.zeros(len(self._weights), dtype=np.bool_)
        return cast(np.ndarray, kernel(data, offsets, self._weights, classifier_jit.CRC_TABLE, _WORD_BYTE_TABLE, self._bias, spec.bits, spec.ngram_min, spec.ngram_max, spec.words, seen))

    def _window_logits(self, pieces: list[str]) -> np.ndarray:
        """``bias + w·x`` per window, x the window's L2-normalised feature counts (at most _BATCH_WINDOWS windows)."""
        spec = self.spec
        count = len(pieces)
        encoded = [(" " + piece + " ").encode("utf-8", "replace") for piece in pieces]
        # One buffer, windows apart by the separator b" \xc0 ": no n-gram may cross it, and as a word it is
        # one lone 0xC0 byte, which UTF-8 never holds, so it marks where each window's words end.
        joined = _SEPARATOR.join(encoded)
        lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=count)
        starts = np.zeros(count, dtype=np.int64)
        np.cumsum(lengths[:-1] + len(_SEPARATOR), out=starts[1:])
        data = np.frombuffer(joined, dtype=np.uint8).astype(np.uint64)
        size = len(data)
        # Each position's window and how many of its window's bytes remain from it (<= 0 on separator bytes).
        block = np.repeat(np.arange(count), lengths + len(_SEPARATOR))[:size]
        remaining = lengths[block] - (np.arange(size) - starts[block])
        window_of = block
        keys: list[np.ndarray] = []
        owners_of: list[np.ndarray] = []
        shift = np.uint64(64 - spec.bits)
        gram = data
        with np.errstate(over="ignore"):
            for n in range(2, spec.ngram_max + 1):
                if size < n:
                    break
                gram = (gram[:-1] << np.uint64(8)) | data[n - 1 :]
                if n >= spec.ngram_min:
                    valid = np.flatnonzero(remaining[: size - n + 1] >= n)
                    keys.append(((gram[valid] | np.uint64(n << 56)) * _GOLDEN) >> shift)
                    owners_of.append(window_of[valid])
            if spec.ngram_min <= 1:
                valid = np.flatnonzero(remaining >= 1)
                keys.append(((data[valid] | np.uint64(1 << 56)) * _GOLDEN) >> shift)
                owners_of.append(window_of[valid])
            if spec.words:
                words = _WORD_BYTES.findall(joined)
                crc = zlib.crc32
                ids = np.fromiter((crc(w) | (len(w) << 32) for w in words), dtype=np.uint64, count=len(words))
                boundary = np.fromiter((w == _SEPARATOR_WORD for w in words), dtype=bool, count=len(words))
                word_window = np.cumsum(boundary)
                real = np.flatnonzero(~boundary)
                keys.append(((ids[real] | _WORD_TAG) * _GOLDEN) >> shift)
                owners_of.append(word_window[real])
                pair = real[:-1][np.diff(real) == 1]  # consecutive words with no separator between them
                pairs = (((ids[pair] * _GOLDEN) ^ ids[pair + 1]) & _LOW56) | _BIGRAM_TAG
                keys.append((pairs * _GOLDEN) >> shift)
                owners_of.append(word_window[pair])
        bucket = np.concatenate(keys).astype(np.int64) if keys else np.zeros(0, np.int64)
        owner = np.concatenate(owners_of).astype(np.int64) if owners_of else np.zeros(0, np.int64)
        combined = np.sort((owner << spec.bits) | bucket)
        result = np.full(count, self._bias, dtype=np.float64)
        if len(combined) == 0:
            return result
        window = combined >> spec.bits
        weights = self._weights[combined & ((1 << spec.bits) - 1)].astype(np.float64)
        sums = np.bincount(window, weights=weights, minlength=count)
        run_ends = np.flatnonzero(np.r_[combined[1:] != combined[:-1], True])
        runs = np.diff(np.r_[-1, run_ends]).astype(np.float64)
        squares = np.bincount(window[run_ends], weights=runs * runs, minlength=count)
        has = squares > 0
        result[has] += sums[has] / np.sqrt(squares[has])
        return result

    def probabilities(self, canonical_texts: Sequence[str]) -> list[float]:
        """:meth:`probability` of many texts at once."""
        scale, shift = self.spec.scale, self.spec.shift
        return [_sigmoid(scale * z + shift) for z in self.logits(canonical_texts).tolist()]

    def logit(self, canonical_text: str) -> float:
        """The uncalibrated score: the largest window logit (kind /3) or head/tail logit (kind /2).

        The reference implementation, one text at a time in numpy (float32 sums in bucket order), kept
        to check the batch paths against; scoring goes through :meth:`logits`.
        """
        if self.spec.kind == WINDOW_KIND:
            return max(self._logit(window) for window in windows(canonical_text, self.spec.window))
        if len(canonical_text) > 2 * HEAD_TAIL_BYTES:
            return max(self._logit(canonical_text[:HEAD_TAIL_BYTES]), self._logit(canonical_text[-HEAD_TAIL_BYTES:]))
        return self._logit(canonical_text)

    def probability(self, canonical_text: str) -> float:
        """P(attack) for a canonical text (calibrated for kind /3); scored like a batch of one."""
        return self.probabilities((canonical_text,))[0]


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))
