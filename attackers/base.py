"""The interface every attacker implements."""

from __future__ import annotations

from typing import Protocol

from kosmoi.types import Attack, Feedback


class Attacker(Protocol):
    """A logical attacker: proposes one attack per attempt and learns from feedback."""

    def propose(self, attempt: int) -> Attack:
        """The next attack of this campaign."""
        ...

    def observe(self, feedback: Feedback) -> None:
        """What happened to the last attack (blocked where, by which rule, the reply)."""
        ...
