"""A toy sentinel, added the way a user adds one: this module plus configuration.

It opens a case against every identity whose input was flagged by the toy
stage at least ``threshold`` times in one window (default 2). Severity 1: the
court records it and issues no warrant.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from kosmoi.types import Case, SubjectKind
from targets.company import Company
from targets.eventlog import EventRow
from targets.sentinels import register_sentinel
from targets.stack import StackSettings
from tests.plugins.toy_stage import RULE


class PoliteWatch:
    """Counts the toy stage's flags per identity per window."""

    name = "toy-polite-watch"

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self.count = 0

    def inspect(self, rows: list[EventRow], start: float, end: float) -> list[Case]:
        flagged: dict[str, list[int]] = defaultdict(list)
        for row in rows:
            if row.kind == "guard_input" and RULE in row.detail.split(","):
                flagged[row.identity].append(row.event_id)
        cases = []
        for identity, evidence in sorted(flagged.items()):
            if len(evidence) >= self.threshold:
                self.count += 1
                cases.append(Case(f"{self.name}-{self.count}", self.name, "polite", identity, SubjectKind.IDENTITY, 1, 0.2, start, end, tuple(evidence[:50])))
        return cases


@register_sentinel("toy-polite-watch")
def _build(company: Company, settings: StackSettings, options: Mapping[str, Any]) -> PoliteWatch:
    return PoliteWatch(int(options.get("threshold", 2)))
