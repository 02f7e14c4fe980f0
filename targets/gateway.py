"""The tool gateway: zero trust and the output guard for tool traffic, independent of the transport.

Every call names a tool of the catalog (:mod:`targets.tool_catalog`) and
carries the caller's short-lived token. The gateway

1. refuses a caller under a warrant (revoked subject, quarantined agent);
2. verifies the token — signature, expiry, revocation and the tool's scope —
   through the staging stack's zero-trust services;
3. runs the output guard's business checks on the call (price floor,
   transfer and refund limits, message bodies redacted);
4. executes the call on the simulated company (side-effect free: nothing
   leaves the process, no payload is ever executed);
5. passes the result through the output guard (secrets, PII, canaries
   redacted) before it goes back to the agent.

Each step is an event in the stack's event log, so the sentinels and the
court see gateway traffic exactly as they see in-process traffic, and a
warrant they issue revokes the caller at the gateway. The MCP server in
:mod:`targets.mcp_gateway` is one transport over this class.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kosmoi.types import Action, Case, EventKind, Warrant
from targets.company import AGENTS
from targets.identity import AuthError, Claims, IdentityProvider
from targets.rules import RuleSet
from targets.stack import StackSettings, StagingStack
from targets.tool_catalog import parse_tool_call
from targets.tools import Effects

log = logging.getLogger(__name__)

MAX_RESULT_CHARS = 16_384
AGENT_PREFIX = "agent:"


@dataclass(frozen=True, slots=True)
class GatewayResult:
    """What the caller gets back: the guarded result text, or why the call was refused."""

    ok: bool
    text: str
    refusal: str = ""  # "" | warrant | auth:<reason> | invalid | policy | tool
    rule_ids: tuple[str, ...] = ()


@dataclass(slots=True)
class GatewayStats:
    calls: int = 0
    refused: dict[str, int] = field(default_factory=dict)


class ToolGateway:
    """Serves the staging company's tools to authenticated agents, through zero trust and the output guard."""

    def __init__(self, stack: StagingStack) -> None:
        self.stack = stack
        self.stats = GatewayStats()
        self._effects = Effects()  # what gateway traffic did to the company (the oracle's input)

    @property
    def effects(self) -> Effects:
        return self._effects

    def authenticate(self, token: str, now: float, episode: str, what: str) -> Claims | AuthError:
        """The token's claims (signature, expiry, revocation checked), or the error — logged as an event."""
        try:
            return self.stack.verifier.verify(token, now)
        except AuthError as exc:
            self.stack.log.emit(now, EventKind.AUTH_DENIED, "", "", episode, what[:64], False, 0.0, exc.reason)
            return exc

    def call(self, token: str, name: str, arguments: Any, now: float) -> GatewayResult:
        """One tool call at time ``now`` (seconds on the gateway's clock)."""
        stack = self.stack
        self.stats.calls += 1
        episode = f"gw-{self.stats.calls}"
        claims = self.authenticate(token, now, episode, name)
        if isinstance(claims, AuthError):
            return self._refuse(f"auth:{claims.reason}", f"refused: {claims.reason}")
        subject = claims.subject
        agent = subject.removeprefix(AGENT_PREFIX) if subject.startswith(AGENT_PREFIX) else ""
        if stack.verifier.is_revoked(subject) or (agent and agent in stack.quarantined):
            stack.log.emit(now, EventKind.ENFORCED, subject, agent, episode, name[:64], False, 0.0, "warrant in force")
            return self._refuse("warrant", "refused: a warrant is in force against this caller")
        if not isinstance(arguments, dict):
            return self._refuse("invalid", "arguments must be a JSON object")
        try:
            encoded = json.dumps(arguments, ensure_ascii=False)
        except (TypeError, ValueError):
            return self._refuse("invalid", "arguments must be JSON")
        parsed = parse_tool_call(name, encoded)
        if isinstance(parsed, str):
            stack.log.emit(now, EventKind.TOOL_DENIED, subject, agent, episode, name[:64], False, 0.0, parsed[:240])
            return self._refuse("invalid", parsed)
        call = parsed
        rule_ids: list[str] = []
        if stack.settings.output_guard:
            verdict, call = stack.output_guard.check_call(call)
            rule_ids.extend(verdict.rule_ids)
            if verdict.action is Action.BLOCK:
                stack.log.emit(now, EventKind.GUARD_OUTPUT, subject, agent, episode, f"{call.service}.{call.method}", False, 0.0, ",".join(verdict.rule_ids)[:240])
                return self._refuse("policy", "blocked by policy", tuple(rule_ids))
        result = stack.services.call(token, agent or subject, call, now, episode, subject, self._effects)
        if not result.ok:
            return self._refuse("auth:scope" if result.error.startswith("forbidden") else "tool", result.error, tuple(rule_ids))
        text = result.value if isinstance(result.value, str) else json.dumps(result.value, ensure_ascii=False, default=str)
        text = text[:MAX_RESULT_CHARS]
        if stack.settings.output_guard:
            verdict = stack.output_guard.scan(text)
            rule_ids.extend(verdict.rule_ids)
            if verdict.action is Action.BLOCK:
                text = "[withheld by the output guard]"
            elif verdict.text is not None:
                text = verdict.text
            stack.log.emit(now, EventKind.GUARD_OUTPUT, subject, agent, episode, f"{call.service}.{call.method}", verdict.action is not Action.BLOCK, 0.0, ",".join(verdict.rule_ids)[:240])
        return GatewayResult(True, text, rule_ids=tuple(dict.fromkeys(rule_ids)))

    def _refuse(self, refusal: str, message: str, rule_ids: tuple[str, ...] = ()) -> GatewayResult:
        kind = refusal.split(":", 1)[0]
        self.stats.refused[kind] = self.stats.refused.get(kind, 0) + 1
        return GatewayResult(False, message, refusal, rule_ids)

    def close_window(self, start: float, end: float) -> tuple[list[Case], list[Warrant]]:
        """Run the sentinels and the court over the window that just closed; warrants apply at the gateway at once."""
        cases, warrants = self.stack.close_window(start, end)
        for warrant in warrants:
            log.warning("warrant %s against %s: %s", warrant.action.value, warrant.subject, warrant.reasoning)
        return cases, warrants


