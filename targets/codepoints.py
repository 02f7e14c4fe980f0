"""Per-character work on whole texts at C speed: code points as a numpy array, looked up in tables.

Canonicalisation asks questions of every character of non-ASCII text (is it
a combining mark? what is its confusable prototype? is it a word character?).
Asked one character at a time in Python they cost ~80 ns each; here a text is
decoded once to UTF-32 and every question is one table lookup over the
array. Each function gives exactly the answer of its per-character
definition (``unicodedata.combining``, ``str.translate`` with the confusables
table, ``re``'s ``\\w``), which ``tests/test_canonical_tables.py`` checks over
every code point the tables cover. Tables are built on first use (~30 ms).
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Iterable

import numpy as np

from targets import codepoints_jit

TABLE_SIZE = 0x20000  # planes 0 and 1: every combining mark and every confusable lies below (checked at build)


def code_points(text: str) -> np.ndarray | None:
    """The code points of ``text`` (uint32), or None when it holds lone surrogates."""
    try:
        return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    except UnicodeEncodeError:
        return None


def from_code_points(points: np.ndarray) -> str:
    return points.astype(np.uint32, copy=False).tobytes().decode("utf-32-le")


def _index(points: np.ndarray) -> np.ndarray:
    """Table positions: code points beyond the tables read the last entry, which is neither mark nor confusable."""
    index: np.ndarray = np.minimum(points, TABLE_SIZE - 1)
    return index


@functools.lru_cache(maxsize=1)
def combining_table() -> np.ndarray:
    """True for every code point with a non-zero canonical combining class."""
    table = np.zeros(TABLE_SIZE, dtype=bool)
    for code in range(TABLE_SIZE):
        if unicodedata.combining(chr(code)):
            table[code] = True
    return table


def drop_combining(text: str) -> str:
    """``text`` without its combining marks (``"".join(c for c in text if not unicodedata.combining(c))``)."""
    points = code_points(text)
    if points is None:
        return "".join(ch for ch in text if not unicodedata.combining(ch))
    if codepoints_jit.AVAILABLE:
        dropped, kept = codepoints_jit.kernels().drop(points, combining_table())
        return from_code_points(kept) if dropped else text
    marks = combining_table()[_index(points)]
    return from_code_points(points[~marks]) if marks.any() else text


class Translation:
    """``str.translate`` with a fixed table of non-empty strings, over code points (compiled: any image; numpy: one-character images)."""

    def __init__(self, table: dict[int, str]) -> None:
        self.table = table
        self.lengths = np.zeros(TABLE_SIZE, dtype=np.uint8)  # each code point's image: its length (0: unmapped) ...
        self.offsets = np.zeros(TABLE_SIZE, dtype=np.int64)  # ... and where it starts in self.images
        self.image = np.arange(TABLE_SIZE, dtype=np.uint32)  # numpy path: one-character images in place
        images: list[int] = []
        for code, target in table.items():
            if code >= TABLE_SIZE - 1:
                raise ValueError(f"translate table maps U+{code:04X}, beyond the code points tabled")
            if not 0 < len(target) < 256:
                raise ValueError(f"translate table maps U+{code:04X} to {len(target)} characters; only 1 to 255 are vectorised")
            self.lengths[code] = len(target)
            self.offsets[code] = len(images)
            images.extend(map(ord, target))
            if len(target) == 1:
                self.image[code] = ord(target)
        self.images = np.array(images, dtype=np.uint32)

    def __call__(self, text: str) -> str:
        points = code_points(text)
        if points is None:
            return text.translate(self.table)
        if codepoints_jit.AVAILABLE:
            mapped, out = codepoints_jit.kernels().translate(points, self.lengths, self.offsets, self.images)
            return from_code_points(out) if mapped else text
        index = _index(points)
        lengths = self.lengths[index]
        if (lengths > 1).any():
            return text.translate(self.table)
        if not lengths.any():
            return text
        return from_code_points(np.where(points < TABLE_SIZE, self.image[index], points))


class CharSet:
    """A set of code points (any plane), deleted from a text in one pass."""

    def __init__(self, members: Iterable[int]) -> None:
        self.members = frozenset(members)
        self.table = np.zeros(0x110000, dtype=bool)  # 1.1 MB: every plane
        self.table[sorted(self.members)] = True
        self._delete = dict.fromkeys(self.members)

    def drop(self, text: str) -> str:
        """``text`` without the members (``text.translate(dict.fromkeys(members))``)."""
        points = code_points(text)
        if points is None:
            return text.translate(self._delete)
        if codepoints_jit.AVAILABLE:
            dropped, kept = codepoints_jit.kernels().drop(points, self.table)
            return from_code_points(kept) if dropped else text
        hit = self.table[points]
        return from_code_points(points[~hit]) if hit.any() else text


class CharClasses:
    """Disjoint named sets of code points (any plane), every text's members of each counted in one pass."""

    def __init__(self, classes: dict[str, Iterable[int]]) -> None:
        self.names = tuple(classes)
        if len(self.names) > 254:
            raise ValueError("at most 254 classes")
        self.table = np.zeros(0x110000, dtype=np.uint8)  # 1.1 MB: every plane; 0 is 'no class'
        for number, (name, members) in enumerate(classes.items(), start=1):
            codes = sorted(set(members))
            if self.table[codes].any():
                raise ValueError(f"character class {name!r} overlaps an earlier class")
            self.table[codes] = number
        self.position = {name: number for number, name in enumerate(self.names, start=1)}  # of each class in counts()

    def counts(self, text: str) -> list[int]:
        """How many characters of ``text`` each class holds, at ``position[name]`` (position 0: in no class)."""
        points = code_points(text)
        if points is None:
            points = np.fromiter(map(ord, text), dtype=np.uint32, count=len(text))
        if codepoints_jit.AVAILABLE:
            counted = codepoints_jit.kernels().class_counts(points, self.table, len(self.names) + 1)
        else:
            counted = np.bincount(self.table[points], minlength=len(self.names) + 1)
        result: list[int] = counted.tolist()
        return result


@functools.lru_cache(maxsize=1)
def word_table() -> np.ndarray:
    """True where ``re``'s ``\\w`` matches (alphanumeric by ``str.isalnum``, or the underscore)."""
    table = np.zeros(TABLE_SIZE, dtype=bool)
    for code in range(TABLE_SIZE):
        ch = chr(code)
        table[code] = ch.isalnum() or ch == "_"
    return table


def mixed_words(text: str, foreign: np.ndarray) -> int | None:
    """How many ``\\w+`` words of ``text`` hold both an ASCII letter and a code point ``foreign`` marks.

    None when the text cannot be tabled (lone surrogates, code points beyond the tables): the caller
    counts the slow way.
    """
    points = code_points(text)
    if points is None or not len(points):
        return None if points is None else 0
    if codepoints_jit.AVAILABLE:
        counted: int = codepoints_jit.kernels().mixed_words(points, word_table(), foreign)
        return None if counted < 0 else counted
    highest = int(points.max())
    if highest < 0x250:  # nothing beyond Latin: no foreign look-alike
        return 0
    if highest >= TABLE_SIZE - 1:
        return None
    word = word_table()[points]
    letter = ((points >= 65) & (points <= 90)) | ((points >= 97) & (points <= 122))
    other = foreign[points] & word
    if not letter.any() or not other.any():
        return 0
    word_id = np.cumsum(~word)  # characters of one word share an id
    return len(np.intersect1d(word_id[letter], word_id[other]))
