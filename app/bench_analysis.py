"""Benchmark of the analysis layer: seconds and peak memory per aggregation over real runs."""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from results import analysis
from results.store import Runs


@dataclass(frozen=True, slots=True)
class AnalysisTiming:
    name: str
    seconds: float
    peak_rss_mb: float  # of this process so far (Linux ru_maxrss)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def parquet_bytes(runs: Runs) -> int:
    return sum(f.stat().st_size for info in runs.infos for f in (info.path / "episodes").glob("*.parquet"))


def time_analyses(runs: Runs, report_path: Path | None = None) -> list[AnalysisTiming]:
    """Run the common aggregations (and optionally the report) once each; time them."""
    jobs: list[tuple[str, Callable[[], object]]] = [
        ("rates (overall)", lambda: analysis.rates(runs)),
        ("rates by generation", lambda: analysis.rates(runs, ["generation"])),
        ("rates by technique family", lambda: analysis.rates(runs, ["family"])),
        ("rates by goal", lambda: analysis.rates(runs, ["goal"])),
        ("funnel", lambda: analysis.funnel(runs)),
        ("time to contain", lambda: analysis.containment(runs)),
        ("top surviving attacks", lambda: analysis.survivors(runs, 25)),
    ]
    if report_path is not None:
        from results.report import write_report

        jobs.append(("HTML report (all views)", lambda: write_report(runs, report_path)))
    timings = []
    for name, job in jobs:
        started = time.perf_counter()
        job()
        timings.append(AnalysisTiming(name, time.perf_counter() - started, peak_rss_mb()))
    return timings
