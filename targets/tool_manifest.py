"""The tool supply chain (OWASP LLM03): tool manifests pinned by hash, and what an agent refuses to use.

When a tool server is approved, each of its tools is pinned: sha256 over its
name, description and input schema (:func:`targets.tool_catalog.manifest_entry`).
Before an agent uses a server's tools it checks the listing against the pins
and refuses, as a finding:

- ``changed``: a pinned tool whose description or schema changed (a rug pull);
- ``unapproved``: a tool that was never pinned;
- ``shadowing``: a tool whose name collides with another tool's once case,
  separators and look-alike characters are folded (``vault_read`` vs
  ``Vault-Read`` vs ``vаult_read`` with a Cyrillic а), or a name listed twice;
- ``poisoned``: instructions hidden in a description or in the schema's
  property descriptions — the input guard flags or blocks them. Checked at
  pinning time too: a poisoned tool cannot be approved.

Findings become :class:`~kosmoi.types.Case` objects from the ``supply-chain``
sentinel, so they are reported with every other case.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from kosmoi.types import Action, Case, SubjectKind, Verdict
from targets.canonical import canonicalize
from targets.tool_catalog import manifest_entry

PINS_FORMAT = "kosmoi-tool-pins/1"
SENTINEL = "supply-chain"
_SEVERITY = {"changed": 5, "poisoned": 5, "shadowing": 4, "unapproved": 3}
FINDING_KINDS: tuple[str, ...] = tuple(_SEVERITY)  # the case kinds (rules) this sentinel raises
_SEPARATORS = re.compile(r"[\s_\-.]+")


class TextGuard(Protocol):
    def scan(self, text: str) -> Verdict: ...


@dataclass(frozen=True, slots=True)
class ToolDescriptor:
    """One tool as a server lists it."""

    name: str
    description: str
    input_schema: Mapping[str, Any]

    @property
    def pin(self) -> str:
        return manifest_entry(self.name, self.description, dict(self.input_schema))

    def texts(self) -> list[str]:
        """What a model reads about this tool: its description and every property description in its schema."""
        found = [self.description]
        properties = self.input_schema.get("properties", {})
        if isinstance(properties, Mapping):
            for spec in properties.values():
                if isinstance(spec, Mapping) and isinstance(spec.get("description"), str):
                    found.append(spec["description"])
        return [text for text in found if text]


@dataclass(frozen=True, slots=True)
class ManifestFinding:
    kind: str  # changed | unapproved | shadowing | poisoned
    tool: str
    detail: str


def fold_name(name: str) -> str:
    """A tool name with case, separators and look-alike characters folded (what a model might confuse)."""
    return _SEPARATORS.sub("", canonicalize(name).text.lower())


def poisoned(tool: ToolDescriptor, guard: TextGuard) -> str:
    """Why the guard refuses this tool's descriptions, or "" when it does not."""
    for text in tool.texts():
        verdict = guard.scan(text)
        if verdict.action is not Action.ALLOW:
            return f"{verdict.action.value} by the input guard ({', '.join(verdict.rule_ids) or 'score'} {verdict.score:.2f})"
    return ""


def pin_tools(tools: Iterable[ToolDescriptor], guard: TextGuard) -> dict[str, str]:
    """Pins for a server being approved; a poisoned or duplicated tool cannot be pinned."""
    pins: dict[str, str] = {}
    for tool in tools:
        if tool.name in pins:
            raise ValueError(f"tool {tool.name!r} is listed twice")
        why = poisoned(tool, guard)
        if why:
            raise ValueError(f"tool {tool.name!r} cannot be approved: its description is {why}")
        pins[tool.name] = tool.pin
    return pins


def check_tools(tools: Iterable[ToolDescriptor], pins: Mapping[str, str], guard: TextGuard) -> tuple[list[ToolDescriptor], list[ManifestFinding]]:
    """The tools an agent may use, and a finding for every tool it must refuse."""
    listed = list(tools)
    findings: list[ManifestFinding] = []
    folded_pins: dict[str, str] = {}
    for name in pins:
        folded_pins.setdefault(fold_name(name), name)
    seen: dict[str, str] = {}
    approved: list[ToolDescriptor] = []
    for tool in listed:
        folded = fold_name(tool.name)
        if folded in seen:
            findings.append(ManifestFinding("shadowing", tool.name, f"collides with {seen[folded]!r} in the same listing"))
            continue
        seen[folded] = tool.name
        pinned = pins.get(tool.name)
        if pinned is None:
            twin = folded_pins.get(folded)
            if twin is not None:
                findings.append(ManifestFinding("shadowing", tool.name, f"looks like the approved tool {twin!r}"))
            else:
                findings.append(ManifestFinding("unapproved", tool.name, "not in the approved manifest"))
            continue
        why = poisoned(tool, guard)
        if why:
            findings.append(ManifestFinding("poisoned", tool.name, f"description {why}"))
            continue
        if tool.pin != pinned:
            findings.append(ManifestFinding("changed", tool.name, f"description or schema changed since approval (pinned {pinned[:12]}, now {tool.pin[:12]})"))
            continue
        approved.append(tool)
    return approved, findings


def findings_to_cases(findings: Iterable[ManifestFinding], server: str, now: float) -> list[Case]:
    """Cases of the ``supply-chain`` sentinel against the tool server ``server``."""
    return [
        Case(f"{SENTINEL}-{index}", SENTINEL, finding.kind, server, SubjectKind.AGENT, _SEVERITY[finding.kind], 0.95, now, now, ())
        for index, finding in enumerate(findings, 1)
    ]


def save_pins(path: Path, server: str, pins: Mapping[str, str]) -> None:
    path.write_text(json.dumps({"format": PINS_FORMAT, "server": server, "pins": dict(sorted(pins.items()))}, indent=1) + "\n", "utf-8")


def load_pins(path: Path) -> dict[str, str]:
    """Pins from a file :func:`save_pins` wrote; a malformed file is an error naming it."""
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a tool-pins file ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != PINS_FORMAT or not isinstance(data.get("pins"), dict):
        raise ValueError(f"{path}: not a tool-pins file (expected format {PINS_FORMAT!r} with a 'pins' object)")
    pins = data["pins"]
    if not all(isinstance(k, str) and isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v) for k, v in pins.items()):
        raise ValueError(f"{path}: every pin must be a tool name and a sha256 hex digest")
    return dict(pins)
