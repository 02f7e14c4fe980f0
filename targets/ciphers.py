"""Text ciphers attackers throw at guardrails, undone for matching: bounded, linear, never executed.

``cipher_variants(text)`` returns ``(how, plain)`` for each cipher a text
seems to use. Two kinds:

- *Self-evident* encodings, recognised by their alphabet: Morse code,
  Braille, the NATO spelling alphabet, binary octets, ``\\uXXXX``/``\\xXX``
  escapes, Unicode tag characters and variation-selector byte smuggling
  (each hidden character stands for an ASCII byte), emoji letters (regional
  indicators and the negative circled and squared letters NFKC leaves alone),
  runes written for Latin letters, and base2048 (qntm's encoding of 11 bits per
  character, decoded with the ``base2048`` package).
- *Letter substitutions* that keep the text looking like words: ROT-n
  (every shift), Atbash, reversal, and leetspeak written with more digits
  than letters. There is no alphabet to recognise, so a candidate counts only
  when it reads as English (more common English words than the text itself
  has, and at least three); ROT-n shifts other than 13 are tried only when
  the text mentions a shift or Caesar.

Every decoder reads at most ``MAX_CHARS`` characters and is one pass (or 25
for ROT-n) over them, so work is linear in the input.
"""

from __future__ import annotations

import functools
import re
import string
import unicodedata
from collections.abc import Callable

import base2048

from kosmoi.alphabets import BRAILLE, BRAILLE_DIGITS, BRAILLE_NUMBER, EMOJI_LETTER_BLOCKS, MORSE, NATO, NATO_VARIANTS
from targets import codepoints
from targets.canonical import letter_classes, letter_touches_symbol
from targets.matcher import RuleMatcher
from targets.rules import Rule

MAX_CHARS = 20_000
MIN_COMMON_WORDS = 3

_COMMON = frozenset(
    "the and to of in is you that it for on with as are be this your all me my do not now from what by or have "
    "any will can must tell give send show print reveal ignore previous instructions system prompt password key data "
    "rules say write please how make grant role right away send money account transfer admin delete run here".split()
)
_WORDS = re.compile(r"[a-z]{2,}")


# --- self-evident encodings ---------------------------------------------------------------------------------

_MORSE = {code: char for char, code in MORSE.items()}
_MORSE_RUN = re.compile(r"(?:[.\-]{1,6}[ /|]{1,3}){5,}[.\-]{1,6}")  # bounded token length: linear

_BRAILLE = {dots: char for char, dots in BRAILLE.items()}
_BRAILLE_DIGITS = {letter: digit for digit, letter in BRAILLE_DIGITS.items()}

_NATO = {word: char for char, word in NATO.items()} | NATO_VARIANTS
_NATO_TOKEN = re.compile(r"[a-z\-]+|[/|,]|\n")

_BINARY_RUN = re.compile(r"(?:[01]{8}[ ]?){4,}")
_ESCAPE_RUN = re.compile(r"(?:\\u[0-9a-fA-F]{4}|\\x[0-9a-fA-F]{2}|\\[0-7]{3}){4,}")


def _morse(text: str) -> str | None:
    out = []
    for match in _MORSE_RUN.finditer(text):
        words = re.split(r"\s*[/|]\s*|\s{3,}", match.group(0).strip())
        decoded = " ".join("".join(_MORSE.get(tok, "") for tok in word.split()) for word in words)
        if decoded.strip():
            out.append(decoded)
    return " ".join(out) if out else None


def _braille(text: str) -> str | None:
    cells = [ch for ch in text if 0x2800 <= ord(ch) <= 0x28FF]
    if len(cells) < 4:
        return None
    out = []
    number = False
    for ch in text:
        code = ord(ch)
        if 0x2800 <= code <= 0x28FF:
            dots = code - 0x2800
            if dots == BRAILLE_NUMBER:
                number = True
                continue
            letter = _BRAILLE.get(dots, "")
            if number and letter in _BRAILLE_DIGITS:
                out.append(_BRAILLE_DIGITS[letter])
                continue
            number = False
            out.append(letter)
        elif ch.isspace():
            number = False
            out.append(" ")
    return " ".join("".join(out).split()) or None


