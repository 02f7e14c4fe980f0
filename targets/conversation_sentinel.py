"""The conversation sentinel: escalation and drift within one session, over the event log.

A multi-turn attack looks harmless turn by turn; what gives it away is the
shape of the conversation. Over each closed window, and remembering every
conversation it has seen until it goes quiet, the sentinel opens cases
against the conversation (subject kind ``session``, so the court can end that
session without revoking the identity's token) for:

- ``conversation.escalation``: the input guard's score rose across turns
  (the newest turn at least ``rise`` above the conversation's lowest, after
  ``min_turns`` turns);
- ``conversation.guard-hits``: ``guard_hits`` turns or more flagged or
  blocked by the input guard;
- ``conversation.refusals``: the model refused ``refusals`` times or more;
- ``conversation.drift``: a privileged tool call (money, prices, roles,
  secrets) after turns that used only harmless tools or none.

It reads only what the stack logs: the conversation id and turn on each
request event, the input guard's score and rules, the model's refusals on the
response event, the tool calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import Field

from kosmoi.settings import Settings, validated_options
from kosmoi.types import Case, EventKind, SubjectKind
from targets.company import Company
from targets.eventlog import EventRow
from targets.sentinels import PRIVILEGED_CALLS, Sentinel, _CaseFactory, register_sentinel

if TYPE_CHECKING:
    from targets.stack import StackSettings

REFUSED_DETAIL = "refused"  # the response event's detail when the model refused, inside a conversation


class ConversationSentinelConfig(Settings):
    """Thresholds of the conversation sentinel (its ``options`` in ``targets.sentinels.enabled``)."""

    min_turns: int = Field(default=3, ge=2, le=100, description="turns before a rise in guard scores counts as escalation")
    rise: float = Field(default=0.25, gt=0, le=1, description="the newest turn's guard score this far above the conversation's lowest")
    guard_hits: int = Field(default=2, ge=1, le=100, description="turns flagged or blocked by the input guard")
    hit_score: float = Field(default=0.5, gt=0, le=1, description="a guard score at or above this counts as a hit")
    refusals: int = Field(default=2, ge=1, le=100, description="refusals by the model in one conversation")
    forget_after_windows: int = Field(default=30, gt=0, description="a conversation silent this long is forgotten")


@dataclass(slots=True)
class _Track:
    """What the sentinel remembers of one conversation."""

    scores: list[float] = field(default_factory=list)  # input guard score by turn, in order
    hits: int = 0
    refusals: int = 0
    harmless_turns: int = 0  # turns without a privileged call
    evidence: list[int] = field(default_factory=list)
    reported: set[str] = field(default_factory=set)  # rules already raised for this conversation
    seen: int = 0  # window index last seen


class ConversationSentinel:
    """Flags conversations that escalate, keep hitting the guard, keep being refused or drift to privileged tools."""

    name = "conversation"

    def __init__(self, config: ConversationSentinelConfig | None = None) -> None:
        self.config = config or ConversationSentinelConfig()
        self._tracks: dict[str, _Track] = {}
        self._windows = 0
        self._case = _CaseFactory(self.name)

    def inspect(self, rows: list[EventRow], start: float, end: float) -> list[Case]:
        cfg = self.config
        conversation_of: dict[str, str] = {}
        turn_of: dict[str, int] = {}
        for row in rows:
            if row.kind == EventKind.REQUEST.value and row.detail:
                cid, _, turn = row.detail.rpartition("#")
                conversation_of[row.episode_id] = cid
                turn_of[row.episode_id] = int(turn) if turn.isdigit() else 0
        touched: dict[str, _Track] = {}
        privileged: dict[str, set[str]] = {}
        for row in rows:
            cid = conversation_of.get(row.episode_id, "")
            if not cid:
                continue
            track = self._tracks.get(cid)
            if track is None:
                track = self._tracks[cid] = _Track()
            track.seen = self._windows
            touched[cid] = track
            kind = row.kind
            if kind == EventKind.GUARD_INPUT.value and row.service == "input_guard":
                track.scores.append(row.amount_usd)
                if not row.ok or row.amount_usd >= cfg.hit_score or row.detail:
                    track.hits += 1
                    track.evidence.append(row.event_id)
            elif kind == EventKind.RESPONSE.value:
                if row.detail == REFUSED_DETAIL:
                    track.refusals += 1
                    track.evidence.append(row.event_id)
            elif kind == EventKind.TOOL_CALL.value and row.service in PRIVILEGED_CALLS:
                privileged.setdefault(cid, set()).add(row.episode_id)
                track.evidence.append(row.event_id)
        cases: list[Case] = []
        for cid, track in touched.items():
            calls = privileged.get(cid, set())
            for eid in sorted((e for e, c in conversation_of.items() if c == cid), key=turn_of.__getitem__):
                if eid not in calls:
                    track.harmless_turns += 1
                elif track.harmless_turns >= 1:
                    self._raise(cases, track, "conversation.drift", cid, 3, 0.65, start, end)
            scores = track.scores
            if len(scores) >= cfg.min_turns and scores[-1] - min(scores[:-1]) >= cfg.rise:
                self._raise(cases, track, "conversation.escalation", cid, 3, 0.7, start, end)
            if track.hits >= cfg.guard_hits:
                self._raise(cases, track, "conversation.guard-hits", cid, 3, 0.75, start, end)
            if track.refusals >= cfg.refusals:
                self._raise(cases, track, "conversation.refusals", cid, 3, 0.7, start, end)
        self._windows += 1
        if self._windows % 16 == 0:
            horizon = self._windows - cfg.forget_after_windows
            for cid in [c for c, t in self._tracks.items() if t.seen < horizon]:
                del self._tracks[cid]
        return cases

    def _raise(self, cases: list[Case], track: _Track, rule: str, cid: str, severity: int, confidence: float, start: float, end: float) -> None:
        if rule in track.reported:
            return
        track.reported.add(rule)
        cases.append(self._case(rule, cid, SubjectKind.SESSION, severity, confidence, start, end, track.evidence[-50:]))


@register_sentinel("conversation")
def _conversation(company: Company, settings: StackSettings, options: Mapping[str, Any]) -> Sentinel:
    return ConversationSentinel(validated_options(ConversationSentinelConfig, "sentinel 'conversation'", options))
