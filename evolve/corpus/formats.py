"""Labelled texts from the files users bring: JSON lines, CSV, Parquet, a Hugging Face dataset, PyRIT seed YAML.

Every format gives the same rows: a text (field ``text``, ``prompt`` or
``value``), a label (``label``: attack|benign, also malicious/injection/
jailbreak/1/true for attacks and safe/0/false for benign; or the caller's
default) and a category (``category``; PyRIT's first harm category). A bad
row is an error naming the file and the line (or row), never skipped; all
bad rows are collected, the first few shown.

- ``.jsonl`` / ``.ndjson`` / ``.json`` (JSON lines)
- ``.csv`` (a header row naming the columns)
- ``.parquet``
- a directory written by ``datasets.Dataset.save_to_disk`` (``dataset_info.json`` and
  ``data-*.arrow``; a ``DatasetDict`` directory reads every split) — read with pyarrow,
  the ``datasets`` package is not needed
- ``.yaml`` / ``.yml`` / ``.prompt`` in PyRIT's seed-dataset layout (``seeds:`` or ``prompts:``, each with ``value``)
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from evolve.corpus.records import ATTACK, BENIGN, LabelledText

MAX_ERRORS_SHOWN = 5
TEXT_FIELDS = ("text", "prompt", "value")
_ATTACK_WORDS = {"attack", "malicious", "injection", "jailbreak", "unsafe", "1", "true", "yes", "positive"}
_BENIGN_WORDS = {"benign", "safe", "0", "false", "no", "negative", "legitimate"}


class DataFileError(ValueError):
    """A data file cannot be read; the message names the file and the lines at fault."""


def _label(value: Any, default: str | None) -> str:
    if value is None or value == "":
        if default is None:
            raise ValueError('no "label" (attack or benign) and no default label for this file')
        return default
    word = str(value).strip().lower()
    if word in _ATTACK_WORDS:
        return ATTACK
    if word in _BENIGN_WORDS:
        return BENIGN
    raise ValueError(f"label {value!r} is neither attack nor benign")


def _row(record: Any, default_label: str | None, source: str, origin: str) -> LabelledText:
    if not isinstance(record, dict):
        raise ValueError("expected an object with a string text field (text, prompt or value)")
    text = next((record[f] for f in TEXT_FIELDS if f in record and record[f] is not None), None)
    if not isinstance(text, str):
        raise ValueError('expected a string "text" (or "prompt" / "value")')
    if not text.strip():
        raise ValueError("the text is empty")
    label = _label(record.get("label", record.get("is_attack")), default_label)
    category = record.get("category")
    if category is None:
        harms = record.get("harm_categories")
        category = harms[0] if isinstance(harms, list) and harms else (ATTACK if label == ATTACK else BENIGN)
    return LabelledText(text=text, label=label, category=str(category), source=str(record.get("source") or source), origin=origin)


def _collect(path: Path, items: Iterable[tuple[str, Any]], default_label: str | None, source: str) -> list[LabelledText]:
    rows: list[LabelledText] = []
    bad: list[str] = []
    for where, record in items:  # a reader yields the exception in place of a row it could not read
        try:
            if isinstance(record, ValueError):
                raise record
            rows.append(_row(record, default_label, source, where))
        except ValueError as exc:
            bad.append(f"{path}:{where}: {str(exc).splitlines()[0][:160]}")
    if bad:
        shown = "; ".join(bad[:MAX_ERRORS_SHOWN])
        raise DataFileError(f"{len(bad)} bad row(s) — {shown}{' ...' if len(bad) > MAX_ERRORS_SHOWN else ''}")
    if not rows:
        raise DataFileError(f"{path}: no texts")
    return rows


def _jsonl(path: Path) -> Iterator[tuple[str, Any]]:
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            try:
                yield str(number), json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError:
                yield str(number), ValueError("not UTF-8")
            except json.JSONDecodeError as exc:
                yield str(number), ValueError(f"not valid JSON ({exc.msg})")


def _csv(path: Path) -> Iterator[tuple[str, Any]]:
    try:
        text = path.read_text("utf-8")
    except UnicodeDecodeError:
        raise DataFileError(f"{path}: not UTF-8") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if not reader.fieldnames or not any(f in reader.fieldnames for f in TEXT_FIELDS):
        raise DataFileError(f"{path}:1: the header names no text column (one of {', '.join(TEXT_FIELDS)}); found {reader.fieldnames}")
    try:
        for record in reader:
            if None in record:
                yield str(reader.line_num), ValueError(f"{len(record[None])} more field(s) than the header has")
            else:
                yield str(reader.line_num), record
    except csv.Error as exc:
        raise DataFileError(f"{path}:{reader.line_num}: {exc}") from None


def _table_rows(table: Any) -> Iterator[tuple[str, Any]]:
    columns = set(table.column_names)
    if not columns & set(TEXT_FIELDS):
        raise DataFileError(f"no text column (one of {', '.join(TEXT_FIELDS)}); columns: {sorted(columns)}")
    for index, record in enumerate(table.to_pylist()):
        yield f"row {index}", record


def _parquet(path: Path) -> Iterator[tuple[str, Any]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:
        raise DataFileError(f"{path}: not a readable Parquet file ({str(exc)[:160]})") from None
    try:
        yield from _table_rows(table)
    except DataFileError as exc:
        raise DataFileError(f"{path}: {exc}") from None


def _hf_dataset(path: Path) -> Iterator[tuple[str, Any]]:
    """A ``save_to_disk`` directory: Arrow IPC stream files listed in state.json (or data-*.arrow)."""
    import pyarrow as pa

    if (path / "dataset_dict.json").is_file():
        splits = json.loads((path / "dataset_dict.json").read_text("utf-8")).get("splits", [])
        for split in splits:
            for where, record in _hf_dataset(path / split):
                yield f"{split}/{where}", record
        return
    state = path / "state.json"
    files = [path / f["filename"] for f in json.loads(state.read_text("utf-8")).get("_data_files", [])] if state.is_file() else sorted(path.glob("data-*.arrow"))
    if not files:
        raise DataFileError(f"{path}: no Arrow files (not a directory written by Dataset.save_to_disk)")
    offset = 0
    for file in files:
        try:
            with pa.memory_map(str(file)) as source:
                table = pa.ipc.open_stream(source).read_all()
        except (OSError, pa.ArrowInvalid) as exc:
            raise DataFileError(f"{file}: not a readable Arrow file ({str(exc)[:160]})") from None
        try:
            for where, record in _table_rows(table):
                yield f"row {offset + int(where.split()[1])}", record
        except DataFileError as exc:
            raise DataFileError(f"{file}: {exc}") from None
        offset += table.num_rows


def _pyrit_yaml(path: Path) -> Iterator[tuple[str, Any]]:
    import yaml

    try:
        nodes = yaml.compose(path.read_text("utf-8"))
        data = yaml.safe_load(path.read_text("utf-8"))
    except UnicodeDecodeError:
        raise DataFileError(f"{path}: not UTF-8") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise DataFileError(f"{path}{line}: not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("seeds", data.get("prompts")), list):
        raise DataFileError(f"{path}: a PyRIT seed dataset has a 'seeds' (or 'prompts') list")
    key = "seeds" if "seeds" in data else "prompts"
    lines: dict[int, int] = {}
    for k, v in nodes.value if nodes is not None else ():
        if k.value == key:
            lines = {i: item.start_mark.line + 1 for i, item in enumerate(v.value)}
    shared = {"harm_categories": data.get("harm_categories"), "source": data.get("dataset_name") or data.get("name")}
    for index, seed in enumerate(data[key]):
        record = {**{k: v for k, v in shared.items() if v}, **seed} if isinstance(seed, dict) else seed
        yield str(lines.get(index, index + 1)), record


def load_texts(path: Path | str, default_label: str | None = None) -> list[LabelledText]:
    """Every labelled text of one file or dataset directory (see the module docstring for the formats)."""
    path = Path(path)
    reader: Callable[[Path], Iterator[tuple[str, Any]]] | None
    if path.is_dir():
        reader = _hf_dataset
    elif not path.is_file():
        raise DataFileError(f"{path}: no such file or directory")
    else:
        suffix = path.suffix.lower()
        reader = {".jsonl": _jsonl, ".ndjson": _jsonl, ".json": _jsonl, ".csv": _csv, ".parquet": _parquet, ".yaml": _pyrit_yaml, ".yml": _pyrit_yaml, ".prompt": _pyrit_yaml}.get(suffix)
        if reader is None:
            raise DataFileError(f"{path}: unknown format {suffix or '(no suffix)'}; use .jsonl, .csv, .parquet, a save_to_disk directory or PyRIT .yaml")
    return _collect(path, reader(path), default_label, path.stem)
