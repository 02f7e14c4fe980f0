"""Bounded decoding of encoded runs (base64, base32, base85/ascii85, hex, URL, quoted-printable, uuencode, MIME words).

Used by the output guard to re-scan what an encoding hides, and by the victim
to understand encoded instructions. Every call is bounded in depth, number of
runs and total decoded bytes, so a decompression-style input cannot make it
expand without limit.
"""

from __future__ import annotations

import base64
import binascii
import functools
import quopri
import re
import unicodedata
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import re2

from targets.matcher import RuleMatcher
from targets.rules import Rule

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False

_BASE64_RE = re2.compile(r"[A-Za-z0-9+/]{16,}={0,2}|[A-Za-z0-9_\-]{16,}={0,2}", _OPTIONS)
_HEX_RE = re2.compile(r"\b(?:[0-9a-fA-F]{2}){8,}\b|\b(?:[0-9a-fA-F]{2}[ :]){7,}[0-9a-fA-F]{2}\b", _OPTIONS)
_URL_RE = re2.compile(r"(?:[^\s%]{0,64}%[0-9a-fA-F]{2}){3,}[^\s%]{0,64}", _OPTIONS)
_QP_RE = re2.compile(r"(?:[^\s=]{0,64}=[0-9A-F]{2}){3,}[^\s=]{0,64}", _OPTIONS)
_BASE32_RE = re2.compile(r"[A-Z2-7]{16,}={0,6}", _OPTIONS)
_ASCII85_RE = re2.compile(r"<~[!-u\s]{8,}~>", _OPTIONS)
_BASE85_RE = re2.compile(r"[0-9A-Za-z!#$%&()*+\-;<=>?@^_`{|}~]{20,}", _OPTIONS)
_UU_RE = re2.compile(r"begin [0-7]{3} [^\n]{1,64}\n(?:[ -`]{1,61}\n)+`?\n?end", _OPTIONS)
_MIME_RE = re2.compile(r"=\?[A-Za-z0-9_\-]{1,32}\?[bBqQ]\?[^?\s]{4,}\?=", _OPTIONS)

DEFAULT_MAX_DEPTH = 4
DEFAULT_MAX_BYTES = 64 * 1024
DEFAULT_MAX_RUNS = 64


@dataclass(frozen=True, slots=True)
class DecodedRun:
    """A run of ``text[start:end]`` that decodes (through ``chain``) to ``decoded``."""

    start: int
    end: int
    chain: tuple[str, ...]
    decoded: str


_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffd]")


def _printable_text(raw: bytes) -> str | None:
    """``raw`` as text if it reads as text, with control characters and undecodable bytes removed.

    Control characters are ignored when judging (padding a payload with them must not hide it
    from the guard; a model reads straight past them); random bytes — what an ordinary word or
    identifier "decodes" to — are mostly undecodable or odd symbols and are rejected.
    """
    if len(raw) < 4:
        return None
    text = raw.decode("utf-8", "replace")
    if 5 * text.count("\ufffd") > len(text):
        # Random bytes, what an ordinary word or identifier "decodes" to: more than a fifth undecodable.
        # Every U+FFFD is visible and unreadable below, so this rejects exactly what the count would.
        return None
    # Judged on what a reader sees: control characters (C0 and C1) and well-formed but unassigned code
    # points are padding an attacker can add at will, so they count neither way; bytes that are not
    # UTF-8 at all (what random data decodes to) count against.
    visible = [ch for ch in text if (ch >= " " or ch in "\n\r\t") and not ("\x7f" <= ch <= "\x9f") and (ch < "\u0370" or unicodedata.category(ch) != "Cn")]
    if not visible:
        return None
    readable = sum(1 for ch in visible if ch != "\ufffd" and (ch.isprintable() or ch in "\n\r\t"))
    if readable < 0.8 * len(visible) or readable < 4:
        return None
    return _CONTROLS.sub("", text)


def _decode_base64(run: str) -> str | None:
    body = run.rstrip("=")
    if len(body) % 4 == 1:
        return None
    padded = body + "=" * (-len(body) % 4)
    try:
        altchars = b"-_" if ("-" in body or "_" in body) else None
        raw = base64.b64decode(padded, altchars=altchars, validate=True)
    except (binascii.Error, ValueError):
        return None
    return _printable_text(raw)


def _decode_hex(run: str) -> str | None:
    digits = run.replace(" ", "").replace(":", "")
    try:
        return _printable_text(bytes.fromhex(digits))
    except ValueError:
        return None


