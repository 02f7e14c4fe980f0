"""The staging stack: one replica of the company and its full defense.

One episode travels: court enforcement -> identity -> input guard -> victim
agent -> output guard (per tool call, then the reply) -> services behind the
zero-trust check -> event log -> oracle. Sentinels and the court run on each
closed window of simulated time (:meth:`StagingStack.close_window`).
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from dataclasses import dataclass, field

from kosmoi.types import Action, Case, EventKind, Outcome, Request, Stage, SubjectKind, Verdict, Warrant, WarrantAction
from targets.canonical import without_surrogates
from targets.company import AGENTS, COMPANY_DOMAIN, Company
from targets.court import Court, CourtConfig
from targets.eventlog import EventLog
from targets.identity import AuthError, IdentityProvider, TokenVerifier
from targets.input_guard import DEFAULT_MAX_BYTES, InputGuard
from targets.oracle import Oracle
from targets.detectors import DEFAULT_PHONE_REGIONS
from targets.output_guard import BusinessPolicy, OutputGuard
from targets.rules import RuleSet
from targets.sentinels import Auditor, AuditorConfig, NetworkConfig, NetworkSentinel
from targets.tools import Effects, Services, ToolCall, ToolResult
from targets.llm_victim import LLMVictim, LLMVictimConfig
from targets.matcher import Engine
from targets.victim import PROFILES, Victim, VictimKnowledge, VictimModel

BLOCKED_REPLY = "This request was blocked by policy."
_SEVERITY = {Action.ALLOW: 0, Action.FLAG: 1, Action.BLOCK: 2}


@dataclass(frozen=True, slots=True)
class StackSettings:
    """Knobs of the staging stack (``sim.config`` maps the experiment file onto these)."""

    victim_profile: str = "typical"
    token_ttl_s: float = 300.0
    key_rotation_s: float = 3600.0
    input_max_bytes: int = DEFAULT_MAX_BYTES
    input_guard: bool = True
    output_guard: bool = True
    enforce_identity: bool = True
    business: BusinessPolicy = field(default_factory=BusinessPolicy)
    auditor: AuditorConfig = field(default_factory=AuditorConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    court: CourtConfig = field(default_factory=CourtConfig)
    customers: int = 200
    attacker_accounts: int = 64
    llm_victim: LLMVictimConfig | None = None  # a real model instead of the simulated victim
    rule_engine: Engine = "auto"
    semantic: bool = False  # the optional embedding stage of the input guard
    phone_regions: tuple[str, ...] = DEFAULT_PHONE_REGIONS  # whose phone numbers the output guard redacts


def merge_verdicts(first: Verdict, second: Verdict) -> Verdict:
    """The stricter action, the union of rules, the higher score."""
    action = first.action if _SEVERITY[first.action] >= _SEVERITY[second.action] else second.action
    rules = tuple(dict.fromkeys(first.rule_ids + second.rule_ids))
    return Verdict(action, rules, max(first.score, second.score))


class StagingStack:
    """A replica of company + defenses; deterministic given (seed, replica)."""

    def __init__(self, settings: StackSettings, ruleset: RuleSet, seed: int, replica: int, run_nonce: str) -> None:
        if settings.victim_profile not in PROFILES:
            raise ValueError(f"unknown victim profile {settings.victim_profile!r}; known: {', '.join(PROFILES)}")
        self.settings = settings
        self.company = Company(seed, replica, run_nonce, customers=settings.customers, attacker_accounts=settings.attacker_accounts)
        self.log = EventLog(replica)
        self.idp = IdentityProvider(seed * 1_000_003 + replica, settings.token_ttl_s, settings.key_rotation_s)
        self.verifier = TokenVerifier(self.idp)
        self.services = Services(self.company, self.verifier, self.log, enforce_identity=settings.enforce_identity)
        self.input_guard = InputGuard(ruleset, settings.input_max_bytes, settings.rule_engine, settings.semantic)
        self.output_guard = OutputGuard(ruleset, self.company.canaries(), settings.business, engine=settings.rule_engine, phone_regions=settings.phone_regions)
        self.oracle = Oracle(self.company, settings.business.price_floor_usd)
        self.sentinels = (Auditor(self.company, settings.auditor), NetworkSentinel(settings.network))
        self.court = Court(settings.court, known_good=frozenset(f"agent:{name}" for name in AGENTS))
        profile = PROFILES[settings.victim_profile]
        products = dict(self.company.product_by_name)
        secret_names = frozenset(self.company.vault)
        self.victims: dict[str, VictimModel] = {}
        for name in AGENTS:
            knowledge = VictimKnowledge(name, self.company.system_prompts[name], products, secret_names, frozenset(self.company.vendor_accounts), COMPANY_DOMAIN)
            self.victims[name] = Victim(profile, knowledge) if settings.llm_victim is None else LLMVictim(settings.llm_victim, knowledge)
        self.quarantined: set[str] = set()
        self.timings: defaultdict[str, float] = defaultdict(float)  # seconds spent per stage (benchmarks)
        self._agent_tokens: dict[str, tuple[str, float]] = {}
        self.agent_tasks: deque[tuple[float, str, str, str]] = deque(maxlen=10_000)

    # --- identity ------------------------------------------------------------
    def login(self, identity: str, now: float) -> str:
        """A chat session token for an outside identity (customer, vendor, attacker)."""
        return self.idp.issue(identity, {"chat"}, now)

    def _agent_token(self, agent: str, now: float) -> str:
        token, expires = self._agent_tokens.get(agent, ("", -1.0))
        if now >= expires - 1.0:
            token = self.idp.issue(f"agent:{agent}", AGENTS[agent].scopes, now)
            expires = now + self.settings.token_ttl_s
            self._agent_tokens[agent] = (token, expires)
        return token

    # --- one episode -----------------------------------------------------------
    def handle(self, request: Request, token: str) -> Outcome:
        """Run one request through the whole stack and judge it."""
        now, identity, agent, eid = request.sim_time, request.identity, request.agent, request.episode_id
        text = without_surrogates(request.text)
        document = without_surrogates(request.document) if request.document else None
        log = self.log
        timings = self.timings
        clock = time.perf_counter
        t0 = clock()
        log.emit(now, EventKind.REQUEST, identity, agent, eid, "chat")
        if self.verifier.is_revoked(identity) or agent in self.quarantined:
            log.emit(now, EventKind.ENFORCED, identity, agent, eid, "chat", False, 0.0, "warrant in force")
            return Outcome(blocked_stage=Stage.COURT, task_completed=False)
        try:
            self.verifier.verify(token, now, "chat")
        except AuthError as exc:
            log.emit(now, EventKind.AUTH_DENIED, identity, agent, eid, "chat", False, 0.0, exc.reason)
            return Outcome(blocked_stage=Stage.IDENTITY, task_completed=False)

        t1 = clock()
        timings["identity"] += t1 - t0
        verdict = Verdict(Action.ALLOW)
        if self.settings.input_guard:
            verdict = self.input_guard.scan(text)
            if document:
                verdict = merge_verdicts(verdict, self.input_guard.scan(document))
            log.emit(now, EventKind.GUARD_INPUT, identity, agent, eid, "input_guard", verdict.action is not Action.BLOCK, verdict.score, ",".join(verdict.rule_ids)[:240])
        t2 = clock()
        timings["input_guard"] += t2 - t1
        if verdict.action is Action.BLOCK:
            return Outcome(Stage.INPUT_GUARD, verdict.rule_ids, verdict.action, verdict.score, response=BLOCKED_REPLY, task_completed=False)

        victim = self.victims[agent]
        effects = Effects()
        output_rules: list[str] = []
        output_action = Action.ALLOW
        flags = {"policy_blocked": False, "tool_denied": False, "frozen": False}

        def act(call: ToolCall) -> ToolResult:
            nonlocal output_action
            if self.settings.output_guard:
                call_verdict, call = self.output_guard.check_call(call)
                output_rules.extend(call_verdict.rule_ids)
                if _SEVERITY[call_verdict.action] > _SEVERITY[output_action]:
                    output_action = call_verdict.action
                if call_verdict.action is Action.BLOCK:
                    flags["policy_blocked"] = True
                    return ToolResult(False, error="blocked by policy")
            result = self.services.call(self._agent_token(agent, now), agent, call, now, eid, identity, effects)
            if not result.ok:
                flags["tool_denied"] = flags["tool_denied"] or result.error.startswith("forbidden")
                flags["frozen"] = flags["frozen"] or result.error == "destination frozen"
            return result

        turn = victim.respond(text, document, eid, identity, act)
        t3 = clock()
        timings["victim_and_tools"] += t3 - t2
        reply = turn.reply
        delivered = reply
        if self.settings.output_guard:
            reply_verdict = self.output_guard.scan(reply)
            delivered = reply_verdict.text if reply_verdict.text is not None else reply
            output_rules.extend(reply_verdict.rule_ids)
            if _SEVERITY[reply_verdict.action] > _SEVERITY[output_action]:
                output_action = reply_verdict.action
            if reply_verdict.action is Action.BLOCK:
                delivered = BLOCKED_REPLY
            log.emit(now, EventKind.GUARD_OUTPUT, identity, agent, eid, "output_guard", output_action is not Action.BLOCK, 0.0, ",".join(output_rules)[:240])
        log.emit(now, EventKind.RESPONSE, identity, agent, eid, "chat", not turn.error, 0.0, turn.error[:240])
        if turn.calls:
            self.agent_tasks.append((now, agent, identity, ",".join(f"{c.service}.{c.method}" for c, _ in turn.calls)))

        t4 = clock()
        timings["output_guard"] += t4 - t3
        damage = self.oracle.assess(effects, delivered, identity, identity in self.company.truth.attacker_identities)
        timings["oracle"] += clock() - t4
        stage: Stage | None = None
        if not damage.breached:
            if turn.complied or (not turn.refused and turn.calls):
                if flags["policy_blocked"] or output_action is Action.BLOCK or (turn.complied and output_action is Action.FLAG):
                    stage = Stage.OUTPUT_GUARD
                elif flags["tool_denied"]:
                    stage = Stage.TOOL_AUTH
                elif flags["frozen"]:
                    stage = Stage.COURT
            else:
                stage = Stage.VICTIM
        completed = (turn.understood or request.open_ended) and not turn.refused and not turn.error and all(r.ok for _, r in turn.calls) and output_action is not Action.BLOCK
        rule_ids = tuple(dict.fromkeys(verdict.rule_ids + tuple(output_rules)))
        return Outcome(
            blocked_stage=stage,
            rule_ids=rule_ids,
            input_action=verdict.action,
            input_score=verdict.score,
            output_action=output_action,
            response=delivered,
            tool_calls=len(turn.calls),
            breached=damage.breached,
            damage_usd=damage.damage_usd,
            secrets_leaked=damage.secrets_leaked,
            records_exfiltrated=damage.records_exfiltrated,
            task_completed=completed,
        )

    # --- sentinels and court -------------------------------------------------
    def close_window(self, start: float, end: float) -> tuple[list[Case], list[Warrant]]:
        """Run the sentinels over the window that just closed; the court rules; enforcers act."""
        started = time.perf_counter()
        rows = self.log.window()
        cases = [case for sentinel in self.sentinels for case in sentinel.inspect(rows, start, end)]
        warrants = self.court.deliberate(cases, end) if cases else []
        for warrant in warrants:
            self.enforce(warrant)
            self.log.emit(end, EventKind.WARRANT, warrant.subject, "", "", warrant.action.value, True, 0.0, warrant.reasoning[:240])
        self.timings["sentinels_and_court"] += time.perf_counter() - started
        return cases, warrants

    def enforce(self, warrant: Warrant) -> None:
        """Carry out a warrant at once; it holds for the rest of the campaign."""
        if warrant.action is WarrantAction.REVOKE_TOKEN and warrant.subject_kind is SubjectKind.IDENTITY:
            self.verifier.revoke_subject(warrant.subject)
        elif warrant.action is WarrantAction.QUARANTINE_AGENT:
            self.quarantined.add(warrant.subject)
        elif warrant.action is WarrantAction.FREEZE_WALLET:
            self.company.frozen_accounts.add(warrant.subject)
