"""Runs as SARIF 2.1.0, the format code-scanning dashboards (GitHub, GitLab, Azure DevOps) read.

One *rule* per attack goal, with its OWASP LLM 2025 and MITRE ATLAS ids (as tags and in the
properties) and help text saying what the damage is and what stops it. One *result* per surviving
attack family — the recipe that breached: goal, channel, seed and operator sequence — with its
lineage, how often it breached, the damage, what the defenses made of it, and a fingerprint that
depends only on the recipe, so the same survivor in tomorrow's run is the same alert. Payloads are
shown escaped and cut (never rendered as markup: SARIF viewers show ``message.text`` as text).
"""

from __future__ import annotations

import hashlib
import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds

from attackers.mutations import families_of
from kosmoi.taxonomy import ATLAS, GOALS, OWASP_LLM_2025, Tags, attack_tags, episode_tags
from kosmoi.types import EpisodeKind
from results.display import printable
from results.store import Runs

SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
FINGERPRINT = "kosmoiRecipe/v1"
PAYLOAD_CHARS = 400
MAX_RESULTS = 1000

GOAL_HELP: dict[str, tuple[str, str]] = {
    "exfiltrate_secret": (
        "A secret (API key, credential, customer data) left the system in a reply or a tool call.",
        "Tighten the output guard's secret and PII detectors and canaries; scope vault tools to the roles that need them.",
    ),
    "drain_wallet": (
        "Money moved to an account the attacker controls.",
        "Keep transfers behind the business limits and a new-payee sentinel; require step-up approval for payouts.",
    ),
    "tamper_price": (
        "A catalog price was changed below its floor.",
        "Enforce the price floor at the tool, not in the prompt; alert on price drops.",
    ),
    "escalate_privilege": (
        "A caller used a tool outside its role's scope.",
        "Check every tool call's token scope (zero trust) and revoke sessions the court convicts.",
    ),
    "leak_system_prompt": (
        "The agent's system prompt (or a canary planted in it) appeared in a reply.",
        "Plant canaries in the system prompt and block replies that carry them; keep no secrets in prompts.",
    ),
    "exhaust_service": (
        "The agent was driven into runaway tool loops or oversized work.",
        "Cap turns, tool calls and message length per session; let the rate sentinels warrant abusers.",
    ),
    "unsafe_output": (
        "The agent's reply carried active content a downstream consumer would execute: script or handlers for the web view, "
        "stacked writes for the reporting query, or a download-and-run command for the runbook.",
        "Encode replies for the context they are rendered in, run report SQL read-only and parameterised, and keep the output "
        "guard's markup, SQL and command detectors on.",
    ),
    "poison_knowledge": (
        "An attacker's document entered the knowledge base that other customers' sessions retrieve (a product review), "
        "where it can steer the agent against them.",
        "Moderate what agents post to retrievable stores, scan retrieved documents before they enter a model's context, "
        "and purge what a convicted identity wrote.",
    ),
    "misinform": (
        "The agent stated a false price, refund policy or payment account to a customer as fact; the company may have to honour it.",
        "Answer prices and policies from the catalog and policy tables, never from the conversation; keep the output guard's fact check on.",
    ),
}


def rule_id(goal: str) -> str:
    """The SARIF rule id of an attack goal."""
    return f"kosmoi/{goal}"


def fingerprint(goal: str, channel: str, seed_id: str, techniques: list[str]) -> str:
    """A digest of the recipe alone (not of the run, the payload text or the seed), stable across runs."""
    recipe = json.dumps([goal, channel, seed_id, list(techniques)], separators=(",", ":"))
    return hashlib.sha256(recipe.encode("utf-8")).hexdigest()[:32]


def _tag_list(tags: Tags) -> list[str]:
    return [*(f"OWASP-{t}" for t in tags.owasp), *(f"ATLAS-{t}" for t in tags.atlas), "security"]


def _rule(goal: str) -> dict[str, Any]:
    tags = attack_tags(goal)
    damage, fix = GOAL_HELP.get(goal, ("An attack reached its goal.", "Review the stage that let it through."))
    owasp = "; ".join(f"{t} {OWASP_LLM_2025[t]}" for t in tags.owasp)
    atlas = "; ".join(f"{t} {ATLAS[t]}" for t in tags.atlas)
    return {
        "id": rule_id(goal),
        "name": "".join(part.capitalize() for part in goal.split("_")),
        "shortDescription": {"text": f"Attack goal reached: {goal.replace('_', ' ')}"},
        "fullDescription": {"text": damage},
        "help": {
            "text": f"{damage} {fix} OWASP LLM 2025: {owasp}. MITRE ATLAS: {atlas}.",
            "markdown": f"{damage}\n\n**Remediation:** {fix}\n\n**OWASP LLM 2025:** {owasp}  \n**MITRE ATLAS:** {atlas}",
        },
        "defaultConfiguration": {"level": "error"},
        "properties": {"tags": _tag_list(tags), "owasp": list(tags.owasp), "atlas": list(tags.atlas), "security-severity": "8.0"},
    }