def _decode_url(run: str) -> str | None:
    try:
        decoded = urllib.parse.unquote(run, errors="strict")
    except UnicodeDecodeError:
        return None
    return decoded if decoded != run else None


def _decode_qp(run: str) -> str | None:
    try:
        raw = quopri.decodestring(run.encode("ascii", "strict"))
    except (ValueError, UnicodeEncodeError):
        return None
    text = _printable_text(raw)
    return text if text and text != run else None


def _decode_base32(run: str) -> str | None:
    body = run.rstrip("=")
    try:
        return _printable_text(base64.b32decode(body + "=" * (-len(body) % 8)))
    except (binascii.Error, ValueError):
        return None


def _decode_ascii85(run: str) -> str | None:
    try:
        return _printable_text(base64.a85decode(run, adobe=True, ignorechars=b" \t\n\r"))
    except ValueError:
        return None


def _decode_base85(run: str) -> str | None:
    if run.isalnum():  # a plain word or identifier (base64 and base32 cover those alphabets)
        return None
    try:
        return _printable_text(base64.b85decode(run))
    except ValueError:
        return None


def _decode_uu(run: str) -> str | None:
    raw = bytearray()
    for line in run.splitlines()[1:]:
        if line in ("end", "`", ""):
            continue
        try:
            raw += binascii.a2b_uu(line)
        except binascii.Error:
            return None
    return _printable_text(bytes(raw))


def _decode_mime(run: str) -> str | None:
    import email.header

    try:
        parts = email.header.decode_header(run)
    except (ValueError, LookupError):
        return None
    out = []
    for chunk, charset in parts:
        if isinstance(chunk, bytes):
            try:
                out.append(chunk.decode(charset or "utf-8", "replace"))
            except LookupError:
                return None
        else:
            out.append(chunk)
    decoded = "".join(out)
    return decoded if decoded != run and len(decoded) >= 4 else None


# Cheap prechecks (bounded work per position, so linear): a pattern runs only where its encoding can be.
# (base32 has none: a run of 16 of its characters is what its RE2 pattern looks for in one pass, where
# Python's re, trying the class at every position, took ten times as long.)
_BASE85_HINT = re.compile(r"[#$%&()*;<>?@^`{|}~]")


def _always(_body: str) -> bool:
    return True


_DECODERS = (
    ("base64", _BASE64_RE, _decode_base64, _always),
    ("base32", _BASE32_RE, _decode_base32, _always),
    ("ascii85", _ASCII85_RE, _decode_ascii85, lambda body: "<~" in body),
    ("base85", _BASE85_RE, _decode_base85, lambda body: _BASE85_HINT.search(body) is not None),
    ("hex", _HEX_RE, _decode_hex, _always),
    ("url", _URL_RE, _decode_url, lambda body: "%" in body),
    ("qp", _QP_RE, _decode_qp, lambda body: "=" in body),
    ("uuencode", _UU_RE, _decode_uu, lambda body: "begin " in body),
    ("mime", _MIME_RE, _decode_mime, lambda body: "=?" in body),
)


# A part every match of each decoder's pattern holds (same order as _DECODERS), matched case-sensitively:
# one Hyperscan pass over a body says which decoders can find a run in it at all, and only their patterns
# search it. Plain character classes and literals only, so both engines read them alike.
_NEEDED_PART = {
    "base64": r"[A-Za-z0-9+/]{16}|[A-Za-z0-9_\-]{16}",
    "base32": r"[A-Z2-7]{16}",
    "ascii85": r"<~",
    "base85": r"[0-9A-Za-z!#$%&()*+\-;<=>?@^_`{|}~]{20}",
    "hex": r"[0-9a-fA-F]{16}|(?:[0-9a-fA-F]{2}[ :]){7}[0-9a-fA-F]{2}",
    "url": r"%[0-9a-fA-F]{2}",
    "qp": r"=[0-9A-F]{2}",
    "uuencode": r"begin [0-7]{3} ",
    "mime": r"=\?[A-Za-z0-9_\-]{1,32}\?[bBqQ]\?",
}


@functools.lru_cache(maxsize=1)
def _part_matcher() -> RuleMatcher:
    return RuleMatcher([Rule(id=f"decoder.{name}", kind="regex", pattern=f"(?-i:{_NEEDED_PART[name]})") for name, *_ in _DECODERS])


def may_hold_runs(text: str) -> bool:
    """Whether some decoder's pattern can match in ``text`` (the one pass :func:`decode_runs` starts with)."""
    return bool(_part_matcher().match_indices((text,)))


