"""Sentinels ("white blood cells"): batch jobs over each closed event window.

They only flag: each returns :class:`~kosmoi.types.Case` objects with the
evidence event ids, a severity and a confidence. Acting is the court's job.

Auditor:
- rapid fire: too many requests from one identity in one window;
- error loops: repeated rejections (auth, guardrail blocks, denied tools);
- transaction logic: money sent out of the company to an account never paid before.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from kosmoi.types import Case, EventKind, SubjectKind
from targets.company import Company
from targets.eventlog import EventRow

INTERNAL_PREFIX = "credit:"  # store-credit wallets inside the company
_REJECTIONS = frozenset({EventKind.AUTH_DENIED.value, EventKind.TOOL_DENIED.value})


@dataclass(frozen=True, slots=True)
class AuditorConfig:
    rapid_fire_per_window: int = 12
    error_loop_threshold: int = 3


class Auditor:
    """Flags rapid fire, error loops and transfers to never-seen accounts."""

    name = "auditor"

    def __init__(self, company: Company, config: AuditorConfig | None = None) -> None:
        self.config = config or AuditorConfig()
        # The baseline of known payees comes from the transaction history.
        self.known_payees: set[str] = {row[2] for row in company.transactions}
        self._cases = 0

    def _case(self, rule: str, subject: str, kind: SubjectKind, severity: int, confidence: float, start: float, end: float, evidence: list[int]) -> Case:
        self._cases += 1
        return Case(f"{self.name}-{rule}-{self._cases}", self.name, rule, subject, kind, severity, confidence, start, end, tuple(evidence[:50]))

    def inspect(self, rows: list[EventRow], start: float, end: float) -> list[Case]:
        """Cases for one closed window of events."""
        requests: dict[str, list[int]] = defaultdict(list)
        rejections: dict[str, list[int]] = defaultdict(list)
        cases: list[Case] = []
        for row in rows:
            kind = row.kind
            if kind == "request":
                requests[row.identity].append(row.event_id)
            elif kind in _REJECTIONS or (kind == "guard_input" and not row.ok):
                rejections[row.identity].append(row.event_id)
            elif kind == "transfer" and row.ok and not row.service.startswith(INTERNAL_PREFIX):
                if row.service not in self.known_payees:
                    cases.append(self._case("new-payee", row.identity, SubjectKind.IDENTITY, 4, 0.85, start, end, [row.event_id]))
                    cases.append(self._case("new-payee", row.service, SubjectKind.WALLET, 4, 0.85, start, end, [row.event_id]))
                    self.known_payees.add(row.service)
        cfg = self.config
        for identity, ids in requests.items():
            if len(ids) > cfg.rapid_fire_per_window:
                confidence = min(0.95, 0.5 + 0.05 * (len(ids) - cfg.rapid_fire_per_window))
                cases.append(self._case("rapid-fire", identity, SubjectKind.IDENTITY, 2, confidence, start, end, ids))
        for identity, ids in rejections.items():
            if len(ids) >= cfg.error_loop_threshold:
                confidence = min(0.95, 0.55 + 0.1 * (len(ids) - cfg.error_loop_threshold))
                cases.append(self._case("error-loop", identity, SubjectKind.IDENTITY, 3, confidence, start, end, ids))
        return cases
