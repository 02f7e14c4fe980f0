"""Run results on disk: Parquet tables, the summary, and reading them back.

Layout of one run::

    DIR/<run_id>/
      config.yaml            the resolved experiment (seed included)
      summary.json           headline metrics (see ``sim.summary``)
      episodes/seg-00000.parquet ...   one file per unit of work
      events/ cases/ warrants/ calls/  same layout (calls: every paid or LLM model call)

Files are written to a temporary name and renamed, so a crash never leaves a
half-written Parquet file behind.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from kosmoi.schemas import SCHEMAS, TABLES

_SORT_KEYS: dict[str, list[tuple[str, str]]] = {
    "episodes": [("replica", "ascending"), ("sim_time", "ascending"), ("episode_id", "ascending")],
    "events": [("event_id", "ascending")],
    "cases": [("replica", "ascending"), ("window_end", "ascending"), ("case_id", "ascending")],
    "warrants": [("replica", "ascending"), ("sim_time", "ascending"), ("warrant_id", "ascending")],
    "calls": [("replica", "ascending"), ("sim_time", "ascending"), ("episode_id", "ascending")],
}


def canonical_order(name: str, table: pa.Table) -> pa.Table:
    """Rows in an order independent of how work was spread over workers."""
    return table.sort_by(_SORT_KEYS[name]) if table.num_rows > 1 else table


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temp file + rename)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", "utf-8")
    os.replace(tmp, path)


class RunWriter:
    """Writes a run's tables segment by segment."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.rows_written = {name: 0 for name in TABLES}
        for name in TABLES:
            (run_dir / name).mkdir(parents=True, exist_ok=True)

    def write_segment(self, segment: int, tables: dict[str, pa.Table]) -> None:
        """Write one unit of work's tables (empty tables are skipped)."""
        for name in TABLES:
            table = tables.get(name)
            if table is None or table.num_rows == 0:
                continue
            self._write(name, f"seg-{segment:05d}.parquet", canonical_order(name, table.cast(SCHEMAS[name])))

    def _write(self, name: str, filename: str, table: pa.Table) -> None:
        path = self.run_dir / name / filename
        tmp = path.with_name(path.name + ".tmp")
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
        self.rows_written[name] += table.num_rows

    def finish(self) -> None:
        """Make sure every table directory has at least one (possibly empty) file with its schema."""
        for name in TABLES:
            if not any((self.run_dir / name).glob("*.parquet")):
                self._write(name, "empty.parquet", SCHEMAS[name].empty_table())


def read_table(run_dir: str | Path, name: str, columns: list[str] | None = None) -> pa.Table:
    """Read one table of a run (all its segment files) with pyarrow."""
    if name not in SCHEMAS:
        raise ValueError(f"unknown table {name!r}; known: {', '.join(TABLES)}")
    directory = Path(run_dir) / name
    files = sorted(directory.glob("*.parquet"))
    if not files:
        return SCHEMAS[name].empty_table() if columns is None else SCHEMAS[name].empty_table().select(columns)
    return pa.concat_tables(pq.read_table(f, columns=columns, schema=SCHEMAS[name]) for f in files)