def _decoders_for(body: str) -> list[tuple[str, re2._Regexp, Callable[[str], str | None]]]:
    """The decoders that can find a run in ``body``, in order: its part is there and the cheap precheck passes."""
    present = _part_matcher().match_indices((body,))
    if not present:
        return []
    return [(name, pattern, decoder) for index, (name, pattern, decoder, worth_trying) in enumerate(_DECODERS) if index in present and worth_trying(body)]


def _runs(pattern: re2._Regexp, body: str, raw: bytes | None) -> Iterator[tuple[int, int, str]]:
    """``(start, end, run)`` of each match of ``pattern`` in ``body``.

    ``raw``: ``body`` as ASCII bytes, or None. ASCII text is searched as bytes, where offsets are
    offsets: the wrapper's str path re-counts characters for every match (the same matches, ~3x slower).
    """
    if raw is not None:
        for match in pattern.finditer(raw):
            yield match.start(), match.end(), match.group(0).decode("ascii")
    else:
        for match in pattern.finditer(body):
            yield match.start(), match.end(), match.group(0)


def decode_runs(
    text: str,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_runs: int = DEFAULT_MAX_RUNS,
) -> list[DecodedRun]:
    """Every encoded run in ``text`` and, recursively, in what it decodes to.

    Spans always refer to ``text`` (a run found inside a decoded run reports
    the outer run's span). Stops when depth, run count or the decoded-byte
    budget is exhausted; what was found so far is returned.
    """
    results: list[DecodedRun] = []
    budget = max_bytes
    frontier: list[tuple[int, int, tuple[str, ...], str]] = [(0, len(text), (), text)]
    for _depth in range(max_depth):
        next_frontier: list[tuple[int, int, tuple[str, ...], str]] = []
        for outer_start, outer_end, chain, body in frontier:
            if len(body) < 16 and not any(ch in body for ch in "%="):
                continue
            decoders = _decoders_for(body)
            if not decoders:
                continue  # no decoder's pattern can match (most text): nothing to search
            raw = body.encode("ascii") if body.isascii() else None
            for name, pattern, decoder in decoders:
                for match_start, match_end, run in _runs(pattern, body, raw):
                    if len(results) >= max_runs or budget <= 0:
                        return results
                    if len(run) > budget * 2:
                        continue
                    decoded = decoder(run)
                    if decoded is None:
                        continue
                    budget -= len(decoded)
                    start, end = (match_start, match_end) if not chain else (outer_start, outer_end)
                    item = DecodedRun(start, end, chain + (name,), decoded)
                    results.append(item)
                    next_frontier.append((start, end, item.chain, decoded))
        if not next_frontier:
            break
        frontier = next_frontier
    return results


def still_encoded(text: str) -> bool:
    """Whether ``text`` still holds a decodable run (checked on what the last allowed decoding layer produced)."""
    raw = text.encode("ascii") if text.isascii() else None
    for _name, pattern, decoder in _decoders_for(text):
        for _start, _end, run in _runs(pattern, text, raw):
            if decoder(run) is not None:
                return True
    return False


_ASSIGN_RE = re2.compile(r"""\b([A-Za-z_][A-Za-z0-9_]{0,15})\s{0,4}=\s{0,4}["']([^"'\n]{1,300})["']""", _OPTIONS)
_PART_RE = re2.compile(r"(?i)\bpart\s{0,3}\d{1,2}\s{0,3}(?:of\s{0,3}\d{1,2})?\s{0,3}[:=\-]\s{0,3}", _OPTIONS)
_JOIN_WORDS = ("concatenat", "combine", "join", "put together", "assemble", "merge")


def join_split_payload(text: str) -> str | None:
    """Reassemble a payload split into quoted variables (``a="tra"; b="nsfer"; a+b``) or numbered parts.

    Returns None when the text shows no sign of a split payload.
    """
    lowered = text.lower()
    has_parts = "part" in lowered and _PART_RE.search(text) is not None
    if not has_parts and not ("+" in lowered or any(word in lowered for word in _JOIN_WORDS)):
        return None
    if "=" in text:
        assigned = _ASSIGN_RE.findall(text[:20_000])
        if len(assigned) >= 2:
            return "".join(value for _, value in assigned[:64])
    if not has_parts:
        return None
    pieces = _PART_RE.split(text[:20_000])
    if len(pieces) >= 3:
        return " ".join(piece.strip().strip("\"'") for piece in pieces[1:65])
    return None
