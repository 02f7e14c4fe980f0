"""Rule-set history for notebooks and reports: versions of an evolution, what each added, registry and promotions."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from evolve.registry import MODEL_NAME, history
from sim.environment import apply_defaults
from targets.rules import load_ruleset


def rule_versions(evolution_dir: str | Path) -> pd.DataFrame:
    """One row per rule set of an evolution (``rules/gNNN.json``): size, what it added and removed, lineage."""
    directory = Path(evolution_dir)
    files = sorted((directory / "rules").glob("g*.json"))
    if not files:
        raise FileNotFoundError(f"{directory}: no rules/gNNN.json files (is it an evo-<id> directory?)")
    rows = []
    previous: dict[str, str] = {}
    previous_weights = None
    for path in files:
        ruleset = load_ruleset(path)
        current = {rule.id: rule.pattern for rule in ruleset.rules}
        weights = ruleset.classifier.weights if ruleset.classifier else None
        rows.append(
            {
                "generation": int(path.stem[1:]),
                "version": ruleset.version,
                "parent": ruleset.parent,
                "hash": ruleset.hash,
                "rules": len(ruleset.rules),
                "mined": sum(1 for r in ruleset.rules if r.provenance.get("source") == "mined"),
                "added": sorted(current.keys() - previous.keys()) if previous else [],
                "removed": sorted(previous.keys() - current.keys()),
                "classifier_retrained": previous_weights is not None and weights != previous_weights,
            }
        )
        previous, previous_weights = current, weights
    return pd.DataFrame(rows)


def mined_rules(evolution_dir: str | Path) -> pd.DataFrame:
    """Every mined rule of the evolution's latest rule set with its provenance (generation, run, attacks, coverage)."""
    files = sorted((Path(evolution_dir) / "rules").glob("g*.json"))
    if not files:
        raise FileNotFoundError(f"{evolution_dir}: no rules/gNNN.json files")
    rows = []
    for rule in load_ruleset(files[-1]).rules:
        if rule.provenance.get("source") != "mined":
            continue
        p = rule.provenance
        rows.append(
            {
                "id": rule.id, "pattern": rule.pattern, "generation": p.get("generation"), "run_id": p.get("run_id"),
                "cluster_size": p.get("cluster_size"), "coverage": p.get("coverage"), "benign_fpr": p.get("benign_fpr"),
                "tokens": p.get("tokens"), "attack_ids": p.get("attack_ids"),
            }
        )
    return pd.DataFrame(rows)


def registry_versions(tracking_uri: str, name: str = MODEL_NAME) -> pd.DataFrame:
    """The registered versions of ``name``: aliases, generation, parent, size, hash, when."""
    apply_defaults()
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    rows = []
    versions = client.search_model_versions(f"name='{name}'")
    aliases: dict[str, list[str]] = {}
    if versions:  # search results do not carry aliases; the registered model does
        for alias, number in (client.get_registered_model(name).aliases or {}).items():
            aliases.setdefault(str(number), []).append(alias)
    for version in versions:
        tags = version.tags or {}
        rows.append(
            {
                "version": int(version.version),
                "aliases": ",".join(sorted(aliases.get(str(version.version), []))),
                "generation": int(tags["kosmoi.generation"]) if tags.get("kosmoi.generation", "").isdigit() else None,
                "parent_version": tags.get("kosmoi.parent_version") or None,
                "rules": int(tags["kosmoi.rules"]) if tags.get("kosmoi.rules", "").isdigit() else None,
                "hash": tags.get("kosmoi.hash"),
                "source_runs": tags.get("kosmoi.source_runs"),
                "created": dt.datetime.fromtimestamp(version.creation_timestamp / 1000, dt.UTC),
                "promoted_at": tags.get("kosmoi.promoted_at"),
            }
        )
    return pd.DataFrame(rows).sort_values("version").reset_index(drop=True) if rows else pd.DataFrame(columns=["version", "aliases", "generation"])


def alias_moves(tracking_uri: str, name: str = MODEL_NAME) -> pd.DataFrame:
    """Every recorded move of the ``staging`` and ``production`` aliases, oldest first."""
    moves = history(tracking_uri, name)
    return pd.DataFrame(moves, columns=["at", "alias", "version", "from", "by", "forced", "rollback", "reason"])
