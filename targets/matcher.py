"""Multi-pattern matching of rules with RE2 sets (linear time, bounded memory).

Rules are compiled into RE2 ``Set`` objects of at most ``CHUNK`` patterns
each, so the DFA of one set stays small; one scan of a text runs each set once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import re2

from targets.rules import Rule, RuleSetError, _re2_options, check_linear

CHUNK = 256


class RuleMatcher:
    """Finds which of a fixed list of rules match a text."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules: tuple[Rule, ...] = tuple(rules)
        self._sets: list[tuple[re2.Set, int]] = []
        options = _re2_options()
        for start in range(0, len(self.rules), CHUNK):
            chunk = self.rules[start : start + CHUNK]
            rule_set = re2.Set.SearchSet(options)
            for rule in chunk:
                try:
                    rule_set.Add(rule.re2_pattern())
                except re2.error:
                    check_linear(rule)  # raises a message naming the rule
                    raise RuleSetError(f"rule {rule.id!r}: RE2 refused the pattern") from None
            try:
                rule_set.Compile()
            except re2.error:
                raise RuleSetError(f"rules {chunk[0].id!r}..{chunk[-1].id!r}: RE2 could not compile them within its memory budget") from None
            self._sets.append((rule_set, start))

    def __len__(self) -> int:
        return len(self.rules)

    def match_indices(self, texts: Iterable[str]) -> set[int]:
        """Indices of the rules matching any of ``texts``."""
        hits: set[int] = set()
        for text in texts:
            if not text:
                continue
            encoded = text.encode("utf-8", "replace")  # lone surrogates become "?"
            for rule_set, offset in self._sets:
                found = rule_set.Match(encoded)
                if found:
                    hits.update(offset + index for index in found)
        return hits

    def match(self, texts: Iterable[str]) -> list[Rule]:
        """The matching rules, in rule-set order."""
        return [self.rules[index] for index in sorted(self.match_indices(texts))]
