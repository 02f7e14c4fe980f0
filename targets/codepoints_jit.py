"""Compiled loops over code points (numba) for :mod:`targets.codepoints`: one pass where numpy needs several.

Canonicalising non-ASCII text asks questions of every character that numpy
answers with several array operations each (a lookup, a comparison, an
``any``, a cumulative sum, a set intersection), each paying numpy's per-call
overhead on texts of a few hundred characters: which characters the
confusables table maps, how many words mix ASCII letters with foreign
look-alikes, which characters are invisible or combining marks, how many
characters of each cipher alphabet a text holds. Here each is one loop.
The answers are those of the numpy functions in :mod:`targets.codepoints`
(which stay as the fallback without numba); ``tests/test_canonical_tables.py``
checks both against the per-character definitions.

numba compiles on first use and caches the machine code next to this module.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from targets import classifier_jit

AVAILABLE = classifier_jit.AVAILABLE  # numba is installed (one check for every compiled kernel)


def _translate_kernel(points: np.ndarray, lengths: np.ndarray, offsets: np.ndarray, images: np.ndarray) -> tuple[bool, np.ndarray]:  # pragma: no cover - compiled
    """``(whether anything was mapped, code points)`` of a table translation.

    ``lengths[p]``: how many code points ``p`` becomes (0: it is not mapped and stays itself), found at
    ``images[offsets[p]:offsets[p] + lengths[p]]``. Code points at or beyond the tables' last entry
    (which maps nothing) are left as they are.
    """
    last = len(lengths) - 1
    total = 0
    any_mapped = False
    for i in range(len(points)):
        p = points[i]
        n = lengths[p] if p < last else 0
        if n:
            any_mapped = True
            total += n
        else:
            total += 1
    if not any_mapped:
        return False, points
    out = np.empty(total, dtype=points.dtype)
    k = 0
    for i in range(len(points)):
        p = points[i]
        n = lengths[p] if p < last else 0
        if n:
            start = offsets[p]
            for j in range(n):
                out[k] = images[start + j]
                k += 1
        else:
            out[k] = p
            k += 1
    return True, out


def _mixed_words_kernel(points: np.ndarray, word: np.ndarray, foreign: np.ndarray) -> int:  # pragma: no cover - compiled
    """Words (runs of ``word`` characters) holding an ASCII letter and a ``foreign`` character; -1 beyond the tables."""
    last = len(word) - 1
    count = 0
    letter = False
    other = False
    for i in range(len(points)):
        p = points[i]
        if p >= last:
            return -1
        if word[p]:
            if (65 <= p <= 90) or (97 <= p <= 122):
                letter = True
            elif foreign[p]:
                other = True
        else:
            if letter and other:
                count += 1
            letter = False
            other = False
    if letter and other:
        count += 1
    return count


def _drop_kernel(points: np.ndarray, table: np.ndarray) -> tuple[bool, np.ndarray]:  # pragma: no cover - compiled
    """``(whether any was dropped, the code points ``table`` does not mark)`` (beyond the table: its last entry)."""
    last = len(table) - 1
    out = np.empty_like(points)
    kept = 0
    for i in range(len(points)):
        p = points[i]
        if not table[p if p < last else last]:
            out[kept] = p
            kept += 1
    return kept < len(points), out[:kept]


def _class_counts_kernel(points: np.ndarray, table: np.ndarray, classes: int) -> np.ndarray:  # pragma: no cover - compiled
    """How many code points fall in each class ``table`` assigns (0: none of them)."""
    counts = np.zeros(classes, dtype=np.int64)
    for i in range(len(points)):
        counts[table[points[i]]] += 1
    return counts


@dataclass(frozen=True)
class Kernels:
    """The compiled loops."""

    translate: Callable[..., Any]
    mixed_words: Callable[..., Any]
    drop: Callable[..., Any]
    class_counts: Callable[..., Any]


@functools.lru_cache(maxsize=1)
def kernels() -> Kernels:
    """The loops compiled (numba imported, machine code loaded from its cache or compiled once)."""
    import numba

    jit = numba.njit(cache=True, nogil=True)
    return Kernels(jit(_translate_kernel), jit(_mixed_words_kernel), jit(_drop_kernel), jit(_class_counts_kernel))