def _nato(text: str) -> str | None:
    lowered = text.lower()
    if sum(1 for word in ("alpha", "alfa", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "kilo", "lima", "november", "oscar", "papa", "sierra", "tango") if word in lowered) < 3:
        return None
    words: list[str] = []
    current: list[str] = []
    run = 0
    best: list[str] = []
    for match in _NATO_TOKEN.finditer(lowered):
        token = match.group(0)
        if token in _NATO:
            current.append(_NATO[token])
            run += 1
        elif token in ("/", "|", ",", "\n", "space"):
            if current:
                words.append("".join(current))
                current = []
        else:
            if run >= 4:
                best.extend(words + (["".join(current)] if current else []))
            words, current, run = [], [], 0
    if run >= 4:
        best.extend(words + (["".join(current)] if current else []))
    return " ".join(best) if best else None


def _binary(text: str) -> str | None:
    out = []
    for match in _BINARY_RUN.finditer(text):
        bits = match.group(0).replace(" ", "")
        raw = bytes(int(bits[i : i + 8], 2) for i in range(0, len(bits) - 7, 8))
        decoded = raw.decode("utf-8", "replace")
        if sum(ch.isprintable() for ch in decoded) >= 0.9 * len(decoded):
            out.append(decoded)
    return " ".join(out) if out else None


def _escapes(text: str) -> str | None:
    out = []
    for match in _ESCAPE_RUN.finditer(text):
        run = match.group(0)
        try:
            decoded = run.encode("ascii").decode("unicode_escape")
        except (UnicodeDecodeError, UnicodeEncodeError):
            continue
        out.append(decoded)
    return " ".join(out) if out else None


def _tag_bytes(text: str) -> str | None:
    """Unicode tag characters (U+E0020..E007E) read as the ASCII they shadow."""
    tags = [chr(ord(ch) - 0xE0000) for ch in text if 0xE0020 <= ord(ch) <= 0xE007E]
    return "".join(tags) if len(tags) >= 4 else None


def _selector_bytes(text: str) -> str | None:
    """Variation selectors used as bytes (VS1-16 = 0-15, VS17-256 = 16-255) read back as UTF-8."""
    selectors = []
    for ch in text:
        code = ord(ch)
        if 0xFE00 <= code <= 0xFE0F:
            selectors.append(code - 0xFE00)
        elif 0xE0100 <= code <= 0xE01EF:
            selectors.append(code - 0xE0100 + 16)
    if len(selectors) < 8:
        return None
    decoded = bytes(selectors).decode("utf-8", "replace")
    return decoded if sum(ch.isprintable() for ch in decoded) >= 0.8 * len(decoded) else None


def _emoji_letter(code: int) -> str | None:
    for start in EMOJI_LETTER_BLOCKS:
        if start <= code < start + 26:
            return chr(ord("a") + code - start)
    return None


def _emoji_letters(text: str) -> str | None:
    out: list[str] = []
    letters = 0
    for ch in text:
        letter = _emoji_letter(ord(ch))
        if letter is not None:
            out.append(letter)
            letters += 1
        elif ch.isspace() or ch in ".,!?:;'-":
            out.append(" " if ch.isspace() else ch)
        elif 0xFE00 <= ord(ch) <= 0xFE0F or unicodedata.category(ch) == "Cf":  # selectors and zero-width characters that keep letters apart
            continue
        else:
            out.append(" ")
    return " ".join("".join(out).split()) if letters >= 6 else None


def _rune_letter(ch: str) -> str:
    """A rune's Latin value: the last word of its Unicode name where that is one or two letters (``RUNIC LETTER FEHU FEOH FE F`` is f)."""
    words = unicodedata.name(ch, "").split()
    if words[:2] == ["RUNIC", "LETTER"] and 1 <= len(words[-1]) <= 2 and words[-1].isalpha():
        return words[-1].lower()
    return {"THURISAZ": "th", "KAUNA": "k", "ALGIZ": "z", "INGWAZ": "ng", "IWAZ": "ei", "WUNJO": "w"}.get(words[2] if len(words) > 2 else "", "")


_RUNES = {code: _rune_letter(chr(code)) for code in range(0x16A0, 0x16F9)}


_RUNE_V = re.compile(r"(?<=[aeiour])u(?=[aeio])")  # the futhark has no v or c: u between vowels reads v, kt reads ct


def _runic(text: str) -> str | None:
    if sum(0x16A0 <= ord(ch) <= 0x16F8 for ch in text) < 6:
        return None
    return _RUNE_V.sub("v", "".join(_RUNES.get(ord(ch), ch) for ch in text)).replace("kt", "ct")


