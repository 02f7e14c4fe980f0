"""Attack text made safe to show in a report, an XML or a JSON file: nothing invisible, nothing a parser rejects."""

from __future__ import annotations

import re

# Controls, invisible and bidi characters, variation selectors, tag characters, and lone surrogates
# (which no UTF-8 file can hold): shown as escapes so a reader sees what a model would have read.
_INVISIBLE = re.compile(
    "[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\uffff\ud800-\udfff\U000e0000-\U000e007f]"
)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(text: str, limit: int) -> str:
    """``text`` with invisible characters as ``\\uXXXX`` escapes, cut to ``limit`` characters (the rest counted)."""
    shown = _INVISIBLE.sub(_escape, text)
    if len(shown) > limit:
        shown = shown[:limit] + f"… (+{len(text) - limit} chars)"
    return shown
