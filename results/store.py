"""Run results on disk: Parquet tables, the summary, and reading them back.

Layout of one run::

    DIR/<run_id>/
      config.yaml            the resolved experiment (seed included)
      summary.json           headline metrics (``kosmoi.metrics.summary_metrics``, written by ``sim.runner``)
      episodes/seg-00000.parquet ...   one file per unit of work
      events/ cases/ warrants/ calls/  same layout (calls: every paid or LLM model call)

Files are written to a temporary name and renamed, so a crash never leaves a
half-written Parquet file behind.

Reading many runs: ``load_runs(paths)`` finds every run under the paths and
returns :class:`Runs`, whose tables are lazy pyarrow datasets (filters are
pushed into the scan; ``batches`` streams), with pandas DataFrames on request.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
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
    try:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", "utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc


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
        try:
            pq.write_table(table, tmp, compression="zstd")
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)  # a full disk leaves no half-written file behind
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
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


# --- reading many runs -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunInfo:
    """One run directory and what its manifest and summary say."""

    run_id: str
    path: Path
    experiment: str
    status: str
    generation: int
    started_at: str
    evolution: str | None  # the evo-<id> directory it belongs to, if any
    summary: dict[str, Any]


def _looks_like_run(path: Path) -> bool:
    return (path / "manifest.json").is_file() and (path / "episodes").is_dir()


def _find_run_dirs(root: Path, depth: int = 3) -> list[Path]:
    if _looks_like_run(root):
        return [root]
    if depth == 0 or not root.is_dir():
        return []
    found: list[Path] = []
    for child in sorted(root.iterdir()):
        if child.is_dir() and not child.name.startswith(".") and child.name not in {"mlartifacts", "mlruns", "rules"}:
            found.extend(_find_run_dirs(child, depth - 1))
    return found


def _run_info(path: Path) -> RunInfo:
    manifest = json.loads((path / "manifest.json").read_text("utf-8"))
    summary_path = path / "summary.json"
    summary = json.loads(summary_path.read_text("utf-8")) if summary_path.is_file() else {}
    evolution = path.parent.parent.name if path.parent.name == "runs" and (path.parent.parent / "state.json").is_file() else None
    return RunInfo(
        run_id=str(manifest.get("run_id", path.name)),
        path=path,
        experiment=str(manifest.get("experiment", "")),
        status=str(manifest.get("status", "unknown")),
        generation=int(manifest.get("generation", 0)),
        started_at=str(manifest.get("started_at", "")),
        evolution=evolution,
        summary=summary,
    )


class Runs:
    """Runs on disk, read lazily: tables are pyarrow datasets over every run's Parquet files.

    Run-level filters (:meth:`select`) choose files; row filters (``filter=``
    pyarrow expressions, or the ``kind=``/``tier=``/``generation=`` shortcuts)
    are pushed down into the scan, and :meth:`batches` streams record batches,
    so aggregations (``results.analysis``) work on runs far larger than memory.
    """

    def __init__(self, infos: list[RunInfo]) -> None:
        self.infos = infos

    def __len__(self) -> int:
        return len(self.infos)

    def __repr__(self) -> str:
        return f"Runs({len(self.infos)} runs: {', '.join(i.run_id for i in self.infos[:3])}{', ...' if len(self.infos) > 3 else ''})"

    @property
    def runs(self) -> pd.DataFrame:
        """One row per run: identity, status and headline metrics from its summary."""
        rows = []
        for info in self.infos:
            s = info.summary
            rows.append(
                {
                    "run_id": info.run_id, "experiment": info.experiment, "status": info.status, "generation": info.generation,
                    "evolution": info.evolution, "started_at": info.started_at, "episodes": s.get("episodes"),
                    "attack_episodes": s.get("attack_episodes"), "breaches": s.get("breaches"), "breach_rate": s.get("breach_rate"),
                    "false_positive_rate": s.get("false_positive_rate"), "utility": s.get("utility"),
                    "false_warrant_rate": s.get("false_warrant_rate"), "damage_usd": s.get("damage_usd"), "cost_usd": s.get("cost_usd"),
                    "rules_version": (s.get("rules") or {}).get("version"), "mlflow_run_id": s.get("mlflow_run_id"), "path": str(info.path),
                }
            )
        return pd.DataFrame(rows, columns=list(rows[0]) if rows else ["run_id", "experiment", "status", "generation", "path"])

    def distinct(self) -> tuple[Runs, list[tuple[str, str]]]:
        """These runs with repeats counted once, and ``(repeat, kept)`` run-id pairs.

        Two runs are the same measurement when their experiment's config hash,
        seed and rule-set hash agree: a seeded run gives the same episodes
        whatever the workers, so pooling both would count every episode twice
        and narrow the intervals for nothing. The first finished run of a
        group is kept (the first run at all when none finished).
        """
        groups: dict[tuple[object, ...], list[RunInfo]] = {}
        for info in self.infos:
            s = info.summary
            key = (s.get("config_hash"), s.get("seed"), (s.get("rules") or {}).get("hash"))
            groups.setdefault(key if all(k is not None for k in key) else ("unique", info.run_id), []).append(info)
        kept: list[RunInfo] = []
        repeats: list[tuple[str, str]] = []
        for members in groups.values():
            first = next((m for m in members if m.status == "complete"), members[0])
            kept.append(first)
            repeats.extend((m.run_id, first.run_id) for m in members if m is not first)
        kept.sort(key=lambda i: (i.started_at, i.run_id))
        return Runs(kept), repeats

    def select(self, *, runs: Iterable[str] | None = None, generations: Iterable[int] | None = None, experiments: Iterable[str] | None = None, evolution: str | None = None) -> Runs:
        """The runs matching every given run-level filter."""
        wanted_runs = set(runs) if runs is not None else None
        wanted_generations = set(generations) if generations is not None else None
        wanted_experiments = set(experiments) if experiments is not None else None
        return Runs(
            [
                i
                for i in self.infos
                if (wanted_runs is None or i.run_id in wanted_runs)
                and (wanted_generations is None or i.generation in wanted_generations)
                and (wanted_experiments is None or i.experiment in wanted_experiments)
                and (evolution is None or i.evolution == evolution)
            ]
        )

    def dataset(self, name: str) -> ds.Dataset:
        """A pyarrow dataset over table ``name`` of every selected run."""
        if name not in SCHEMAS:
            raise ValueError(f"unknown table {name!r}; known: {', '.join(TABLES)}")
        files = [str(f) for info in self.infos for f in sorted((info.path / name).glob("*.parquet"))]
        return ds.dataset(files, schema=SCHEMAS[name], format="parquet")

    def batches(self, name: str, columns: list[str] | None = None, filter: ds.Expression | None = None, batch_size: int = 65_536) -> Iterator[pa.RecordBatch]:
        """Stream the rows of table ``name`` (only ``columns``, only rows matching ``filter``)."""
        # Little read-ahead: memory stays flat however many files there are (pyarrow's default keeps ~64 batches in flight).
        yield from self.dataset(name).to_batches(columns=columns, filter=filter, batch_size=batch_size, batch_readahead=2, fragment_readahead=1)

    def table(self, name: str, columns: list[str] | None = None, filter: ds.Expression | None = None) -> pa.Table:
        return self.dataset(name).to_table(columns=columns, filter=filter)

    def episodes(self, columns: list[str] | None = None, *, kind: str | None = None, tier: str | None = None, generation: int | None = None, filter: ds.Expression | None = None) -> pd.DataFrame:
        """Episodes as a pandas DataFrame, filtered while reading."""
        return self.table("episodes", columns, _and(filter, kind=kind, tier=tier, generation=generation)).to_pandas()

    def events(self, columns: list[str] | None = None, filter: ds.Expression | None = None) -> pd.DataFrame:
        return self.table("events", columns, filter).to_pandas()

    def cases(self, columns: list[str] | None = None, filter: ds.Expression | None = None) -> pd.DataFrame:
        return self.table("cases", columns, filter).to_pandas()

    def warrants(self, columns: list[str] | None = None, filter: ds.Expression | None = None) -> pd.DataFrame:
        return self.table("warrants", columns, filter).to_pandas()

    def calls(self, columns: list[str] | None = None, filter: ds.Expression | None = None) -> pd.DataFrame:
        return self.table("calls", columns, filter).to_pandas()

    def generations(self) -> pd.DataFrame:
        """One row per evolution generation (from each evolution's state.json); runs outside an evolution are generation 0."""
        rows = []
        seen: set[str] = set()
        for info in self.infos:
            if info.evolution is None or info.evolution in seen:
                continue
            seen.add(info.evolution)
            state = json.loads((info.path.parent.parent / "state.json").read_text("utf-8"))
            for record in state.get("records", []):
                rows.append({"evolution": info.evolution, "frozen": bool(state.get("frozen")), **record})
        return pd.DataFrame(rows)


def _and(expression: ds.Expression | None, **equal: Any) -> ds.Expression | None:
    for column, value in equal.items():
        if value is not None:
            term = ds.field(column) == value
            expression = term if expression is None else expression & term
    return expression


def load_runs(*paths: str | Path) -> Runs:
    """Runs under ``paths``: run directories, directories of runs, evolution directories (``evo-*``), or a ``runs/`` root.

    Defaults to ``$IMMUNE_RUNS`` or ``runs/``. Raises ``FileNotFoundError`` naming a path that holds no run.
    """
    roots = [Path(p) for p in paths] or [Path(os.environ.get("IMMUNE_RUNS", "runs"))]
    infos: list[RunInfo] = []
    seen: set[Path] = set()
    for root in roots:
        if not root.exists():
            raise FileNotFoundError(f"{root}: no such directory")
        found = _find_run_dirs(root)
        if not found:
            raise FileNotFoundError(f"{root}: no runs found (a run directory has manifest.json and episodes/)")
        for path in found:
            if path.resolve() not in seen:
                seen.add(path.resolve())
                infos.append(_run_info(path))
    infos.sort(key=lambda i: (i.started_at, i.run_id))
    return Runs(infos)
