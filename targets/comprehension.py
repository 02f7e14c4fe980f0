"""How the simulated victim model *reads* text, by capability.

A capable LLM understands what a naive filter misses: homoglyphs, zero-width
splitting, leetspeak, base64/hex, ROT13, reversed text, payloads split into
variables or parts. A capability profile says which of these the victim
understands; :func:`readings` returns every interpretation it would act on.
"""

from __future__ import annotations

import codecs
import unicodedata
from dataclasses import dataclass

from targets.canonical import confusable_table, decode_leet, strip_invisible, strip_marks
from targets.ciphers import capability_of, cipher_variants
from targets.decoding import decode_runs, join_split_payload

# Everything a victim model may understand (profiles pick a subset).
CAPABILITIES: frozenset[str] = frozenset(
    {
        "homoglyph", "zero_width", "leetspeak", "base64", "hex", "rot13", "reverse", "split_payload",
        "roleplay", "hypothetical", "override", "authority", "indirect", "nesting",
        # the encodings and ciphers of public red-team tools (targets.decoding, targets.ciphers)
        "base32", "base85", "morse", "nato", "braille", "binary", "escapes", "tag_chars", "variation_selectors",
        "atbash", "caesar", "zalgo", "emoji_letters", "runic", "base2048",
    }
)
RUN_ENCODINGS = {"base64": "base64", "hex": "hex", "base32": "base32", "ascii85": "base85", "base85": "base85"}  # decode_runs chain -> capability
CIPHER_CAPABILITIES = frozenset({"morse", "nato", "braille", "binary", "escapes", "tag_chars", "variation_selectors", "atbash", "caesar", "emoji_letters", "runic", "base2048"})

MAX_CONTEXT_CHARS = 8_000



@dataclass(frozen=True, slots=True)
class Reading:
    """One interpretation of the input; ``source`` is ``text`` or ``document``."""

    source: str
    text: str
    via: tuple[str, ...] = ()  # capabilities needed to arrive at it


def _fold_homoglyphs(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    return text if text.isascii() else text.translate(confusable_table())


def _surface(text: str, capabilities: frozenset[str]) -> tuple[str, tuple[str, ...]]:
    via: list[str] = []
    if not text.isascii():
        if "zalgo" in capabilities:
            plain = strip_marks(text)
            if plain != text and sum(unicodedata.combining(ch) > 0 for ch in text) >= 3:
                via.append("zalgo")
            text = plain
        if "zero_width" in capabilities:
            stripped = strip_invisible(text)
            if stripped != text:
                via.append("zero_width")
            text = stripped
        if "homoglyph" in capabilities:
            folded = _fold_homoglyphs(text)
            if folded != text.lower():
                via.append("homoglyph")
            text = folded
    return " ".join(text.lower().split()), tuple(via)


def readings(text: str, capabilities: frozenset[str], *, source: str = "text", decode_depth: int = 3) -> list[Reading]:
    """Every interpretation of ``text`` the victim understands (the literal one first)."""
    text = text[:MAX_CONTEXT_CHARS]
    surface, via = _surface(text, capabilities)
    found = [Reading(source, surface, via)]
    if "leetspeak" in capabilities:
        decoded = decode_leet(surface)
        if decoded is not None:
            found.append(Reading(source, decoded, via + ("leetspeak",)))
    encodings = {step for step, cap in RUN_ENCODINGS.items() if cap in capabilities} | {"url", "qp"}
    if encodings - {"url", "qp"} and len(text) >= 16:
        for run in decode_runs(text, max_depth=decode_depth, max_bytes=16_384, max_runs=16):
            if all(step in encodings for step in run.chain):
                needed = tuple(dict.fromkeys(RUN_ENCODINGS[s] for s in run.chain if s in RUN_ENCODINGS))
                decoded, inner_via = _surface(run.decoded, capabilities)
                found.append(Reading(source, decoded, via + needed + inner_via))
                if "leetspeak" in capabilities and (unleet := decode_leet(decoded)) is not None:
                    found.append(Reading(source, unleet, via + needed + inner_via + ("leetspeak",)))
    wanted = capabilities & CIPHER_CAPABILITIES
    if wanted:
        for how, decoded in cipher_variants(text, wanted):
            found.append(Reading(source, " ".join(decoded.lower().split()), via + (capability_of(how) or how,)))
    if "rot13" in capabilities and ("rot13" in surface or "rot-13" in surface or "caesar" in surface):
        found.append(Reading(source, codecs.encode(surface, "rot13"), via + ("rot13",)))
    if "reverse" in capabilities and ("revers" in surface or "backwards" in surface):
        found.append(Reading(source, surface[::-1], via + ("reverse",)))
    if "split_payload" in capabilities:
        joined = join_split_payload(surface)
        if joined:
            found.append(Reading(source, " ".join(joined.split()), via + ("split_payload",)))
    return found
