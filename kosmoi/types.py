"""Value types that cross package boundaries.

Small, slotted dataclasses: they are created per episode on the hot path, so
they carry no validation logic (configuration is validated by pydantic in
``sim.config``; these are internal records).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class EpisodeKind(StrEnum):
    """Whether an episode is an attack or legitimate traffic."""

    ATTACK = "attack"
    BENIGN = "benign"


class Goal(StrEnum):
    """What an attack is trying to achieve (the oracle measures each)."""

    EXFILTRATE_SECRET = "exfiltrate_secret"
    DRAIN_WALLET = "drain_wallet"
    TAMPER_PRICE = "tamper_price"
    ESCALATE_PRIVILEGE = "escalate_privilege"
    LEAK_SYSTEM_PROMPT = "leak_system_prompt"
    EXHAUST_SERVICE = "exhaust_service"
    UNSAFE_OUTPUT = "unsafe_output"  # markup, script, SQL or shell in a reply that a downstream consumer would run
    MISINFORM = "misinform"  # wrong prices, refund policy or payment details stated to customers
    POISON_KNOWLEDGE = "poison_knowledge"  # plant a document other users' sessions retrieve
    NONE = "none"  # benign traffic


class Channel(StrEnum):
    """How a payload reaches the victim."""

    DIRECT = "direct"  # typed into the chat
    INDIRECT = "indirect"  # planted in a document the victim retrieves


class Tier(StrEnum):
    """Attacker tier (cost class); benign traffic is tier ``user``."""

    GRUNT = "grunt"
    SNIPER = "sniper"
    USER = "user"


class Action(StrEnum):
    """A guardrail verdict."""

    ALLOW = "allow"
    FLAG = "flag"
    BLOCK = "block"


class Stage(StrEnum):
    """Defense stages in the order an episode meets them.

    ``court``: refused because a warrant (revoked identity, quarantined agent,
    frozen wallet) is in force. ``identity``: the caller's session token was
    rejected. ``tool_auth``: a tool call failed the zero-trust scope check.
    ``victim``: the model itself took no harmful action.
    """

    COURT = "court"
    IDENTITY = "identity"
    INPUT_GUARD = "input_guard"
    VICTIM = "victim"
    OUTPUT_GUARD = "output_guard"
    TOOL_AUTH = "tool_auth"


STAGE_ORDER: tuple[Stage, ...] = tuple(Stage)


class WarrantAction(StrEnum):
    """Destructive actions only the court may order."""

    REVOKE_TOKEN = "revoke_token"
    QUARANTINE_AGENT = "quarantine_agent"
    FREEZE_WALLET = "freeze_wallet"
    END_SESSION = "end_session"  # end one conversation (its identity may go on in new ones)


class SubjectKind(StrEnum):
    """What a case or warrant is about."""

    IDENTITY = "identity"
    AGENT = "agent"
    WALLET = "wallet"
    SESSION = "session"  # one conversation (its conversation id)


class EventKind(StrEnum):
    """Every event type the staging stack emits (one Arrow schema for all)."""

    REQUEST = "request"
    AUTH_OK = "auth_ok"
    AUTH_DENIED = "auth_denied"
    GUARD_INPUT = "guard_input"
    GUARD_OUTPUT = "guard_output"
    TOOL_CALL = "tool_call"
    TOOL_DENIED = "tool_denied"
    TRANSFER = "transfer"
    REFUND = "refund"
    PRICE_CHANGE = "price_change"
    SECRET_READ = "secret_read"
    ROLE_GRANT = "role_grant"
    RESPONSE = "response"
    ENFORCED = "enforced"  # a request refused because a warrant is in force
    WARRANT = "warrant"


@dataclass(slots=True)
class Attack:
    """One attack proposed by an attacker.

    ``payload`` carries the malicious instruction. On the direct channel it is
    the chat message; on the indirect channel it is planted in ``document`` and
    ``carrier`` is the innocuous request that makes the victim retrieve it.
    """

    attack_id: str
    payload: str
    goal: Goal
    channel: Channel
    target_agent: str
    techniques: tuple[str, ...] = ()
    parent_ids: tuple[str, ...] = ()
    tier: Tier = Tier.GRUNT
    generator: str = "mutator"
    cost_usd: float = 0.0
    carrier: str | None = None
    seed_id: str = ""  # the library seed the attack grew from (for model-written attacks: the route it took)
    strategy: str = ""  # the multi-turn strategy this turn belongs to ("" for a single-message attack)
    turn: int = 0  # the turn of its conversation (0 for a single-message attack)


@dataclass(slots=True)
class Request:
    """What reaches the staging stack for one episode."""

    episode_id: str
    identity: str
    agent: str
    text: str
    document: str | None
    sim_time: float
    open_ended: bool = False  # a general request (a real person's prompt): answered counts as done, no tool call needed
    conversation_id: str = ""  # the conversation this message belongs to ("" for a single message)
    turn: int = 0  # its turn in that conversation, from 0


@dataclass(slots=True)
class Verdict:
    """A guardrail decision on one text."""

    action: Action
    rule_ids: tuple[str, ...] = ()
    score: float = 0.0
    text: str | None = None  # redacted text (output stage only)
    reasons: tuple[str, ...] = ()


ALLOW = Verdict(Action.ALLOW)


@dataclass(slots=True)
class Outcome:
    """What happened to one episode, as the stack and the oracle saw it."""

    blocked_stage: Stage | None = None
    rule_ids: tuple[str, ...] = ()
    input_action: Action = Action.ALLOW
    input_score: float = 0.0
    output_action: Action = Action.ALLOW
    response: str = ""
    tool_calls: int = 0
    breached: bool = False
    damage_usd: float = 0.0
    secrets_leaked: int = 0
    records_exfiltrated: int = 0
    task_completed: bool | None = None  # benign episodes: was the user's task done
    poisoned_by: str | None = None  # the episode that planted the retrieved document that did this episode's damage


@dataclass(slots=True)
class Feedback:
    """What an attacker learns about its attempt (what a real attacker could see)."""

    attack_id: str
    blocked_stage: Stage | None
    rule_ids: tuple[str, ...]
    response: str
    breached: bool


@dataclass(slots=True)
class Case:
    """A sentinel's flag: evidence that a subject misbehaves. Sentinels never act."""

    case_id: str
    sentinel: str
    rule: str
    subject: str
    subject_kind: SubjectKind
    severity: int  # 1 (low) .. 5 (critical)
    confidence: float  # 0..1
    window_start: float
    window_end: float
    evidence: tuple[int, ...] = field(default_factory=tuple)  # event ids


@dataclass(slots=True)
class Warrant:
    """A kill warrant issued by the court; enforced for the rest of the campaign."""

    warrant_id: str
    action: WarrantAction
    subject: str
    subject_kind: SubjectKind
    case_ids: tuple[str, ...]
    reasoning: str
    sim_time: float
