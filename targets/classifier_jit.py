"""Compiled scoring of the learned stage's windows (numba): the features of ``targets.classifier``, in one pass.

For every window of a batch this kernel makes the same hashed features as
:func:`targets.classifier.features` — character n-grams packed big-endian and
tagged with their length, words (runs of ASCII word bytes or bytes >= 0x80)
identified by CRC-32 and length, word bigrams — and sums their weights while it
counts them: a flag per bucket marks first occurrences (most features), and a
small open-addressing table (it stays in the CPU cache) counts the buckets that
recur, so the squared L2 norm grows by ``2c + 1`` per occurrence and no sort is
needed; flags and table are emptied after each window. Work is linear in the
bytes of the batch.

numba compiles the kernel on first use and caches the machine code next to
this module (``cache=True``); without numba, :mod:`targets.classifier` scores
batches with numpy instead (same features, same verdicts).
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable
from typing import Any

import numpy as np

# numba is imported (and the kernel loaded from its cache or compiled) on first use, not at import:
# processes that never score a text do not pay for it.
AVAILABLE = importlib.util.find_spec("numba") is not None


def _crc_table() -> np.ndarray:
    """The CRC-32 (IEEE 802.3, reflected 0xEDB88320) byte table: the checksum ``zlib.crc32`` computes."""
    table = np.zeros(256, dtype=np.uint32)
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xEDB88320 if crc & 1 else crc >> 1
        table[byte] = crc
    return table


CRC_TABLE = _crc_table()


def _window_logits_kernel(
    data: np.ndarray,
    offsets: np.ndarray,
    weights: np.ndarray,
    crc_table: np.ndarray,
    word_byte: np.ndarray,  # True for the bytes words are made of (targets.classifier's table)
    bias: float,
    bits: int,
    ngram_min: int,
    ngram_max: int,
    words: bool,
    seen: np.ndarray,  # all False, len(weights) flags; a bucket's flag marks it occurring in the window so far (left all False)
) -> np.ndarray:  # pragma: no cover - compiled; tested through Classifier.logits against the one-text path
    golden = np.uint64(0x9E3779B97F4A7C15)
    shift = np.uint64(64 - bits)
    word_tag = np.uint64(0x11 << 56)
    bigram_tag = np.uint64(0x12 << 56)
    low56 = np.uint64((1 << 56) - 1)
    windows = len(offsets) - 1
    out = np.empty(windows, dtype=np.float64)
    longest = 0
    for w in range(windows):
        longest = max(longest, offsets[w + 1] - offsets[w])
    features = np.empty(longest * (ngram_max - max(ngram_min, 1) + 1) + longest + 1, dtype=np.int64)  # n-grams, words, bigrams
    size = 16
    while size < 2 * len(features):
        size *= 2
    mask = size - 1
    keys = np.full(size, -1, dtype=np.int64)  # open addressing: a window's distinct buckets and their counts
    counts = np.zeros(size, dtype=np.int64)
    used = np.empty(len(features), dtype=np.int64)
    firsts = np.empty(len(features), dtype=np.int64)  # the window's distinct buckets
    for w in range(windows):
        start = offsets[w]
        end = offsets[w + 1]
        found = 0
        for n in range(max(ngram_min, 1), ngram_max + 1):
            tag = np.uint64(n) << np.uint64(56)
            if end - start < n:
                continue
            keep = (np.uint64(1) << np.uint64(8 * n)) - np.uint64(1)  # an n-gram's bytes (n <= 7)
            gram = np.uint64(0)
            for p in range(start, start + n - 1):
                gram = (gram << np.uint64(8)) | np.uint64(data[p])
            for p in range(start + n - 1, end):  # rolled on by one byte: the n-gram ending at p
                gram = ((gram << np.uint64(8)) | np.uint64(data[p])) & keep
                features[found] = np.int64(((gram | tag) * golden) >> shift)
                found += 1
        if words:
            previous = np.uint64(0)
            have_previous = False
            p = start
            while p < end:
                if not word_byte[data[p]]:
                    p += 1
                    continue
                crc = np.uint32(0xFFFFFFFF)
                length = 0
                while p < end and word_byte[data[p]]:
                    byte = data[p]
                    crc = crc_table[(crc ^ np.uint32(byte)) & np.uint32(0xFF)] ^ (crc >> np.uint32(8))
                    length += 1
                    p += 1
                ident = np.uint64(crc ^ np.uint32(0xFFFFFFFF)) | (np.uint64(length) << np.uint64(32))
                features[found] = np.int64(((ident | word_tag) * golden) >> shift)
                found += 1
                if have_previous:
                    pair = (((previous * golden) ^ ident) & low56) | bigram_tag
                    features[found] = np.int64((pair * golden) >> shift)
                    found += 1
                previous = ident
                have_previous = True
        total = 0.0
        squares = 0
        distinct = 0
        repeated = 0
        for i in range(found):
            bucket = features[i]
            total += weights[bucket]
            if not seen[bucket]:  # a first occurrence (most features): no table lookup
                seen[bucket] = True
                firsts[distinct] = bucket
                distinct += 1
                squares += 1
                continue
            slot = np.int64((np.uint64(bucket) * golden) >> np.uint64(40)) & mask
            while keys[slot] != bucket and keys[slot] != -1:
                slot = (slot + 1) & mask
            if keys[slot] == -1:  # its second occurrence: the table counts it from here
                keys[slot] = bucket
                used[repeated] = slot
                repeated += 1
                counts[slot] = 1
            c = counts[slot]
            squares += 2 * c + 1  # (c + 1)^2 - c^2: the squared norm grows with each occurrence
            counts[slot] = c + 1
        for i in range(distinct):
            seen[firsts[i]] = False
        for i in range(repeated):
            keys[used[i]] = -1
            counts[used[i]] = 0
        out[w] = bias + total / np.sqrt(np.float64(squares)) if squares else bias
    return out


@functools.lru_cache(maxsize=1)
def window_logits_kernel() -> Callable[..., Any]:
    """The compiled kernel (numba imported, then the machine code loaded from its cache or compiled: ~2 s once)."""
    import numba

    return numba.njit(cache=True, nogil=True)(_window_logits_kernel)
