"""The vectorised character tables (targets/codepoints.py) answer exactly as their per-character definitions."""

from __future__ import annotations

import re
import unicodedata

import numpy as np
import pytest

from evolve.corpus.sample import load_sample
from targets import canonical, codepoints, codepoints_jit

ALL_TABLED = "".join(chr(code) for code in range(codepoints.TABLE_SIZE) if not 0xD800 <= code <= 0xDFFF)
BEYOND = "".join(chr(code) for code in (0x20000, 0x2A6D6, 0xE0001, 0xE0041, 0xE0100, 0xE01EF, 0xF0000, 0x10FFFD))


@pytest.fixture(params=["compiled", "numpy"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each answer is checked on both paths: the compiled loops (numba) and the numpy fallback."""
    if request.param == "compiled" and not codepoints_jit.AVAILABLE:
        pytest.skip("numba is not installed")
    monkeypatch.setattr(codepoints_jit, "AVAILABLE", request.param == "compiled")
    return str(request.param)


def test_combining_marks_are_unicodedatas(path):
    table = codepoints.combining_table()
    expected = np.array([bool(unicodedata.combining(chr(code))) for code in range(codepoints.TABLE_SIZE)])
    assert np.array_equal(table, expected)
    assert not any(unicodedata.combining(ch) for ch in BEYOND)  # the last entry stands for everything beyond
    text = ALL_TABLED + BEYOND
    assert codepoints.drop_combining(text) == "".join(ch for ch in text if not unicodedata.combining(ch))


def test_word_characters_are_res():
    table = codepoints.word_table()
    pattern = re.compile(r"\w")
    assert all(table[ord(ch)] == bool(pattern.match(ch)) for ch in ALL_TABLED)


@pytest.mark.parametrize("chunk", range(0, len(ALL_TABLED), 16_384))
def test_confusable_folding_is_str_translate(chunk, path):
    text = ALL_TABLED[chunk : chunk + 16_384] + BEYOND
    assert canonical._fold_confusables()(text) == text.translate(canonical.confusable_table())


def test_invisible_characters_are_dropped_as_str_translate_drops_them(path):
    text = ALL_TABLED + BEYOND + "".join(chr(code) for code in sorted(canonical.INVISIBLE))
    assert canonical.strip_invisible(text) == text.translate(dict.fromkeys(canonical.INVISIBLE))
    assert canonical.strip_invisible("a\ud800b\u200bc") == "a\ud800bc"  # lone surrogates: the per-character path


def _mixed_slowly(text: str) -> int:
    table = canonical.confusable_table()
    mixed = 0
    for word in re.findall(r"\w+", text.translate(dict.fromkeys(canonical.INVISIBLE))):
        if not word.isascii() and any(ch.isascii() and ch.isalpha() for ch in word) and any(ord(ch) >= 0x250 and ord(ch) in table for ch in word):
            mixed += 1
    return mixed


@pytest.mark.parametrize(
    "text",
    ["pаypal and gооgle", "café naïve", "Пример text", "mixеd_word ok", "日本語のtext", "a\u200bа", "𠀀abc а", "x" * 50 + "\u0430"],
)
def test_mixed_script_words_are_counted_as_word_by_word(text, path):
    assert canonical.count_mixed_script_words(text) == _mixed_slowly(text)


def test_a_char_set_drops_its_members_in_any_plane(path):
    members = codepoints.CharSet([0x41, 0x2800, 0xE0041, 0x10FFFF])
    text = "A\u2800bA\U000E0041c\U0010FFFF" + BEYOND
    assert members.drop(text) == "bc" + BEYOND.replace("\U000E0041", "")  # BEYOND holds U+E0041 too
    assert members.drop("bcd") == "bcd"


def test_confusables_with_a_longer_image_are_translated_as_str_translate_does(path):
    table = {ord("a"): "b", ord("ß"): "ss"}
    translate = codepoints.Translation(table)
    assert translate("aßa") == "bssb" and translate("aéa") == "béb" and translate("xyz") == "xyz"


def test_canonical_forms_of_the_sample_are_unchanged_by_vectorising(path):
    for row in load_sample():
        text = canonical.without_surrogates(row.text)
        assert canonical.count_mixed_script_words(text) == _mixed_slowly(text)
        if not text.isascii():
            stripped = text.translate(dict.fromkeys(canonical.INVISIBLE))
            folded = unicodedata.normalize("NFKC", stripped).casefold().translate(canonical.confusable_table())
            slow = "".join(ch for ch in unicodedata.normalize("NFKD", folded) if not unicodedata.combining(ch))
            assert canonical.canonicalize(text).text == " ".join(slow.lower().split())


def test_character_classes_count_each_class_in_one_pass(path):
    classes = codepoints.CharClasses({"braille": range(0x2800, 0x2900), "tags": range(0xE0020, 0xE007F), "letters": [0x41, 0x10FFFF]})
    text = "A\u2800\u28ffb\U000E0041\U000E0041c\U0010FFFF\ud800" + BEYOND
    counts = classes.counts(text)
    assert [counts[classes.position[name]] for name in ("braille", "tags", "letters")] == [2, 3, 2]  # BEYOND holds U+E0041 too
    assert counts[0] == len(text) - 7  # in no class (a lone surrogate counted there too)
    assert classes.counts("plain ascii")[1:] == [0, 0, 0]
    with pytest.raises(ValueError, match="'tags' overlaps"):
        codepoints.CharClasses({"braille": range(0x2800, 0x2900), "tags": [0x2801]})
