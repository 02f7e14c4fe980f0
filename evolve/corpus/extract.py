"""Turning the files inside a wheel into texts: README sections, docstrings, functions, tracebacks."""

from __future__ import annotations

import ast
import email.parser
import itertools
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass

from kosmoi.ids import stable_hash64

MAX_DOC_CHARS = 3000
MIN_DOC_CHARS = 200
MIN_CODE_LINES = 4
MAX_CODE_LINES = 60

_HEADING = re.compile(r"^(?:#{1,4} .+|.+\n[=\-~^]{3,})$", re.MULTILINE)
_BADGE = re.compile(r"^\s*(?:\[!\[|\.\. image::|\.\. \|?[a-z-]*\|? image::|<img |<a href=|<p align|</?div|<picture|</?source|:target:|:alt:|\|[a-z-]+\|).*$", re.IGNORECASE | re.MULTILINE)


def wheel_readme(archive: zipfile.ZipFile) -> str:
    """The long description (the project's README) from a wheel's METADATA."""
    for name in archive.namelist():
        if name.endswith(".dist-info/METADATA"):
            message = email.parser.Parser().parsestr(archive.read(name).decode("utf-8", "replace"))
            body = message.get_payload()
            return body if isinstance(body, str) else ""
    return ""


def document_chunks(text: str) -> list[str]:
    """README text cut at headings into chunks of MIN..MAX_DOC_CHARS, badges and raw HTML lines dropped."""
    text = _BADGE.sub("", text.replace("\r\n", "\n"))
    starts = [m.start() for m in _HEADING.finditer(text)]
    bounds = [0, *starts, len(text)]
    sections = [text[a:b].strip() for a, b in itertools.pairwise(bounds) if text[a:b].strip()]
    chunks: list[str] = []
    current = ""
    for section in sections:
        while len(section) > MAX_DOC_CHARS:  # cut a long section at a paragraph break
            cut = section.rfind("\n\n", 0, MAX_DOC_CHARS)
            cut = cut if cut > MIN_DOC_CHARS else MAX_DOC_CHARS
            chunks.append(section[:cut].strip())
            section = section[cut:].strip()
        if len(current) + len(section) + 2 <= MAX_DOC_CHARS:
            current = f"{current}\n\n{section}" if current else section
        else:
            if current:
                chunks.append(current)
            current = section
        if len(current) >= MAX_DOC_CHARS * 0.6:
            chunks.append(current)
            current = ""
    if current:
        chunks.append(current)
    return [c for c in chunks if len(c) >= MIN_DOC_CHARS]


@dataclass(frozen=True, slots=True)
class CodeUnit:
    path: str  # inside the wheel
    name: str
    first_line: int
    source: str


def python_files(archive: zipfile.ZipFile) -> Iterator[tuple[str, str]]:
    """(path, source) of every Python module in a wheel, in name order; tests and vendored code skipped."""
    for name in sorted(archive.namelist()):
        if not name.endswith(".py") or "/tests/" in name or "/_vendor/" in name or "/vendor/" in name:
            continue
        try:
            yield name, archive.read(name).decode("utf-8")
        except UnicodeDecodeError:
            continue


def module_docstrings(archive: zipfile.ZipFile) -> Iterator[tuple[str, str]]:
    """(path, docstring) of modules, classes and functions whose docstring is prose of some length."""
    for path, source in python_files(archive):
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc and MIN_DOC_CHARS <= len(doc) <= MAX_DOC_CHARS:
                    yield path, doc


def code_units(archive: zipfile.ZipFile) -> Iterator[CodeUnit]:
    """Top-level functions and methods of MIN..MAX_CODE_LINES lines, with their source."""
    for path, source in python_files(archive):
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError):
            continue
        lines = source.splitlines()
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno:
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                length = node.end_lineno - start + 1
                if MIN_CODE_LINES <= length <= MAX_CODE_LINES:
                    body = "\n".join(lines[start - 1 : node.end_lineno])
                    indent = len(body) - len(body.lstrip(" "))
                    body = "\n".join(line[indent:] if line[:indent].strip() == "" else line for line in body.splitlines())
                    yield CodeUnit(path, node.name, start, body)


_EXCEPTIONS = (
    ("KeyError", "'{ident}'"),
    ("AttributeError", "'NoneType' object has no attribute '{ident}'"),
    ("TypeError", "{func}() missing 1 required positional argument: '{ident}'"),
    ("ValueError", "invalid literal for int() with base 10: '{ident}'"),
    ("IndexError", "list index out of range"),
    ("TypeError", "unsupported operand type(s) for +: 'int' and 'str'"),
    ("RuntimeError", "dictionary changed size during iteration"),
    ("FileNotFoundError", "[Errno 2] No such file or directory: '{ident}.json'"),
)
_IDENT = re.compile(r"\b[a-z_][a-z0-9_]{2,}\b")


def synthetic_traceback(unit: CodeUnit, package: str) -> tuple[str, str]:
    """A Python traceback through ``unit`` (real file, real line numbers and source lines), and its exception line.

    Nothing is executed: the frames are read from the source, the exception
    is one of a fixed list, worded with a name that occurs in the function.
    """
    lines = unit.source.splitlines()
    key = stable_hash64("traceback", package, unit.path, unit.name)
    body = [i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith(("def ", "async def ", "@", "#", '"""', "'''"))]
    index = body[key % len(body)] if body else 0
    idents = _IDENT.findall(lines[index]) or [unit.name]
    ident = idents[(key >> 8) % len(idents)]
    kind, message = _EXCEPTIONS[(key >> 16) % len(_EXCEPTIONS)]
    exc = f"{kind}: {message.format(ident=ident, func=unit.name)}"
    site = f"/home/user/.venv/lib/python3.11/site-packages/{unit.path}"
    frames = [
        "Traceback (most recent call last):",
        '  File "/home/user/project/main.py", line 42, in <module>',
        "    main()",
        f'  File "{site}", line {unit.first_line + index}, in {unit.name}',
        f"    {lines[index].strip()}",
        exc,
    ]
    return "\n".join(frames), exc
