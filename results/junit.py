"""Runs as JUnit XML, the format CI systems (GitLab, Jenkins, GitHub Actions reporters) read.

One ``<testsuite>`` per OWASP LLM 2025 category, all ten in list order; one ``<testcase>`` per
goal × technique family in every category its attacks map to (``kosmoi.taxonomy.attack_tags``).
A case fails when a ``--fail-if``-style condition on its figures holds (default: any breach); a
category nothing attacks is an empty suite whose ``kosmoi.status`` property says why. The file
follows the Apache Ant JUnit schema that CI tools read (every required attribute and element).
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from kosmoi.conditions import Condition, parse_conditions
from kosmoi.taxonomy import OWASP_LLM_2025, attack_tags
from results.analysis import rates
from results.coverage import coverage
from results.store import Runs

DEFAULT_FAIL_IF = "breaches > 0"
CASE_METRICS = ("attacks", "breaches", "breach_rate", "breach_rate_low", "breach_rate_high", "campaigns", "damage_usd", "secrets_leaked", "records_exfiltrated")


def case_conditions(text: str = DEFAULT_FAIL_IF) -> list[Condition]:
    """Parse failure conditions on a test case's figures (:data:`CASE_METRICS`), e.g. ``"breach_rate > 0.05"``."""
    return parse_conditions(text, dict.fromkeys(CASE_METRICS, 0.0))


def _timestamp(runs: Runs) -> str:
    starts = sorted(i.started_at for i in runs.infos if i.started_at)
    when = dt.datetime.fromisoformat(starts[0]) if starts else dt.datetime.now(dt.UTC)
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _cases(runs: Runs) -> pd.DataFrame:
    frame = rates(runs, ["goal", "family"])
    if frame.empty:
        return frame
    frame = frame[frame["attacks"] > 0].sort_values(["goal", "family"]).reset_index(drop=True)
    tags = [attack_tags(g, [f]) for g, f in zip(frame["goal"], frame["family"])]
    frame["owasp"], frame["atlas"] = [t.owasp for t in tags], [t.atlas for t in tags]
    return frame


def _figures(row: pd.Series) -> dict[str, float]:
    return {name: float(row[name]) for name in CASE_METRICS}


def _message(row: pd.Series, tripped: list[Condition]) -> str:
    return (
        f"{'; '.join(str(c) for c in tripped)}: {int(row['breaches']):,} of {int(row['attacks']):,} attacks breached "
        f"(breach rate {row['breach_rate']:.2%}, 95 % CI {row['breach_rate_low']:.2%}–{row['breach_rate_high']:.2%}, "
        f"{int(row['campaigns']):,} campaigns); damage ${row['damage_usd']:,.2f}, {int(row['secrets_leaked'])} secrets, "
        f"{int(row['records_exfiltrated'])} records"
    )


def _properties(parent: ET.Element, values: dict[str, str]) -> None:
    props = ET.SubElement(parent, "properties")
    for name, value in values.items():
        ET.SubElement(props, "property", name=name, value=value)


def build_junit(runs: Runs, conditions: Sequence[Condition] | None = None) -> tuple[ET.ElementTree, dict[str, int]]:
    """The JUnit document and its counts (``tests``, ``failures``)."""
    conditions = list(conditions) if conditions is not None else case_conditions()
    if len(runs) == 0:
        raise ValueError("no runs to report on")
    runs, _ = runs.distinct()
    cases = _cases(runs)
    status = coverage(runs).set_index("owasp")
    stamp = _timestamp(runs)
    root = ET.Element("testsuites")  # the Ant schema gives the aggregate no attributes; totals are the suites' sums
    totals = {"tests": 0, "failures": 0}
    for index, (tag, name) in enumerate(OWASP_LLM_2025.items()):
        mine = cases[[tag in ids for ids in cases["owasp"]]] if not cases.empty else cases
        failures = 0
        suite = ET.SubElement(root, "testsuite", name=f"{tag} {name}", package="kosmoi.owasp", id=str(index), timestamp=stamp, hostname="kosmoi-immune")
        _properties(suite, {
            "kosmoi.owasp": tag, "kosmoi.status": str(status.loc[tag, "status"]), "kosmoi.exercised_by": str(status.loc[tag, "exercised_by"]),
            "kosmoi.runs": ",".join(i.run_id for i in runs.infos), "kosmoi.fail_if": ", ".join(str(c) for c in conditions),
        })
        for _, row in mine.iterrows():
            case = ET.SubElement(suite, "testcase", name=f"{row['goal']} × {row['family']}", classname=f"kosmoi.{tag}.{row['goal']}", time="0")
            figures = _figures(row)
            tripped = [c for c in conditions if c.holds(figures)]
            if tripped:
                failures += 1
                failure = ET.SubElement(case, "failure", message=_message(row, tripped), type="kosmoi.breach")
                failure.text = f"OWASP {', '.join(row['owasp'])}; MITRE ATLAS {', '.join(row['atlas'])}"
        suite.set("tests", str(len(mine)))
        suite.set("failures", str(failures))
        suite.set("errors", "0")
        suite.set("skipped", "0")
        suite.set("time", "0")
        ET.SubElement(suite, "system-out").text = _suite_summary(tag, status.loc[tag])
        ET.SubElement(suite, "system-err")
        totals["tests"] += len(mine)
        totals["failures"] += failures
    ET.indent(root)
    return ET.ElementTree(root), totals


def _suite_summary(tag: str, row: pd.Series) -> str:
    if row["status"] != "attacked":
        return f"{tag}: {row['status']}" + (f" — {row['exercised_by']}" if row["exercised_by"] else "")
    return (
        f"{tag}: {int(row['attacks']):,} attacks, breach rate {row['breach_rate']:.2%} "
        f"[{row['breach_rate_low']:.2%}, {row['breach_rate_high']:.2%}], damage ${row['damage_usd']:,.2f}; "
        f"first stopped by {row['first_stop'] or '–'}, most by {row['main_stop'] or '–'}"
    )


def write_junit(runs: Runs, path: Path, conditions: Sequence[Condition] | None = None) -> dict[str, Any]:
    """Write the JUnit XML file; returns its counts."""
    tree, totals = build_junit(runs, conditions)
    tmp = path.with_name(path.name + ".tmp")
    tree.write(tmp, encoding="utf-8", xml_declaration=True)
    tmp.replace(path)
    return totals
