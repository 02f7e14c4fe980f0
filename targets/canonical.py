"""Canonicalisation of text before rule matching.

Steps (non-ASCII text only; pure ASCII skips straight to the last two):

1. remove invisible characters: zero-width, bidi controls, variation
   selectors, Unicode tag characters, soft hyphen, combining grapheme joiner;
2. Unicode NFKC (folds fullwidth, mathematical alphanumerics, ligatures);
3. case folding;
4. confusable/homoglyph folding to ASCII from the Unicode confusables data
   (UTS #39, shipped by the ``confusable_homoglyphs`` package), then NFKD
   with combining marks dropped (``ïgnörê`` -> ``ignore``);
5. whitespace folding (any run of whitespace becomes one space) and lower case.

A separate leetspeak-decoded variant is produced for matching only. The
original text is never modified; the victim reads the original.

Everything here is linear in the input length.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from dataclasses import dataclass
from importlib import resources

import numpy as np

from targets import codepoints

# Characters that render as nothing (or only steer rendering) and are used to
# break up keywords or smuggle hidden instructions.
_ZERO_WIDTH = [0x200B, 0x200C, 0x200D, 0x2060, 0x2061, 0x2062, 0x2063, 0x2064, 0xFEFF, 0x180E, 0x00AD, 0x034F, 0x115F, 0x1160, 0x3164, 0xFFA0]
_BIDI = [0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_VARIATION = [*range(0xFE00, 0xFE10), *range(0xE0100, 0xE01F0)]
_TAGS = list(range(0xE0000, 0xE0080))

INVISIBLE: frozenset[int] = frozenset(_ZERO_WIDTH + _BIDI + _VARIATION + _TAGS)
TAG_CHARS: frozenset[int] = frozenset(_TAGS)
BIDI_CHARS: frozenset[int] = frozenset(_BIDI)

_INVISIBLE_SET = codepoints.CharSet(INVISIBLE)  # found and deleted over a text's code points at once
# Joiners and presentation selectors that scripts and emoji use as they should: ZWNJ/ZWJ between two
# non-ASCII characters (Persian, Hindi, Malayalam, emoji sequences) and a variation selector after a
# non-ASCII character (text/emoji style). Removed for matching like any invisible character, but not
# counted as a sign of smuggling. Inside ASCII words they still are. Fixed-width lookbehind: linear.
_LEGIT_JOINER = re.compile("(?<=[^\x00-\x7f])(?:[\u200c\u200d](?=[^\x00-\x7f])|[\ufe0e\ufe0f])")

# Leetspeak: characters that stand for letters inside words.
_LEET_TABLE = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "@": "a", "$": "s", "!": "i", "|": "l", "+": "t"})


def letter_classes(symbols: bytes) -> bytes:
    """A ``bytes.translate`` table for :func:`letter_touches_symbol`: lower-case letters to 'a', ``symbols`` to '0'."""
    return bytes.maketrans(b"abcdefghijklmnopqrstuvwxyz" + symbols, b"a" * 26 + b"0" * len(symbols))


def letter_touches_symbol(text: str, classes: bytes) -> bool:
    """Whether a lower-case letter stands right beside one of the symbols ``classes`` was made for.

    Two literal searches on a class-mapped byte copy (one byte per character, other characters '?'):
    encode, bytes.translate and the searches run at C speed, where a two-character alternation regex
    cost ~50 µs per KB.
    """
    mapped = text.encode("ascii", "replace").translate(classes)
    return b"a0" in mapped or b"0a" in mapped


_LEET_CLASSES = letter_classes(b"0134578@$!|+")  # the symbols _LEET_TABLE maps
_LETTER_BYTES = b"abcdefghijklmnopqrstuvwxyz"
_LEET_SYMBOL_BYTES = b"0123456789@$!|+"
_DROP_LETTERS = str.maketrans("", "", _LETTER_BYTES.decode())
_DROP_LEET = str.maketrans("", "", _LEET_SYMBOL_BYTES.decode())


@functools.lru_cache(maxsize=1)
def confusable_table() -> dict[int, str]:
    """Map every non-ASCII confusable character to its ASCII prototype (UTS #39 data)."""
    data = json.loads(resources.files("confusable_homoglyphs").joinpath("confusables.json").read_text("utf-8"))
    table: dict[int, str] = {}
    for key, entries in data.items():
        if not key.isascii() or not key.strip():
            continue
        target = key.lower()
        for entry in entries:
            glyph = entry["c"].replace("\u200e", "").replace("\u200f", "")
            if len(glyph) == 1 and not glyph.isascii():
                table.setdefault(ord(glyph), target)
    return table


@dataclass(frozen=True, slots=True)
class Canonical:
    """A canonical form of a text plus what canonicalisation had to undo."""

    text: str
    leet: str | None  # leetspeak-decoded variant, if it differs from ``text``
    invisible: int  # invisible characters removed
    tags: int  # Unicode tag characters among them
    bidi: int  # bidi controls among them
    mixed_script: int  # words mixing ASCII letters with non-Latin look-alikes

    def variants(self) -> tuple[str, ...]:
        """The strings rules are matched against."""
        return (self.text,) if self.leet is None else (self.text, self.leet)


def decode_leet(text: str) -> str | None:
    """Leetspeak-decode words that mix letters and leet symbols; None if nothing changes.

    ``text`` must already be lower case and whitespace-folded. Numbers standing
    alone ("$50", "2024") are left alone, and so are identifiers made mostly of
    digits (IBANs such as "gb29nwbk6016..."): a word is decoded only when it has
    at least two letters and no more digits and symbols than letters. One pass
    over the words: linear time.
    """
    if not letter_touches_symbol(text, _LEET_CLASSES):
        return None
    decoded = _LEET_WORD.sub(_decode_leet_word, text)
    return decoded if decoded != text else None


# A space-separated word holding a symbol the leet table maps: anchored at the word's start and
# possessive, so each word is read once (linear); words without one are never handed to Python.
_LEET_WORD = re.compile(r"(?<![^ ])[^ 0134578@$!|+]*+[0134578@$!|+][^ ]*+")


def _decode_leet_word(match: re.Match[str]) -> str:
    word = match.group(0)
    if word.isascii():  # counted by bytes.translate's deletion (C speed; str.translate looks each character up in a dict)
        raw = word.encode("ascii")
        symbols = len(raw) - len(raw.translate(None, _LEET_SYMBOL_BYTES))
        letters = len(raw) - len(raw.translate(None, _LETTER_BYTES))
    else:
        symbols = len(word) - len(word.translate(_DROP_LEET))
        letters = len(word) - len(word.translate(_DROP_LETTERS))
    return word.translate(_LEET_TABLE) if letters >= 2 and symbols <= letters else word


def canonicalize(text: str) -> Canonical:
    """Canonicalise ``text`` for matching (see module docstring)."""
    invisible = tags = bidi = mixed = 0
    if not text.isascii():
        text = without_surrogates(text)
        stripped = strip_invisible(text)
        mixed = _mixed_script_words(stripped)
        if len(stripped) != len(text):
            invisible = len(text) - len(stripped) - len(_LEGIT_JOINER.findall(text))
            tags = sum(1 for ch in text if ord(ch) in TAG_CHARS)
            bidi = sum(1 for ch in text if ord(ch) in BIDI_CHARS)
        text = unicodedata.normalize("NFKC", stripped).casefold()
        if not text.isascii():
            text = strip_marks(_fold_confusables()(text))
    text = " ".join(text.lower().split())
    return Canonical(text, decode_leet(text), invisible, tags, bidi, mixed)


@functools.lru_cache(maxsize=1)
def _fold_confusables() -> codepoints.Translation:
    """``str.translate(confusable_table())``, vectorised."""
    return codepoints.Translation(confusable_table())


@functools.lru_cache(maxsize=1)
def _foreign_confusables() -> np.ndarray:
    """True for the confusables at or above U+0250 (look-alikes from other scripts, not accented Latin)."""
    table = np.zeros(codepoints.TABLE_SIZE, dtype=bool)
    table[[code for code in confusable_table() if code >= 0x250]] = True
    return table


_WORD_RE = re.compile(r"\w+")
# Inside a word, an ASCII word character next to a character at or above U+0250: every word that mixes
# the two has such a pair, so a text without one has no mixed word (one C-speed search decides).
_ASCII_NEXT_TO_OTHER = re.compile(r"[0-9A-Za-z_][^\x00-\u024f]|[^\x00-\u024f][0-9A-Za-z_]")


def count_mixed_script_words(text: str) -> int:
    """Words that mix ASCII letters with non-Latin confusables (``pаypal`` with a Cyrillic a).

    Accented Latin letters (below U+0250) do not count, so ``café`` is fine.
    """
    return _mixed_script_words(strip_invisible(text))


def _mixed_script_words(text: str) -> int:
    """:func:`count_mixed_script_words` of a text already stripped of invisible characters."""
    counted = codepoints.mixed_words(text, _foreign_confusables())
    if counted is not None:
        return counted
    if _ASCII_NEXT_TO_OTHER.search(text) is None:
        return 0
    table = confusable_table()
    mixed = 0
    for match in _WORD_RE.finditer(text):
        word = match.group(0)
        if word.isascii():
            continue
        has_ascii = any("a" <= ch <= "z" or "A" <= ch <= "Z" for ch in word)
        if has_ascii and any(ord(ch) >= 0x250 and ord(ch) in table for ch in word):
            mixed += 1
    return mixed


def strip_marks(text: str) -> str:
    """NFKD and drop combining marks: ``ïgnörê`` -> ``ignore`` (for matching only)."""
    if text.isascii():
        return text
    return codepoints.drop_combining(unicodedata.normalize("NFKD", text))


def without_surrogates(text: str) -> str:
    """Replace lone surrogates (possible in JSON-decoded input) with U+FFFD."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def strip_invisible(text: str) -> str:
    """Remove invisible characters only (what a capable reader ignores)."""
    return text if text.isascii() else _INVISIBLE_SET.drop(text)


def fold_confusables(text: str) -> str:
    """Invisible-strip, NFKC, casefold and confusable-fold (no whitespace change)."""
    if text.isascii():
        return text
    text = unicodedata.normalize("NFKC", strip_invisible(text)).casefold()
    return text if text.isascii() else _fold_confusables()(text)
