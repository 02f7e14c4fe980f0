"""The court ("the brain"): the only component allowed to take destructive action.

It weighs the sentinels' cases per subject: a single severe, confident case,
or corroboration (cases from at least two different rules or sentinels within
the memory horizon, with enough mean confidence) is enough for a kill warrant.
Known-good identities never get one, and cases inside a declared exercise
window (a red-team drill, a load test) are dismissed. Each warrant states its
reasoning; enforcers apply it at once and it holds for the rest of the run.
"""

from __future__ import annotations

from collections import defaultdict

from pydantic import Field

from kosmoi.settings import Settings
from kosmoi.types import Case, SubjectKind, Warrant, WarrantAction

_ACTION_FOR = {
    SubjectKind.IDENTITY: WarrantAction.REVOKE_TOKEN,
    SubjectKind.AGENT: WarrantAction.QUARANTINE_AGENT,
    SubjectKind.WALLET: WarrantAction.FREEZE_WALLET,
    SubjectKind.SESSION: WarrantAction.END_SESSION,
}


class ExerciseWindow(Settings):
    """A declared drill: cases about matching subjects between start and end are dismissed."""

    start_s: float = Field(ge=0)
    end_s: float = Field(ge=0)
    subjects: tuple[str, ...] = Field(min_length=1, description="identities, agents or wallets; a trailing * matches a prefix")

    def covers(self, subject: str, time: float) -> bool:
        if not self.start_s <= time <= self.end_s:
            return False
        return any(subject == s or (s.endswith("*") and subject.startswith(s[:-1])) for s in self.subjects)


class CourtConfig(Settings):
    """When the court issues a warrant."""

    severe: int = Field(default=4, ge=1, le=5, description="a case this severe ...")
    severe_confidence: float = Field(default=0.8, ge=0, le=1, description="... and this confident suffices alone")
    corroboration: int = Field(default=2, ge=1, description="distinct rules needed otherwise")
    corroborated_confidence: float = Field(default=0.6, ge=0, le=1, description="mean confidence needed for corroborated cases")
    memory_s: float = Field(default=600.0, gt=0, description="how long cases count as evidence")
    known_good: tuple[str, ...] = Field(default=(), description="subjects that never get a warrant")
    exercise_windows: tuple[ExerciseWindow, ...] = ()


class Court:
    """Turns cases into warrants."""

    def __init__(self, config: CourtConfig | None = None, known_good: frozenset[str] = frozenset()) -> None:
        self.config = config or CourtConfig()
        self.known_good = frozenset(known_good) | frozenset(self.config.known_good)
        self._docket: dict[tuple[str, SubjectKind], list[Case]] = defaultdict(list)
        self._sentenced: set[tuple[str, SubjectKind]] = set()
        self._issued = 0
        self._sittings = 0
        self.dismissed = 0  # cases set aside (known-good subject, exercise window, already sentenced)

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("_sittings", 0)  # snapshots taken before stale dockets were dropped

    def _admissible(self, case: Case) -> bool:
        if case.subject in self.known_good or (case.subject, case.subject_kind) in self._sentenced:
            return False
        return not any(window.covers(case.subject, case.window_end) for window in self.config.exercise_windows)

    def deliberate(self, cases: list[Case], now: float) -> list[Warrant]:
        """Warrants warranted by the new cases (and recent ones on the docket)."""
        cfg = self.config
        self._sittings += 1
        if self._sittings % 64 == 0:  # dockets whose every case is past memory will never count again
            for key in [k for k, docket in self._docket.items() if all(c.window_end < now - cfg.memory_s for c in docket)]:
                del self._docket[key]
        touched: list[tuple[str, SubjectKind]] = []
        for case in cases:
            if not self._admissible(case):
                self.dismissed += 1
                continue
            key = (case.subject, case.subject_kind)
            if key not in touched:
                touched.append(key)
            self._docket[key].append(case)
        warrants: list[Warrant] = []
        for key in touched:
            docket = [c for c in self._docket[key] if c.window_end >= now - cfg.memory_s]
            self._docket[key] = docket
            severe = [c for c in docket if c.severity >= cfg.severe and c.confidence >= cfg.severe_confidence]
            rules = {(c.sentinel, c.rule) for c in docket}
            mean_confidence = sum(c.confidence for c in docket) / len(docket) if docket else 0.0
            if severe:
                reason = f"severe case {severe[0].rule} (severity {severe[0].severity}, confidence {severe[0].confidence:.2f})"
            elif len(rules) >= cfg.corroboration and mean_confidence >= cfg.corroborated_confidence:
                reason = f"corroborated by {len(rules)} rules: {', '.join(sorted(f'{s}/{r}' for s, r in rules))} (mean confidence {mean_confidence:.2f})"
            else:
                continue
            self._issued += 1
            subject, kind = key
            warrants.append(Warrant(f"w{self._issued}", _ACTION_FOR[kind], subject, kind, tuple(c.case_id for c in docket), reason, now))
            self._sentenced.add(key)
            del self._docket[key]
        return warrants
