"""Golden digests: the same experiment and seed give the same episodes, summary and rule sets across refactors.

The digests in ``tests/golden/*.json`` were recorded on main before the
architecture change (issue 13); they pin behaviour, not code shape. A change that is
*meant* to alter results (a new rule set, a new attacker operator, a
dependency that changes training) re-records them with
``IMMUNE_RECORD_GOLDEN=1 pytest -m slow tests/test_run_e2e.py tests/test_evolve_e2e.py``
and says why in its commit message.

The digests hold what is discrete — every verdict, rule id, breach, case and
warrant, and each rule set's rules — and leave out what floating point
decides in its last bits: the learned stage's retrained weights and
calibration, and the guard scores in the episodes and events tables. Those
come out of BLAS and numpy's SIMD kernels, which differ between CPUs (AVX-512
on one machine, AVX2 on the next), while the verdicts they lead to do not.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

GOLDEN_DIR = Path(__file__).parent / "golden"
TABLE_KEYS = {"episodes": ["episode_id"], "events": ["replica", "event_id"], "cases": ["replica", "case_id"], "warrants": ["replica", "warrant_id"]}
# Columns whose last bits depend on the CPU's floating-point kernels (the learned stage's probability;
# guard events carry the score in amount_usd).
CPU_DEPENDENT_COLUMNS = {"episodes": ["input_score"]}
# Columns added to a schema after the digests were recorded: left out while every row holds null (a run
# without conversations), so that adding a column does not re-record what it leaves unchanged.
LATER_NULLABLE_COLUMNS = {"episodes": ["conversation_id", "turn", "strategy"]}
GUARD_EVENT_KINDS = ("guard_input", "guard_output")
# The learned stage's fields that come out of floating-point training; its configuration stays in the digest.
CLASSIFIER_STABLE_FIELDS = ("kind", "ngram_min", "ngram_max", "bits", "words", "window")
# Summary fields that depend on the machine, the clock or the tracking store rather than on the simulation.
VOLATILE_SUMMARY = frozenset(
    {"duration_s", "episodes_per_s", "machine", "mlflow_run_id", "mlflow_tracking_uri", "run_id", "snapshot_seconds", "stage_seconds", "startup_s", "workers"}
)


def table_digest(run_dir: Path, name: str) -> dict[str, Any]:
    """Rows and a sha256 of one table, rows in a canonical order, the run id left out."""
    frame = pd.read_parquet(run_dir / name).drop(columns=["run_id", *CPU_DEPENDENT_COLUMNS.get(name, [])], errors="ignore")
    frame = frame.drop(columns=[c for c in LATER_NULLABLE_COLUMNS.get(name, []) if c in frame and frame[c].isna().all()])
    if name == "events":
        frame.loc[frame["kind"].isin(GUARD_EVENT_KINDS), "amount_usd"] = 0.0
    frame = frame.sort_values(TABLE_KEYS[name], kind="stable").reset_index(drop=True)
    text = frame.to_json(orient="records", lines=True, double_precision=12, date_format="iso")
    return {"rows": len(frame), "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()}


def run_digest(run_dir: Path) -> dict[str, Any]:
    """What a run must reproduce: its summary without volatile fields, and every table's digest."""
    summary = json.loads((run_dir / "summary.json").read_text("utf-8"))
    stable = {k: v for k, v in sorted(summary.items()) if k not in VOLATILE_SUMMARY}
    return {"summary": stable, "tables": {name: table_digest(run_dir, name) for name in TABLE_KEYS if (run_dir / name).exists()}}


def check(name: str, actual: dict[str, Any]) -> None:
    """Compare with ``tests/golden/<name>.json`` (or write it when ``IMMUNE_RECORD_GOLDEN=1``)."""
    path = GOLDEN_DIR / f"{name}.json"
    if os.environ.get("IMMUNE_RECORD_GOLDEN") == "1":
        path.write_text(json.dumps(actual, indent=1, sort_keys=True) + "\n", "utf-8")
        return
    expected = json.loads(path.read_text("utf-8"))
    actual = json.loads(json.dumps(actual))  # the types the file holds (tuples become lists)
    assert actual == expected, _difference(expected, actual)


def _difference(expected: dict[str, Any], actual: dict[str, Any], prefix: str = "") -> str:
    """One line per differing leaf, named by its path (lists of the same length are compared item by item)."""
    lines = []
    for key in sorted(set(expected) | set(actual), key=str):
        a, b = expected.get(key), actual.get(key)
        if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            a, b = dict(enumerate(a)), dict(enumerate(b))
        if isinstance(a, dict) and isinstance(b, dict):
            inner = _difference(a, b, f"{prefix}{key}.")
            if inner:
                lines.append(inner)
        elif a != b:
            lines.append(f"{prefix}{key}: golden {a!r}, now {b!r}")
    return "\n".join(lines)


def ruleset_digest(ruleset: dict[str, Any]) -> str:
    """sha256 of a rule set without its seal, the run ids in mined rules' provenance (those carry the clock) and the learned stage's trained numbers."""
    content = {k: v for k, v in ruleset.items() if k != "hash"}
    if isinstance(content.get("classifier"), dict):
        content["classifier"] = {k: v for k, v in content["classifier"].items() if k in CLASSIFIER_STABLE_FIELDS}
    content["rules"] = [{**r, "provenance": {k: v for k, v in r.get("provenance", {}).items() if k != "run_id"}} for r in ruleset.get("rules", [])]
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode("utf-8")).hexdigest()


def evolution_digest(directory: Path) -> dict[str, Any]:
    """What an evolution must reproduce: its curve, each generation's rule-set content and each generation's run."""
    curve = json.loads((directory / "curve.json").read_text("utf-8"))
    rules = {path.stem: ruleset_digest(json.loads(path.read_text("utf-8"))) for path in sorted((directory / "rules").glob("g*.json"))}
    runs = [_without_rules_seal(run_digest(run)) for run in sorted((directory / "runs").iterdir()) if (run / "summary.json").exists()]
    return {"curve": curve, "rules": rules, "runs": runs}


def _without_rules_seal(digest: dict[str, Any]) -> dict[str, Any]:
    """A generation run's summary names its rule set by seal, which covers the mined rules' run ids: left out."""
    rules = {k: v for k, v in digest["summary"].get("rules", {}).items() if k != "hash"}
    return {**digest, "summary": {**digest["summary"], "rules": rules}}
