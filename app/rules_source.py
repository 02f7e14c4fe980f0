"""A rule set that can change under a long-running scanner, and never leaves it without rules.

`LiveRuleSet` re-reads its reference (a JSON file, or a ``models:/name@alias`` URI) at most every
``check_every_s`` seconds. A new version that loads and validates replaces the current one; one
that does not — corrupt JSON, a wrong hash, a rule that is invalid or not linear-time, a registry
that cannot be reached — is logged (once per distinct problem) and the last good version stays
active.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from targets.rules import RuleSet, RuleSetError

log = logging.getLogger(__name__)


class LiveRuleSet:
    """The last good rule set behind ``ref``, refreshed on demand."""

    def __init__(self, ref: str, loader: Callable[[str], RuleSet], check_every_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.ref = ref
        self._loader = loader
        self.check_every_s = check_every_s
        self._clock = clock
        self.current = loader(ref)  # the first load must succeed: there is no last good version yet
        self._stamp = self._file_stamp()
        self._next_check = clock() + check_every_s
        self.last_error: str | None = None
        self.reloads = 0

    def _file_stamp(self) -> tuple[int, int, int] | None:
        if self.ref.startswith(("models:/", "builtin:")):
            return None
        try:
            stat = os.stat(Path(self.ref))
        except OSError:
            return (-1, -1, -1)
        return (stat.st_mtime_ns, stat.st_size, stat.st_ino)

    def refresh(self) -> bool:
        """Reload if due and changed; True when a new version became active."""
        if self.check_every_s <= 0 or self._clock() < self._next_check:
            return False
        self._next_check = self._clock() + self.check_every_s
        if self.ref.startswith("builtin:"):
            return False
        stamp = self._file_stamp()
        if stamp is not None and stamp == self._stamp:
            return False
        try:
            candidate = self._loader(self.ref)
        except (RuleSetError, OSError) as exc:
            problem = str(exc)
            if problem != self.last_error:
                log.error("rules %s: keeping %s v%s (%s): %s", self.ref, self.current.name, self.current.version, self.current.hash, problem)
            self.last_error = problem
            self._stamp = stamp  # a broken file is reported once, re-read when it changes again
            return False
        self._stamp = stamp
        self.last_error = None
        if candidate.hash == self.current.hash:
            return False
        log.warning("rules %s: now %s v%s (%s), was v%s", self.ref, candidate.name, candidate.version, candidate.hash, self.current.version)
        self.current = candidate
        self.reloads += 1
        return True