_COLUMNS = [
    "run_id", "episode_id", "campaign_id", "attempt", "goal", "channel", "tier", "generator", "seed_id", "techniques", "parent_ids",
    "payload", "input_action", "input_score", "rule_ids", "output_action", "damage_usd", "secrets_leaked", "records_exfiltrated",
]


def _survivors(runs: Runs) -> pd.DataFrame:
    """Breached attacks grouped by recipe: count, damage, and the most damaging example of each."""
    breached = (ds.field("kind") == EpisodeKind.ATTACK.value) & (ds.field("breached") == True)  # noqa: E712 - a pyarrow expression
    frames = [pa.Table.from_batches([b]).to_pandas() for b in runs.batches("episodes", columns=_COLUMNS, filter=breached)]
    if not frames:
        return pd.DataFrame(columns=[*_COLUMNS, "fingerprint", "breaches", "total_damage_usd", "runs"])
    frame = pd.concat(frames, ignore_index=True)
    frame["techniques"] = frame["techniques"].map(list)
    frame["fingerprint"] = [fingerprint(g, c, s, t) for g, c, s, t in zip(frame["goal"], frame["channel"], frame["seed_id"], frame["techniques"])]
    grouped = frame.groupby("fingerprint").agg(breaches=("episode_id", "size"), total_damage_usd=("damage_usd", "sum"), runs=("run_id", "nunique"))
    best = frame.sort_values(["damage_usd", "run_id", "episode_id"], ascending=[False, True, True], kind="stable").drop_duplicates("fingerprint")
    out = best.set_index("fingerprint").join(grouped).reset_index()
    return out.sort_values(["total_damage_usd", "breaches", "fingerprint"], ascending=[False, False, True], kind="stable").head(MAX_RESULTS)


def _result(row: pd.Series, uri: str) -> dict[str, Any]:
    tags = episode_tags(row["goal"], row["channel"], families_of(row["techniques"]))
    recipe = " + ".join(row["techniques"]) or "no operator"
    missed = f"input guard {row['input_action']} (score {row['input_score']:.2f}{'; rules ' + ', '.join(row['rule_ids']) if len(row['rule_ids']) else ''}), output guard {row['output_action']}"
    damage = f"${row['total_damage_usd']:,.2f}" + (f", {int(row['secrets_leaked'])} secrets" if row["secrets_leaked"] else "") + (f", {int(row['records_exfiltrated'])} records" if row["records_exfiltrated"] else "")
    return {
        "ruleId": rule_id(row["goal"]),
        "level": "error",  # every result is a breach the oracle measured
        "message": {
            "text": f"{row['goal']} reached {int(row['breaches'])}x by the {row['channel']} recipe '{row['seed_id']} | {recipe}' "
            f"({row['tier']} tier, {row['generator']}); damage {damage}. Missed by: {missed}. Example payload: {printable(str(row['payload']), PAYLOAD_CHARS)}"
        },
        "locations": [{"physicalLocation": {"artifactLocation": {"uri": uri}, "region": {"startLine": 1}}}],
        "partialFingerprints": {FINGERPRINT: row["fingerprint"]},
        "properties": {
            "owasp": list(tags.owasp), "atlas": list(tags.atlas), "tags": _tag_list(tags), "breaches": int(row["breaches"]),
            "damage_usd": round(float(row["total_damage_usd"]), 2), "runs": int(row["runs"]),
            "lineage": {
                "goal": row["goal"], "channel": row["channel"], "seed_id": row["seed_id"], "techniques": list(row["techniques"]), "attempt": int(row["attempt"]),
                "parent_ids": list(row["parent_ids"]), "campaign_id": row["campaign_id"], "episode_id": row["episode_id"], "run_id": row["run_id"],
            },
        },
    }


def build_sarif(runs: Runs, uri: str) -> dict[str, Any]:
    """The SARIF log: one run of the ``kosmoi-immune`` tool with every goal's rule and every surviving recipe."""
    if len(runs) == 0:
        raise ValueError("no runs to report on")
    runs, _ = runs.distinct()
    survivors = _survivors(runs)
    results = [_result(row, uri) for _, row in survivors.iterrows()]
    try:
        tool_version = version("kosmoi-immune")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without installing
        tool_version = "0"
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": {"name": "kosmoi-immune", "version": tool_version, "rules": [_rule(g) for g in GOALS]}},
                "automationDetails": {"id": "kosmoi-immune/" + "+".join(sorted({i.experiment for i in runs.infos}))},
                "results": results,
                "properties": {"runs": [i.run_id for i in runs.infos], "survivors_listed": len(results), "survivors_cap": MAX_RESULTS},
            }
        ],
    }


def write_sarif(runs: Runs, path: Path, uri: str) -> dict[str, int]:
    """Write the SARIF file; returns its counts (``rules``, ``results``)."""
    log = build_sarif(runs, uri)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(log, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return {"rules": len(log["runs"][0]["tool"]["driver"]["rules"]), "results": len(log["runs"][0]["results"])}
