"""``--fail-if`` conditions for scheduled runs: ``"breach_rate > 0.05, false_positive_rate >= 0.01"``.

Each condition is ``<summary metric> <op> <number>`` with ``>``, ``>=``, ``<``,
``<=``, ``==`` or ``!=``; conditions are separated by commas and a run fails
when any of them holds. Parsed, never evaluated as code.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

_OPS: dict[str, Callable[[float, float], bool]] = {">=": operator.ge, "<=": operator.le, "==": operator.eq, "!=": operator.ne, ">": operator.gt, "<": operator.lt}
_CONDITION = re.compile(r"^\s*([a-z_][a-z0-9_.]*)\s*(>=|<=|==|!=|>|<)\s*(-?\d+(?:\.\d+)?(?:e-?\d+)?)\s*$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Condition:
    metric: str
    op: str
    threshold: float

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.threshold:g}"

    def holds(self, summary: Mapping[str, object]) -> bool:
        value = summary[self.metric]
        return _OPS[self.op](float(value), self.threshold)  # type: ignore[arg-type]


def parse_conditions(text: str, known: Mapping[str, object]) -> list[Condition]:
    """Parse ``text``; metrics must be numeric keys of ``known`` (a summary)."""
    conditions = []
    for part in (p for p in text.split(",") if p.strip()):
        match = _CONDITION.match(part)
        if not match:
            raise ValueError(f"--fail-if: cannot read {part.strip()!r}; expected e.g. 'breach_rate > 0.05'")
        metric, op, number = match.groups()
        if metric not in known or isinstance(known[metric], (dict, list, str, bool)) or known[metric] is None:
            numeric = sorted(k for k, v in known.items() if isinstance(v, (int, float)) and not isinstance(v, bool))
            raise ValueError(f"--fail-if: unknown metric {metric!r}; use one of: {', '.join(numeric)}")
        conditions.append(Condition(metric, op, float(number)))
    if not conditions:
        raise ValueError("--fail-if: no condition given")
    return conditions