KEY_BYTES = 32


def load_key(path: Path) -> int:
    """The gateway IdP's secret key seed, read from ``path`` (hex)."""
    if not path.exists():
        raise ValueError(f"{path}: no gateway key (immune gateway serve creates one)")
    text = path.read_text("utf-8").strip()
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"{path}: not a gateway key (expected {KEY_BYTES * 2} hex digits)") from None
    if len(raw) != KEY_BYTES:
        raise ValueError(f"{path}: not a gateway key (expected {KEY_BYTES * 2} hex digits, got {len(text)})")
    return int.from_bytes(raw, "big")


def load_or_create_key(path: Path) -> int:
    """:func:`load_key`, creating the file (mode 0600, 32 random bytes) when missing."""
    if path.exists():
        return load_key(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = secrets.token_bytes(KEY_BYTES)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(raw.hex() + "\n")
    return int.from_bytes(raw, "big")


def mint_agent_token(key_seed: int, agent: str, now: float, ttl_s: float = 300.0) -> str:
    """A token for one of the company's agents, with exactly that agent's scopes, signed with the gateway's key."""
    if agent not in AGENTS:
        raise ValueError(f"unknown agent {agent!r}; known: {', '.join(AGENTS)}")
    return IdentityProvider(key_seed, ttl_s).issue(f"{AGENT_PREFIX}{agent}", AGENTS[agent].scopes, now)


def gateway_stack(ruleset: RuleSet, key_seed: int, settings: StackSettings | None = None) -> StagingStack:
    """A staging company and its defenses for a live gateway: its own IdP key, fresh canaries every start."""
    return StagingStack(settings or StackSettings(), ruleset, seed=0, replica=0, run_nonce=secrets.token_hex(8), identity_seed=key_seed)
