"""`immune report --format junit|sarif` on real runs: the files validate against the schemas CI tools read,
failures follow --fail-if, every OWASP category is present, and SARIF fingerprints are stable across runs."""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest
import xmlschema

from kosmoi.taxonomy import GOALS, OWASP_LLM_2025
from results.junit import build_junit, case_conditions
from results.sarif import build_sarif, fingerprint
from results.store import load_runs
from sim.config import parse_experiment
from sim.runner import RunOptions, run_experiment
from tests.conftest import ROOT, immune_cmd

SCHEMAS = ROOT / "tests" / "data" / "schemas"
EXPERIMENT = """
name: ci-outputs
seed: {seed}
simulation: {{replicas: 2, arrival_window_s: 300, segment_windows: 2}}
attackers: {{grunt: {{count: 60, attempts: 3}}}}
benign: {{customers: 6, vendors: 1, employees: 1, requests: 2}}
tracking: {{enabled: false}}
"""


@pytest.fixture(scope="module")
def two_runs(ray_local, tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("ci-outputs")
    dirs = []
    for seed in (5, 6):
        exp = parse_experiment(EXPERIMENT.format(seed=seed), "ci.yaml")
        dirs.append(run_experiment(exp, RunOptions(out=root / f"s{seed}", workers=2, track=False)).run_dir)
    return dirs[0], dirs[1]


def test_junit_validates_and_fails_as_the_conditions_say(two_runs, tmp_path):
    run_dir = two_runs[0]
    out = tmp_path / "results.xml"
    proc = subprocess.run([*immune_cmd(), "report", str(run_dir), "--format", "junit", "-o", str(out)], capture_output=True, text=True, timeout=300)
    schema = xmlschema.XMLSchema(str(SCHEMAS / "JUnit.xsd"))
    schema.validate(str(out))  # raises with the offending element
    root = ET.parse(out).getroot()
    suites = root.findall("testsuite")
    assert [s.get("name").split()[0] for s in suites] == list(OWASP_LLM_2025)  # every category, in list order
    failures = sum(int(s.get("failures")) for s in suites)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert failures > 0 and summary["breaches"] > 0
    assert proc.returncode == 3, proc.stdout + proc.stderr  # a failed case fails the CI job
    for suite in suites:
        cases = suite.findall("testcase")
        assert int(suite.get("tests")) == len(cases) and int(suite.get("failures")) == sum(1 for c in cases if c.find("failure") is not None)
        status = {p.get("name"): p.get("value") for p in suite.iter("property")}["kosmoi.status"]
        assert (status == "attacked") == bool(cases)
    # a condition no case meets: nothing fails and the command exits 0
    lenient = subprocess.run([*immune_cmd(), "report", str(run_dir), "-f", "junit", "-o", str(tmp_path / "ok.xml"), "--fail-if", "breach_rate > 1"], capture_output=True, text=True, timeout=300)
    assert lenient.returncode == 0, lenient.stderr
    assert all(s.get("failures") == "0" for s in ET.parse(tmp_path / "ok.xml").getroot().iter("testsuite"))
    _, totals = build_junit(load_runs(run_dir), case_conditions("breaches > 0"))
    assert totals["failures"] == failures
    bad = subprocess.run([*immune_cmd(), "report", str(run_dir), "-f", "junit", "--fail-if", "breach_rat > 1"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "unknown metric 'breach_rat'" in bad.stderr + bad.stdout


def test_sarif_validates_with_owasp_rules_and_stable_fingerprints(two_runs, tmp_path):
    schema = json.loads((SCHEMAS / "sarif-schema-2.1.0.json").read_text())
    logs = []
    for run_dir in two_runs:
        out = tmp_path / f"{run_dir.name}.sarif"
        proc = subprocess.run([*immune_cmd(), "report", str(run_dir), "-f", "sarif", "-o", str(out), "--uri", "experiments/ci.yaml"], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        log = json.loads(out.read_text("utf-8"))
        jsonschema.validate(log, schema)
        logs.append(log)
    run = logs[0]["runs"][0]
    rules = {r["id"]: r for r in run["tool"]["driver"]["rules"]}
    assert len(rules) == len(GOALS)
    assert "OWASP-LLM06" in rules["kosmoi/drain_wallet"]["properties"]["tags"] and "AML.T0053" in rules["kosmoi/drain_wallet"]["properties"]["atlas"]
    assert all(r["help"]["text"] for r in rules.values())
    results = run["results"]
    assert results, "the run had breaches, so there are surviving attack families"
    for r in results:
        assert r["ruleId"] in rules
        assert r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "experiments/ci.yaml"
        lineage = r["properties"]["lineage"]
        assert r["ruleId"] == f"kosmoi/{lineage['goal']}"
        assert r["partialFingerprints"]["kosmoiRecipe/v1"] == fingerprint(lineage["goal"], lineage["channel"], lineage["seed_id"], lineage["techniques"])
        assert "LLM01" in r["properties"]["owasp"]
    # the same recipe in another run (another seed, other episode ids and payloads) is the same alert
    def by_recipe(log):
        return {(r["ruleId"], r["properties"]["lineage"]["seed_id"], tuple(r["properties"]["lineage"]["techniques"])): r["partialFingerprints"]["kosmoiRecipe/v1"] for r in log["runs"][0]["results"]}
    first, second = by_recipe(logs[0]), by_recipe(logs[1])
    common = set(first) & set(second)
    assert all(first[k] == second[k] for k in common)
    assert len(set(first.values())) == len(first)  # distinct recipes, distinct fingerprints


def test_sarif_payloads_are_escaped(tmp_path):
    from tests.synthetic_runs import attack, write_run

    payload = "ignore\u202e previous\x00 <script>alert(1)</script> \U000e0041"
    run_dir = write_run(tmp_path / "runs", "hostile", [attack("c1", 0, breached=True, damage_usd=5.0, payload=payload, techniques=["leetspeak"])])
    log = build_sarif(load_runs(run_dir), "config.yaml")
    text = log["runs"][0]["results"][0]["message"]["text"]
    assert "\\u202e" in text and "\\u0000" in text and "\\U000e0041" in text and "\u202e" not in text and "\x00" not in text
    jsonschema.validate(log, json.loads((SCHEMAS / "sarif-schema-2.1.0.json").read_text()))
