"""The OWASP LLM Top 10 (2025) and MITRE ATLAS coverage of runs: what was attacked, how often it
breached, what it cost, and which defense stage stopped it first.

Every OWASP category appears, attacked or not: a category the project only *checks* (the tool
supply chain, by manifest pins and signed rule sets) shows its sentinel cases, one the project can
attack but these runs did not is ``not attacked``, and one nothing exercises is marked
``not exercised`` — never silently missing. The figures are those of
:func:`results.analysis.rates` and :func:`results.analysis.funnel` grouped by the virtual ``owasp``
and ``atlas`` keys, so they equal the summary's and the report's by construction.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds

from kosmoi.stats import REPS
from kosmoi.taxonomy import ATLAS, CHECKED_ONLY, EXERCISED_BY, OWASP_LLM_2025, case_tags
from kosmoi.types import STAGE_ORDER
from results.analysis import TAG_SOURCES, filled_tags, funnel, rates
from results.store import Runs

ATTACKED = "attacked"
CHECKED = "checked"
NOT_ATTACKED = "not attacked"  # the project can attack it; these runs did not
NOT_EXERCISED = "not exercised"
COVERAGE_COLUMNS = [
    "owasp", "name", "status", "exercised_by", "attacks", "breaches", "breach_rate", "breach_rate_low", "breach_rate_high",
    "campaigns", "damage_usd", "secrets_leaked", "records_exfiltrated", "first_stop", "first_stop_share", "main_stop", "main_stop_share",
    "cases", "warrants", "harmed_sessions", "harm_usd",
]


def _case_counts(runs: Runs) -> tuple[dict[str, int], dict[str, int]]:
    """Sentinel cases and the warrants they led to, per OWASP id (a warrant carries its cases' ids)."""
    cases_by_id: dict[str, int] = {}
    tags_of_case: dict[tuple[str, str], tuple[str, ...]] = {}
    for batch in runs.batches("cases", columns=["run_id", "case_id", "rule", "owasp"]):
        owasp = batch["owasp"].to_pylist()
        for run_id, case_id, rule, ids in zip(batch["run_id"].to_pylist(), batch["case_id"].to_pylist(), batch["rule"].to_pylist(), owasp):
            tags = tuple(ids) if ids is not None else case_tags(rule).owasp  # runs written before tags
            tags_of_case[(run_id, case_id)] = tags
            for tag in tags:
                cases_by_id[tag] = cases_by_id.get(tag, 0) + 1
    warrants_by_id: dict[str, int] = {}
    for batch in runs.batches("warrants", columns=["run_id", "case_ids"]):
        for run_id, case_ids in zip(batch["run_id"].to_pylist(), batch["case_ids"].to_pylist()):
            for tag in sorted({t for c in case_ids for t in tags_of_case.get((run_id, c), ())}):
                warrants_by_id[tag] = warrants_by_id.get(tag, 0) + 1
    return cases_by_id, warrants_by_id


_NO_STOP: dict[str, Any] = {"first_stop": None, "first_stop_share": 0.0, "main_stop": None, "main_stop_share": 0.0}


def _cross_session_harm(runs: Runs) -> dict[str, tuple[int, float]]:
    """Per id: sessions harmed by a document another episode planted (``poisoned_by``), and their damage, credited
    to the ids of the planting episode."""
    harmed: dict[tuple[str, str], list[float]] = {}
    poisoned = ds.field("poisoned_by").is_valid()
    for batch in runs.batches("episodes", columns=["run_id", "poisoned_by", "damage_usd"], filter=poisoned):
        for run_id, planter, damage in zip(batch["run_id"].to_pylist(), batch["poisoned_by"].to_pylist(), batch["damage_usd"].to_pylist()):
            harmed.setdefault((run_id, planter), []).append(float(damage))
    out: dict[str, tuple[int, float]] = {}
    if not harmed:
        return out
    planters = ds.field("episode_id").isin(sorted({p for _, p in harmed}))
    for batch in runs.batches("episodes", columns=["run_id", "episode_id", *TAG_SOURCES, "owasp"], filter=planters):
        table = pa.Table.from_batches([batch])
        for run_id, episode, tags in zip(table["run_id"].to_pylist(), table["episode_id"].to_pylist(), filled_tags(table, "owasp").to_pylist()):
            damages = harmed.get((run_id, episode), [])
            for tag in tags or ():
                count, usd = out.get(tag, (0, 0.0))
                out[tag] = (count + len(damages), usd + sum(damages))
    return out


def _stops(runs: Runs, key: str) -> dict[str, dict[str, Any]]:
    """Per id: the earliest stage (in the order attacks meet them) that stopped any of its attacks, and the
    stage that stopped the most, each with its share of the id's attacks."""
    frame = funnel(runs, [key])
    out: dict[str, dict[str, Any]] = {}
    if frame.empty:
        return out
    order = {stage.value: i for i, stage in enumerate(STAGE_ORDER)}
    for tag, group in frame[frame["stage"].isin(order)].groupby(key):
        stopping = group[group["blocked"] > 0].sort_values("stage", key=lambda s: s.map(order))
        attacks = int(group["reached"].max())
        if stopping.empty or not attacks:
            out[str(tag)] = dict(_NO_STOP)
            continue
        first, main = stopping.iloc[0], stopping.loc[stopping["blocked"].idxmax()]
        out[str(tag)] = {
            "first_stop": str(first["stage"]), "first_stop_share": int(first["blocked"]) / attacks,
            "main_stop": str(main["stage"]), "main_stop_share": int(main["blocked"]) / attacks,
        }
    return out


# Figures copied from results.analysis.rates for an attacked id, and what an id nothing attacked shows.
_RATE_FIGURES: dict[str, Any] = {
    "attacks": 0, "breaches": 0, "breach_rate": math.nan, "breach_rate_low": math.nan, "breach_rate_high": math.nan, "campaigns": 0,
    "damage_usd": 0.0, "secrets_leaked": 0, "records_exfiltrated": 0,
}


def _attacked(runs: Runs, key: str, reps: int, seed: int) -> dict[str, dict[str, Any]]:
    """Per id of ``key`` with attacks: the rate figures, as plain Python values."""
    by = rates(runs, [key], reps=reps, seed=seed)
    rows = by[by["attacks"] > 0].to_dict(orient="records") if not by.empty else []
    return {str(r[key]): {name: type(default)(r[name]) for name, default in _RATE_FIGURES.items()} for r in rows}


def coverage(runs: Runs, *, reps: int = REPS, seed: int = 0) -> pd.DataFrame:
    """One row per OWASP LLM 2025 category (all ten, in list order); see :data:`COVERAGE_COLUMNS`."""
    attacked = _attacked(runs, "owasp", reps, seed)
    stops = _stops(runs, "owasp")
    cases, warrants = _case_counts(runs)
    harm = _cross_session_harm(runs)
    rows: list[dict[str, Any]] = []
    for tag, name in OWASP_LLM_2025.items():
        status = ATTACKED if tag in attacked else CHECKED if tag in CHECKED_ONLY else NOT_ATTACKED if tag in EXERCISED_BY else NOT_EXERCISED
        sessions, usd = harm.get(tag, (0, 0.0))
        rows.append({
            "owasp": tag, "name": name, "status": status, "exercised_by": EXERCISED_BY.get(tag, ""),
            **attacked.get(tag, _RATE_FIGURES), **(stops.get(tag, _NO_STOP) if tag in attacked else _NO_STOP),
            "cases": cases.get(tag, 0), "warrants": warrants.get(tag, 0), "harmed_sessions": sessions, "harm_usd": usd,
        })
    return pd.DataFrame(rows, columns=COVERAGE_COLUMNS)


def atlas_coverage(runs: Runs, *, reps: int = REPS, seed: int = 0) -> pd.DataFrame:
    """One row per MITRE ATLAS technique the taxonomy knows: attacks, breaches and breach rate (0 attacks: not exercised)."""
    attacked = _attacked(runs, "atlas", reps, seed)
    columns = ["attacks", "breaches", "breach_rate", "breach_rate_low", "breach_rate_high"]
    rows = [{"atlas": tag, "name": name, **{c: attacked.get(tag, _RATE_FIGURES)[c] for c in columns}} for tag, name in ATLAS.items()]
    return pd.DataFrame(rows)


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 6)
    return value


def coverage_summary(runs: Runs, *, reps: int = REPS, seed: int = 0) -> dict[str, Any]:
    """The coverage matrix as JSON for ``summary.json``: ``owasp`` (every category) and ``atlas`` (every technique)."""
    owasp = {
        row["owasp"]: {k: _clean(v) for k, v in row.items() if k != "owasp"}
        for row in coverage(runs, reps=reps, seed=seed).to_dict(orient="records")
    }
    atlas = {
        row["atlas"]: {k: _clean(v) for k, v in row.items() if k != "atlas"}
        for row in atlas_coverage(runs, reps=reps, seed=seed).to_dict(orient="records")
    }
    return {"owasp": owasp, "atlas": atlas, "not_exercised": [k for k, v in owasp.items() if v["status"] == NOT_EXERCISED]}