_BASE2048_RUN = re.compile(r"[^\x00-\x7f\s]{12,}")  # base2048 output has no ASCII and no spaces


def _base2048(text: str) -> str | None:
    out = []
    for match in _BASE2048_RUN.finditer(text):
        try:
            decoded = base2048.decode(match.group(0)).decode("utf-8")
        except (base2048.DecodeError, UnicodeDecodeError, ValueError):
            continue
        if decoded and sum(ch.isprintable() or ch.isspace() for ch in decoded) >= 0.9 * len(decoded):
            out.append(decoded)
    return " ".join(out) if out else None


# --- letter substitutions -----------------------------------------------------------------------------------

_LOWER = string.ascii_lowercase
_ROT = [str.maketrans(_LOWER + _LOWER.upper(), _LOWER[k:] + _LOWER[:k] + _LOWER.upper()[k:] + _LOWER.upper()[:k]) for k in range(26)]
_ATBASH = str.maketrans(_LOWER + _LOWER.upper(), _LOWER[::-1] + _LOWER.upper()[::-1])
_LEET_MAP = {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g", "@": "a", "$": "s", "!": "i", "|": "l", "+": "t"}
_LEET = str.maketrans(_LEET_MAP)
# A whole run of letters, digits and leet symbols that holds a digit or symbol. It starts only where a run
# starts (the lookbehind) and its letters are taken possessively, so each run is read once: linear.
_LEET_RUN = re.compile(r"(?<![a-z0-9@$!|+])[a-z]*+[0-9@$!|+][a-z0-9@$!|+]*")
_DIGIT = re.compile(r"[0-9]")
# Searched in the case-folded text (case-insensitive regexes cost several times more per character),
# and only where a literal they need occurs (str.__contains__ runs at C speed; an alternation does not).
_SHIFT_HINT = re.compile(r"caesar|shift|rot-?\d|rotat|cipher")
_ATBASH_HINT = re.compile(r"atbash|mirror(?:ed)? alphabet|reversed alphabet")


def _shift_hinted(folded: str) -> bool:
    return "caesar" in folded or "shift" in folded or "cipher" in folded or ("rot" in folded and _SHIFT_HINT.search(folded) is not None)


def _atbash_hinted(folded: str) -> bool:
    return "atbash" in folded or ("alphabet" in folded and _ATBASH_HINT.search(folded) is not None)


def _leet_run(match: re.Match[str]) -> str:
    """A run of letters, digits and leet symbols holding a digit or symbol: decoded when it holds a letter too."""
    run = match.group(0)
    if any(c.isalpha() for c in run):
        return run.translate(_LEET)
    return run


def _leet_heavy(text: str) -> str:
    return _LEET_RUN.sub(_leet_run, text)


# Common English words as each substitution writes them: a text is scored by one pass over its own words.
_ENCIPHERED: dict[str, frozenset[str]] = {
    **{f"rot{k}": frozenset(w.translate(_ROT[26 - k]) for w in _COMMON) for k in range(1, 26)},  # words that rot-k turns into common ones
    "atbash": frozenset(w.translate(_ATBASH) for w in _COMMON),
    "reverse": frozenset(w[::-1] for w in _COMMON),
}


def _decode(how: str, lowered: str) -> str:
    if how == "atbash":
        return lowered.translate(_ATBASH)
    if how == "reverse":
        return lowered[::-1]
    return lowered.translate(_ROT[int(how[3:])])


def cipher_variants(text: str, wanted: frozenset[str] | None = None) -> list[tuple[str, str]]:
    """``(cipher, decoded text)`` for every cipher ``text`` seems to use (see the module docstring).

    ``wanted``: only these victim capabilities (``capability_of``) are tried — what a reader that knows
    only some ciphers would see; None tries everything (the guard).
    """
    if wanted is not None:
        return _wanted_variants(text, wanted)
    return _all_variants(text)


# Bytes as Morse sees them: separators (space, slash, bar) 's', marks (dot, dash) 'm', everything else 'x'.
_MORSE_CLASSES = bytes(ord("s") if byte in b" /|" else ord("m") if byte in b".-" else ord("x") for byte in range(256))


def _may_be_morse(text: str) -> bool:
    """Necessary for a Morse run: five separators directly before a dot or dash, and a dot and a dash in the text.

    Counted on the text's ASCII characters (encode, translate and count run at C speed): dropping the
    others can only bring a separator and a mark together, never part them, so too few pairs there means
    too few in the text; a non-ASCII text that passes is counted again as it is.
    """
    ascii_only = text.encode("ascii", "ignore")
    if b"." not in ascii_only or b"-" not in ascii_only or ascii_only.translate(_MORSE_CLASSES).count(b"sm") < 5:
        return False
    return text.isascii() or sum(text.count(sep + mark) for sep in " /|" for mark in ".-") >= 5


def _base2048_alphabet() -> frozenset[int]:
    """Every character base2048 output can hold, read from the package: one per 11-bit value, and the tail characters."""
    chars: set[str] = set()
    for value in range(2048):
        chars.add(base2048.encode((value << 77).to_bytes(11, "big"))[0])  # the first of 8 groups is the value
    for size in range(1, 12):  # every length leaves its own final group; its bits are the last byte's lowest
        for last in range(256):
            chars.update(base2048.encode(bytes(size - 1) + bytes([last])))
    return frozenset(map(ord, chars))


@functools.lru_cache(maxsize=1)
def _alphabets() -> codepoints.CharClasses:
    """The characters each alphabet decoder reads, counted in one pass over a non-ASCII text (built on first use)."""
    return codepoints.CharClasses(
        {
            "braille": range(0x2800, 0x2900),
            "tags": range(0xE0020, 0xE007F),
            "variation-selectors": [*range(0xFE00, 0xFE10), *range(0xE0100, 0xE01F0)],
            "emoji-letters": [start + offset for start in EMOJI_LETTER_BLOCKS for offset in range(26)],
            "runic": range(0x16A0, 0x16F9),
            "base2048": _base2048_alphabet(),
        }
    )


# How many of its alphabet's characters each alphabet decoder needs before it answers: counting them first
# is exact and spares the per-character loop. base2048 decodes runs of 12 or more characters and refuses a
# run holding any character outside its alphabet (tests/test_ciphers.py checks both).
_ALPHABET_MINIMUM = {"braille": 4, "tags": 4, "variation-selectors": 8, "emoji-letters": 6, "runic": 6, "base2048": 12}


@functools.lru_cache(maxsize=1)
def _alphabet_needs() -> dict[str, tuple[int, int]]:
    """For each alphabet decoder: its position in ``_alphabets().counts`` and the characters it needs."""
    return {how: (_alphabets().position[how], needed) for how, needed in _ALPHABET_MINIMUM.items()}


# The self-evident encodings: (name, decoder, a cheap test of whether the text can hold it at all — each
# test is implied by what its decoder needs, so skipping a decoder never changes what is found; None: the
# decoder reads only non-ASCII characters of its own alphabet, of which it needs _ALPHABET_MINIMUM).
_SELF_EVIDENT: tuple[tuple[str, Callable[[str], str | None], Callable[[str], bool] | None], ...] = (
    ("morse", _morse, _may_be_morse),
    ("braille", _braille, None),
    ("tags", _tag_bytes, None),
    ("variation-selectors", _selector_bytes, None),
    ("nato", _nato, lambda text: True),
    ("binary", _binary, lambda text: "0" in text and text.count("0") + text.count("1") >= 32),  # four octets at least
    ("escapes", _escapes, lambda text: "\\" in text),
    ("emoji-letters", _emoji_letters, None),
    ("runic", _runic, None),
    ("base2048", _base2048, None),
)
_ASCII_READABLE = tuple(entry for entry in _SELF_EVIDENT if entry[2] is not None)  # the same order: an ASCII text's only candidates


# The NATO decoder reads a run of at least four NATO tokens (whole [a-z-] runs) with nothing between
# them but characters outside [a-z-] and the separator token "space". Four NATO words in a row with only
# such characters between them is therefore necessary (and cheap to find in the one pass of the gate):
# texts that merely use "one", "echo" or "hotel" somewhere are not handed to the tokenizer.
_NATO_GAP = r"(?:[^a-z\-]|space)*"
_NATO_WORD = "(?:" + "|".join(sorted(map(re.escape, _NATO), key=lambda w: (-len(w), w))) + ")"
_NATO_RUN = _NATO_WORD + (_NATO_GAP + _NATO_WORD) * 3


def _self_evident(text: str, names: frozenset[str] | None = None, nato: bool = True) -> list[tuple[str, str]]:
    """The self-evident encodings ``text`` holds; ``nato=False``: it is known to hold no NATO word."""
    found = []
    counts = None if text.isascii() else _alphabets().counts(text)
    for how, decoder, possible in _SELF_EVIDENT if counts is not None else _ASCII_READABLE:
        if names is not None and how not in names:
            continue
        if possible is None:
            position, needed = _alphabet_needs()[how]
            if counts is None or counts[position] < needed:
                continue
        elif (how == "nato" and not nato) or not possible(text):
            continue
        decoded = decoder(text)
        if decoded:
            found.append((how, decoded))
    return found


def _wanted_variants(text: str, wanted: frozenset[str]) -> list[tuple[str, str]]:
    text = text[:MAX_CHARS]
    found = _self_evident(text, frozenset(how for how, _, _ in _SELF_EVIDENT if capability_of(how) in wanted))
    if wanted & {"atbash", "caesar"}:
        found.extend((how, plain) for how, plain in _all_variants(text) if capability_of(how) in wanted and capability_of(how) in ("atbash", "caesar"))
    return found


# A decoded leet run's common word, as the lowered text writes it: each letter as itself or a symbol _LEET
# reads as it, bounded by what ends a word in a decoded run — a character outside the run, or a digit
# _LEET leaves alone (2, 6).
_LEET_SPELLINGS = {letter: letter + "".join(sorted(symbol for symbol, plain in _LEET_MAP.items() if plain == letter)) for letter in _LOWER}
_LEET_WORD_EDGE = "[^a-z01345789@$!|+]"


def _leet_word_pattern(word: str) -> str:
    """Where decoding a leet run could yield ``word``: spelled with a symbol, or plainly beside a 2 or 6.

    A run is decoded only when it holds a symbol or digit, so a word it yields either holds one or is
    cut from the rest of its run by a digit _LEET leaves alone (tests/test_ciphers.py checks this is
    necessary for :func:`_leet_gains_a_common_word`).
    """
    spelled = [f"[{re.escape(_LEET_SPELLINGS[letter])}]" if len(_LEET_SPELLINGS[letter]) > 1 else letter for letter in word]
    with_symbol = [
        word[:i] + f"[{re.escape(_LEET_SPELLINGS[letter][1:])}]" + "".join(spelled[i + 1 :]) for i, letter in enumerate(word) if len(_LEET_SPELLINGS[letter]) > 1
    ]
    before, after = f"(?:^|{_LEET_WORD_EDGE})", f"(?:{_LEET_WORD_EDGE}|$)"
    branches = [f"[26]{word}{after}", f"{before}{word}[26]"]
    if with_symbol:
        branches.insert(0, f"{before}(?:{'|'.join(with_symbol)}){after}")
    return "|".join(branches)


@functools.lru_cache(maxsize=1)
def _word_gate() -> tuple[RuleMatcher, dict[str, frozenset[int]]]:
    """One multi-pattern matcher for the words the letter-substitution, leet and NATO decoders need.

    Pattern ids by what they stand for: the common words as ROT13, Atbash and reversal write them, the
    common words as a decoded leet run could yield them (``_leet_word_pattern``), and four NATO words in
    a row (``_NATO_RUN``). A word counts as an [a-z] run of its own (``_WORDS``), so each word pattern is
    bounded by non-letters. One linear pass over a text says whether a substitution could score
    ``MIN_COMMON_WORDS``, whether leet decoding could add a common word and whether the NATO decoder
    could find a run.
    """
    groups = {how: sorted(_ENCIPHERED[how]) for how in ("rot13", "atbash", "reverse")}
    rules: list[Rule] = []
    ids: dict[str, frozenset[int]] = {}
    for how, words in groups.items():
        start = len(rules)
        rules.extend(Rule(id=f"cipher-word.{how}.{word}", kind="regex", pattern=f"(?:^|[^a-z]){word}(?:[^a-z]|$)") for word in words)
        ids[how] = frozenset(range(start, len(rules)))
    start = len(rules)
    rules.extend(Rule(id=f"cipher-word.leet.{word}", kind="regex", pattern=_leet_word_pattern(word)) for word in sorted(_COMMON))
    ids["leet"] = frozenset(range(start, len(rules)))
    # What the hints search, for ASCII text (where \d is [0-9]; non-ASCII text is case-folded and searched by them).
    for how, hint in (("shift-hint", _SHIFT_HINT), ("atbash-hint", _ATBASH_HINT)):
        ids[how] = frozenset({len(rules)})
        rules.append(Rule(id=f"cipher-{how}", kind="regex", pattern=hint.pattern.replace(r"\d", "[0-9]")))
    ids["nato"] = frozenset({len(rules)})
    rules.append(Rule(id="cipher-run.nato", kind="regex", pattern=_NATO_RUN))
    return RuleMatcher(rules), ids


_LEET_NEIGHBOURS = letter_classes(b"0123456789@$!|+")  # what _LEET_RUN counts as a digit or symbol


def _may_be_leet(lowered: str) -> bool:
    """Necessary for a leet run to decode: a digit, and a letter beside a digit or symbol (a run holding both has such a pair)."""
    return _DIGIT.search(lowered) is not None and letter_touches_symbol(lowered, _LEET_NEIGHBOURS)


def _leet_gains_a_common_word(lowered: str) -> bool:
    """Whether decoding some leet run yields a common word.

    Necessary for the leet variant to score above the text itself: decoding changes the runs only, so
    its common words are the text's outside the runs plus those of the decoded runs.
    """
    for match in _LEET_RUN.finditer(lowered):
        run = match.group(0)
        if any(c.isalpha() for c in run) and not _COMMON.isdisjoint(_WORDS.findall(run.translate(_LEET))):
            return True
    return False


def _all_variants(text: str) -> list[tuple[str, str]]:
    text = text[:MAX_CHARS]
    lowered = text.lower()
    matcher, ids = _word_gate()
    present = matcher.match_indices((lowered,))
    found = _self_evident(text, nato=not present.isdisjoint(ids["nato"]))
    if text.isascii():  # case folding is lowering: the gate's pass answered the hints too
        hinted = not present.isdisjoint(ids["shift-hint"])
        atbash_hinted = not present.isdisjoint(ids["atbash-hint"])
    else:
        folded = text.casefold()
        hinted = _shift_hinted(folded)
        atbash_hinted = _atbash_hinted(folded)
    if atbash_hinted:  # named: decoded whatever it reads like
        found.append(("atbash", _decode("atbash", lowered)))
    substitutions = [how for how in ("rot13", "atbash", "reverse") if len(present & ids[how]) >= MIN_COMMON_WORDS]
    leet_may_score = not present.isdisjoint(ids["leet"]) and _may_be_leet(lowered) and _leet_gains_a_common_word(lowered)
    if not hinted and not substitutions and not leet_may_score:
        return found  # no shift named, no substitution can score, no decoded leet run adds a common word: nothing more to find
    distinct = set(_WORDS.findall(lowered))
    base = len(distinct & _COMMON)
    if hinted:  # a shift is named: the shift that yields the most common words (if any does)
        scores = [(len(distinct & _ENCIPHERED[f"rot{k}"]), -k) for k in range(1, 26)]
        best, neg_k = max(scores)
        if best >= 1 and best > base:
            found.append((f"rot{-neg_k}", _decode(f"rot{-neg_k}", lowered)))
    if base >= 0.2 * max(1, len(distinct)) and not hinted:
        return found  # it already reads as English: not a letter substitution (nor leetspeak: decoded only from here)
    for how in ("rot13", "atbash", "reverse"):
        if (how == "rot13" and hinted) or (how == "atbash" and atbash_hinted):
            continue
        score = len(distinct & _ENCIPHERED[how])
        if score >= MIN_COMMON_WORDS and score > base:
            found.append((how, _decode(how, lowered)))
    if leet_may_score:  # an unchanged text would score the base
        leet = _leet_heavy(lowered)
        score = len(set(_WORDS.findall(leet)) & _COMMON)
        if score >= MIN_COMMON_WORDS and score > base:
            found.append(("leet", leet))
    return found


# What each cipher is called as a capability of the simulated victim (targets.comprehension).
CAPABILITY_OF = {
    "morse": "morse", "braille": "braille", "nato": "nato", "binary": "binary", "escapes": "escapes",
    "tags": "tag_chars", "variation-selectors": "variation_selectors", "atbash": "atbash", "leet": "leetspeak",
    "emoji-letters": "emoji_letters", "runic": "runic", "base2048": "base2048",
}


def capability_of(how: str) -> str | None:
    """The victim capability a cipher needs (``rotN`` other than 13 is ``caesar``; plain rot13 and reversal have their own)."""
    if how.startswith("rot"):
        return "rot13" if how == "rot13" else "caesar"
    if how == "reverse":
        return "reverse"
    return CAPABILITY_OF.get(how)
