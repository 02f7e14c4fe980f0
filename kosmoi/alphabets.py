"""Spelling alphabets shared by the attacker's encoders and the guard's decoders: one definition each."""

from __future__ import annotations

# International Morse code: character -> code.
MORSE: dict[str, str] = {
    "a": ".-", "b": "-...", "c": "-.-.", "d": "-..", "e": ".", "f": "..-.", "g": "--.", "h": "....", "i": "..", "j": ".---", "k": "-.-", "l": ".-..",
    "m": "--", "n": "-.", "o": "---", "p": ".--.", "q": "--.-", "r": ".-.", "s": "...", "t": "-", "u": "..-", "v": "...-", "w": ".--", "x": "-..-",
    "y": "-.--", "z": "--..", "0": "-----", "1": ".----", "2": "..---", "3": "...--", "4": "....-", "5": ".....", "6": "-....", "7": "--...",
    "8": "---..", "9": "----.", ".": ".-.-.-", ",": "--..--", "?": "..--..", "!": "-.-.--", "-": "-....-", "'": ".----.", "/": "-..-.",
}

# ICAO/NATO spelling alphabet: character -> code word (the decoder also accepts the common variants below).
NATO: dict[str, str] = {
    "a": "alfa", "b": "bravo", "c": "charlie", "d": "delta", "e": "echo", "f": "foxtrot", "g": "golf", "h": "hotel", "i": "india", "j": "juliett",
    "k": "kilo", "l": "lima", "m": "mike", "n": "november", "o": "oscar", "p": "papa", "q": "quebec", "r": "romeo", "s": "sierra", "t": "tango",
    "u": "uniform", "v": "victor", "w": "whiskey", "x": "xray", "y": "yankee", "z": "zulu", "0": "zero", "1": "one", "2": "two", "3": "three",
    "4": "four", "5": "five", "6": "six", "7": "seven", "8": "eight", "9": "niner", "-": "dash", ".": "stop",
}
NATO_VARIANTS: dict[str, str] = {"alpha": "a", "juliet": "j", "whisky": "w", "x-ray": "x", "nine": "9", "hyphen": "-", "dot": "."}

# Grade-1 English Braille: character -> dot pattern (bit 0 = dot 1 ... bit 5 = dot 6); digits are the number
# sign followed by the letters a-j.
BRAILLE: dict[str, int] = {
    "a": 0x01, "b": 0x03, "c": 0x09, "d": 0x19, "e": 0x11, "f": 0x0B, "g": 0x1B, "h": 0x13, "i": 0x0A, "j": 0x1A, "k": 0x05, "l": 0x07, "m": 0x0D,
    "n": 0x1D, "o": 0x15, "p": 0x0F, "q": 0x1F, "r": 0x17, "s": 0x0E, "t": 0x1E, "u": 0x25, "v": 0x27, "w": 0x3A, "x": 0x2D, "y": 0x3D, "z": 0x35,
    " ": 0x00, "-": 0x24, ".": 0x32, ",": 0x02,
}
BRAILLE_NUMBER = 0x3C
BRAILLE_DIGITS: dict[str, str] = dict(zip("1234567890", "abcdefghij"))  # digit -> the letter written after the number sign

# Elder Futhark runes for Latin letters, as rune-cipher tools write them (the guard reads any rune by its Unicode name).
RUNES: dict[str, str] = {
    "a": "ᚨ", "b": "ᛒ", "c": "ᚲ", "d": "ᛞ", "e": "ᛖ", "f": "ᚠ", "g": "ᚷ", "h": "ᚺ", "i": "ᛁ", "j": "ᛃ", "k": "ᚲ", "l": "ᛚ", "m": "ᛗ",
    "n": "ᚾ", "o": "ᛟ", "p": "ᛈ", "q": "ᛩ", "r": "ᚱ", "s": "ᛋ", "t": "ᛏ", "u": "ᚢ", "v": "ᚢ", "w": "ᚹ", "x": "ᛉ", "y": "ᛃ", "z": "ᛉ",
}

# First code points of the emoji letter blocks NFKC leaves alone (a-z follow in order): regional indicators,
# negative circled and negative squared Latin capitals.
EMOJI_LETTER_BLOCKS: tuple[int, ...] = (0x1F1E6, 0x1F150, 0x1F170)
