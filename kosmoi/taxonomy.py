"""The OWASP Top 10 for LLM Applications (2025) and MITRE ATLAS view: one table of what maps to what.

Every attack goal, delivery channel, technique family, guard rule family,
sentinel case kind and warrant gets OWASP ``LLM01``–``LLM10`` ids and ATLAS
technique ids from here; episodes and cases carry them, the summary and the
report group by them, and categories nothing maps to are reported as not
exercised — never silently missing.

The mapping is ours (an honest reading of the OWASP 2025 list and of ATLAS;
no vendor's mapping was copied): a goal names the damage (what OWASP
category the harm falls in), the channel and the techniques name how the
attack got there (prompt injection, jailbreak).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

OWASP_LLM_2025: dict[str, str] = {
    "LLM01": "Prompt Injection",
    "LLM02": "Sensitive Information Disclosure",
    "LLM03": "Supply Chain",
    "LLM04": "Data and Model Poisoning",
    "LLM05": "Improper Output Handling",
    "LLM06": "Excessive Agency",
    "LLM07": "System Prompt Leakage",
    "LLM08": "Vector and Embedding Weaknesses",
    "LLM09": "Misinformation",
    "LLM10": "Unbounded Consumption",
}

ATLAS: dict[str, str] = {
    "AML.T0051.000": "LLM Prompt Injection: Direct",
    "AML.T0051.001": "LLM Prompt Injection: Indirect",
    "AML.T0054": "LLM Jailbreak",
    "AML.T0056": "LLM Meta Prompt Extraction",
    "AML.T0057": "LLM Data Leakage",
    "AML.T0053": "AI Agent Tool Invocation (formerly LLM Plugin Compromise)",
    "AML.T0029": "Denial of ML Service",
    "AML.T0010": "ML Supply Chain Compromise",
    "AML.T0050": "Command and Scripting Interpreter",
    "AML.T0048.000": "External Harms: Financial Harm",
    "AML.T0070": "RAG Poisoning",
}


@dataclass(frozen=True, slots=True)
class Tags:
    """OWASP and ATLAS ids, each sorted and unique."""

    owasp: tuple[str, ...] = ()
    atlas: tuple[str, ...] = ()

    def __or__(self, other: Tags) -> Tags:
        return Tags(tuple(sorted({*self.owasp, *other.owasp})), tuple(sorted({*self.atlas, *other.atlas})))


NONE = Tags()


def _t(owasp: str | tuple[str, ...], atlas: str | tuple[str, ...] = ()) -> Tags:
    owasp_ids = (owasp,) if isinstance(owasp, str) else owasp
    atlas_ids = (atlas,) if isinstance(atlas, str) else atlas
    unknown = [i for i in owasp_ids if i not in OWASP_LLM_2025] + [i for i in atlas_ids if i not in ATLAS]
    if unknown:
        raise ValueError(f"unknown taxonomy ids {unknown}")
    return Tags(tuple(sorted(owasp_ids)), tuple(sorted(atlas_ids)))


# What the damage of each goal is (kosmoi.types.Goal values).
GOALS: dict[str, Tags] = {
    "exfiltrate_secret": _t("LLM02", "AML.T0057"),
    "drain_wallet": _t("LLM06", "AML.T0053"),
    "tamper_price": _t("LLM06", "AML.T0053"),
    "escalate_privilege": _t("LLM06", "AML.T0053"),
    "leak_system_prompt": _t("LLM07", "AML.T0056"),
    "exhaust_service": _t("LLM10", "AML.T0029"),
    "unsafe_output": _t("LLM05", "AML.T0050"),
    "misinform": _t("LLM09", "AML.T0048.000"),
    "poison_knowledge": _t(("LLM04", "LLM08"), "AML.T0070"),
}

# How the payload reached the model (kosmoi.types.Channel values): every attack is an injection.
CHANNELS: dict[str, Tags] = {
    "direct": _t("LLM01", "AML.T0051.000"),
    "indirect": _t("LLM01", "AML.T0051.001"),
}

# Technique families of the mutation operators (attackers.mutations): framing is jailbreaking, the
# evasions (how the text's surface hides the instruction from the input guard) are prompt injection.
TECHNIQUE_FAMILIES: dict[str, Tags] = {
    "framing": _t("LLM01", "AML.T0054"),
    "output": _t("LLM02", "AML.T0057"),  # asks for an encoded answer, to get secrets past the output guard
    **{family: _t("LLM01") for family in ("lexical", "structure", "nesting", "obfuscation", "encoding")},
}

# Guard rules by the first part of their id (targets: input rules, signals, the output guard's detectors).
RULE_FAMILIES: dict[str, Tags] = {
    "override": _t("LLM01", "AML.T0051.000"),
    "roleplay": _t("LLM01", "AML.T0054"),
    "indirect": _t("LLM01", "AML.T0051.001"),
    "encoded": _t("LLM01"),
    "signal": _t("LLM01"),
    "classifier": _t("LLM01"),
    "semantic": _t("LLM01"),
    "extract": _t("LLM07", "AML.T0056"),
    "exfil": _t("LLM02", "AML.T0057"),
    "tool": _t("LLM06", "AML.T0053"),
    "limit": _t("LLM10", "AML.T0029"),
    "business": _t("LLM06", "AML.T0053"),
    "secret": _t("LLM02", "AML.T0057"),
    "pii": _t("LLM02", "AML.T0057"),
    "canary": _t(("LLM02", "LLM07"), ("AML.T0056", "AML.T0057")),
    "cmd": _t("LLM05", "AML.T0050"),  # dangerous commands in replies, for a downstream shell
    "markup": _t("LLM05", "AML.T0050"),  # active HTML (script, handlers, javascript: URLs) in replies
    "sql": _t("LLM05", "AML.T0050"),  # stacked or destructive SQL in replies
    "claim": _t("LLM09", "AML.T0048.000"),  # replies contradicting the catalog or the policy table
}

# Sentinel case kinds (targets.sentinels, targets.tool_manifest), by (sentinel, rule) or rule alone.
CASE_KINDS: dict[str, Tags] = {
    "new-payee": _t("LLM06", "AML.T0053"),
    "refund-above-purchase": _t("LLM06", "AML.T0053"),
    "price-drop": _t("LLM06", "AML.T0053"),
    "rapid-fire": _t("LLM10", "AML.T0029"),
    "error-loop": _t("LLM10", "AML.T0029"),
    "identity-spike": _t("LLM10", "AML.T0029"),
    "global-spike": _t("LLM10", "AML.T0029"),
    "changed": _t("LLM03", "AML.T0010"),
    "poisoned": _t("LLM03", ("AML.T0010", "AML.T0051.001")),
    "shadowing": _t("LLM03", "AML.T0010"),
    "unapproved": _t("LLM03", "AML.T0010"),
}

# Categories the project exercises, and how. What is not here is reported as not exercised.
EXERCISED_BY: dict[str, str] = {
    "LLM01": "every attack (direct and indirect injection, jailbreak framings, evasions)",
    "LLM02": "goal exfiltrate_secret; output-encoding evasions",
    "LLM03": "tool-manifest pinning and signed rule sets (targets.tool_manifest, targets.signing); not attacked by simulated campaigns",
    "LLM06": "goals drain_wallet, tamper_price, escalate_privilege",
    "LLM04": "goal poison_knowledge: reviews planted in the knowledge base that other customers' sessions retrieve",
    "LLM08": "goal poison_knowledge: the retrieval (RAG) path, guarded at retrieval time",
    "LLM05": "goal unsafe_output (markup, SQL, shell judged by parsers); the output guard's markup, SQL and command detectors",
    "LLM07": "goal leak_system_prompt",
    "LLM09": "goal misinform (prices, refund policy, payment details judged against the catalog and policy table)",
    "LLM10": "goal exhaust_service",
}


# Categories defended by checks (tool-manifest pins, signed rule sets) that simulated campaigns do not attack.
CHECKED_ONLY: frozenset[str] = frozenset({"LLM03"})


def not_exercised() -> tuple[str, ...]:
    """OWASP categories nothing in the project attacks or checks."""
    return tuple(i for i in OWASP_LLM_2025 if i not in EXERCISED_BY)


def episode_tags(goal: str, channel: str, families: Iterable[str] = ()) -> Tags:
    """An attack episode's tags: its goal's damage, its channel's injection, and its technique families; none for benign traffic."""
    if goal not in GOALS:
        return NONE
    tags = GOALS[goal] | CHANNELS.get(channel, NONE)
    for family in families:
        tags = tags | TECHNIQUE_FAMILIES.get(family, NONE)
    return tags


def attack_tags(goal: str, families: Iterable[str] = ()) -> Tags:
    """Tags of attacks on ``goal`` with ``families`` over any channel: the goal's, the families', and prompt injection."""
    tags = GOALS.get(goal, NONE) | _t("LLM01")
    for family in families:
        tags = tags | TECHNIQUE_FAMILIES.get(family, NONE)
    return tags


def rule_tags(rule_id: str) -> Tags:
    """A guard rule's tags, by the family its id starts with (``mined.g<N>.<goal>.<k>`` by its goal)."""
    parts = rule_id.split(".")
    if parts[0] == "mined" and len(parts) >= 3:
        return GOALS.get(parts[2].replace("-", "_"), NONE) | _t("LLM01")
    return RULE_FAMILIES.get(parts[0], NONE)


def case_tags(rule: str) -> Tags:
    """A sentinel case's tags, by its rule (case kind)."""
    return CASE_KINDS.get(rule, NONE)


def union(tags: Iterable[Tags]) -> Tags:
    """All the ids of several tag sets (a warrant's, from its cases)."""
    out = NONE
    for t in tags:
        out = out | t
    return out
