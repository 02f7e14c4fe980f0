"""Hand-built run directories with known contents, for testing the readers and the analysis."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kosmoi.schemas import SCHEMAS, to_table
from results.store import RunWriter
from sim.manifest import Manifest

EPISODE_DEFAULTS: dict[str, Any] = {
    "generation": 0, "replica": 0, "attempt": 0, "goal": "drain_wallet", "channel": "direct", "tier": "grunt", "generator": "mutator",
    "agent": "support", "techniques": [], "seed_id": "drain_wallet.0", "parent_ids": [], "payload": "refund me", "blocked_stage": None,
    "rule_ids": [], "input_action": "allow", "input_score": 0.0, "output_action": "allow", "breached": False, "damage_usd": 0.0,
    "secrets_leaked": 0, "records_exfiltrated": 0, "task_completed": None, "cost_usd": 0.0, "sim_time": 0.0,
    "owasp": None, "atlas": None, "poisoned_by": None,  # as runs written before the taxonomy: the readers fill the tags in
    "conversation_id": None, "turn": None, "strategy": None,  # single messages, as runs written before conversations
}


def attack(campaign: str, attempt: int, **fields: Any) -> dict[str, Any]:
    return {"kind": "attack", "campaign_id": campaign, "attempt": attempt, "identity": f"att-{campaign}", **fields}


def benign(identity: str, n: int, **fields: Any) -> dict[str, Any]:
    return {"kind": "benign", "campaign_id": f"b-{identity}-{n}", "identity": identity, "goal": "none", "tier": "user", "seed_id": "",
            "generator": "traffic", "task_completed": True, **fields}


def warrant(subject: str, at: float, benign_subject: bool = False, kind: str = "identity") -> dict[str, Any]:
    return {"subject": subject, "sim_time": at, "subject_is_benign": benign_subject, "subject_kind": kind}


def write_run(
    root: Path, run_id: str, episodes: list[dict[str, Any]], warrants: list[dict[str, Any]] = (), generation: int = 0, segments: int = 1, summary: dict[str, Any] | None = None
) -> Path:
    """A complete run directory: manifest, summary, episodes (split over ``segments`` files) and warrants."""
    run_dir = root / run_id
    writer = RunWriter(run_dir)
    rows = []
    for i, row in enumerate(episodes):
        full = {**EPISODE_DEFAULTS, "generation": generation, **row}
        full.setdefault("episode_id", f"{run_id}.{i}")
        full["run_id"] = run_id
        rows.append(full)
    per = max(1, -(-len(rows) // segments))
    for segment in range(segments):
        chunk = rows[segment * per : (segment + 1) * per]
        if not chunk:
            continue
        columns = {name: [r[name] for r in chunk] for name in SCHEMAS["episodes"].names}
        tables = {"episodes": to_table("episodes", columns)}
        if segment == 0 and warrants:
            wrows = [
                {"run_id": run_id, "replica": 0, "warrant_id": f"w{i}", "action": "revoke_token", "case_ids": [], "reasoning": "test",
                 "subject_kind": "identity", **w}
                for i, w in enumerate(warrants)
            ]
            tables["warrants"] = to_table("warrants", {name: [r.get(name) for r in wrows] for name in SCHEMAS["warrants"].names})
        writer.write_segment(segment, tables)
    writer.finish()
    manifest = Manifest(run_id=run_id, experiment="synthetic", seed=1, config_hash="x", generation=generation, segments=segments, status="complete", committed=list(range(segments)))
    manifest.save(run_dir)
    (run_dir / "summary.json").write_text(json.dumps({"run_id": run_id, "episodes": len(rows), **(summary or {})}), "utf-8")
    return run_dir
