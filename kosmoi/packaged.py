"""Gzipped JSON-lines data files shipped inside a package: one reader and one writer for all of them."""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any


def read_jsonl_gz(package: str, filename: str) -> list[dict[str, Any]]:
    """Every record of ``<package>/data/<filename>`` (blank lines skipped)."""
    raw = gzip.decompress(resources.files(package).joinpath("data", filename).read_bytes()).decode("utf-8")
    return [json.loads(line) for line in raw.splitlines() if line.strip()]


def write_jsonl_gz(records: Sequence[dict[str, Any]], path: Path) -> int:
    """Write ``records`` as gzipped JSON lines, the same bytes for the same records (no time or file name in the header)."""
    with open(path, "wb") as handle, gzip.GzipFile(filename="", mode="wb", fileobj=handle, compresslevel=9, mtime=0) as raw:
        for record in records:
            raw.write((json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8"))
    return len(records)
