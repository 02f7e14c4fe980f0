"""Multi-pattern rule matching in linear time: Hyperscan, with RE2 as the portable fallback.

``docs/benchmarks.md`` has the measurements behind the choice: with 1,000
gap-style rules on 1 KB of text, Hyperscan answers in ~7 µs (p50), an RE2
``Set`` in ~1.5 ms and Python ``re`` in ~11 ms. Both engines are automata
without backtracking; a rule set must compile in both (RE2 syntax is checked
per rule at load, see :func:`targets.rules.check_linear`) so that it runs
wherever it is deployed.

Hyperscan databases of large rule sets take seconds to build; they are cached
in memory per process and on disk (``IMMUNE_CACHE_DIR``, default the user
cache directory) keyed by the patterns and the library version.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import re2

from targets.rules import Rule, RuleSetError, check_linear, re2_options

log = logging.getLogger(__name__)

_hs: Any
try:  # Hyperscan needs x86-64 with SSSE3; elsewhere RE2 serves
    import hyperscan as _hs
except ImportError:  # pragma: no cover - exercised only on machines without the wheel
    _hs = None

Engine = Literal["auto", "hyperscan", "re2"]
RE2_CHUNK = 256
_MEMORY_CACHE: dict[tuple[str, str], _Backend] = {}
_MEMORY_CACHE_SIZE = 16


def hyperscan_available() -> bool:
    return _hs is not None


def cache_dir() -> Path:
    """Where compiled rule databases are kept between processes."""
    env = os.environ.get("IMMUNE_CACHE_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("kosmoi-immune"))


class _Backend(Protocol):
    def match(self, data: bytes) -> set[int]: ...


class _RE2Backend:
    def __init__(self, patterns: Sequence[str]) -> None:
        options = re2_options()
        self._sets: list[tuple[re2.Set, int]] = []
        for start in range(0, len(patterns), RE2_CHUNK):
            rule_set = re2.Set.SearchSet(options)
            for pattern in patterns[start : start + RE2_CHUNK]:
                rule_set.Add(pattern)
            rule_set.Compile()
            self._sets.append((rule_set, start))

    def match(self, data: bytes) -> set[int]:
        hits: set[int] = set()
        for rule_set, offset in self._sets:
            found = rule_set.Match(data)
            if found:
                hits.update(offset + index for index in found)
        return hits


class _HyperscanBackend:
    FLAGS = 0

    def __init__(self, patterns: Sequence[str], key: str) -> None:
        assert _hs is not None
        flags = _hs.HS_FLAG_CASELESS | _hs.HS_FLAG_DOTALL | _hs.HS_FLAG_SINGLEMATCH
        self._db: Any = self._load(key) if key else None
        if self._db is None:
            self._db = _hs.Database(mode=_hs.HS_MODE_BLOCK)
            encoded = [p.encode("utf-8") for p in patterns]
            self._db.compile(expressions=encoded, ids=list(range(len(encoded))), elements=len(encoded), flags=flags)
            self._store(key)
        self._hits: set[int] = set()

    @staticmethod
    def _path(key: str) -> Path:
        return cache_dir() / "hyperscan" / f"{key}.hsdb"

    def _load(self, key: str) -> Any:
        path = self._path(key)
        try:
            db = _hs.loadb(path.read_bytes(), mode=_hs.HS_MODE_BLOCK)
            db.scratch = _hs.Scratch(db)  # a deserialised database comes without scratch space
            return db
        except (OSError, _hs.error, TypeError, ValueError):
            return None

    def _store(self, key: str) -> None:
        if not key:
            return
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            tmp.write_bytes(_hs.dumpb(self._db))
            os.replace(tmp, path)
        except OSError as exc:  # a cache is an optimisation; never fail because of it
            log.debug("cannot cache hyperscan database at %s: %s", path, exc)

    def _on_match(self, rule_id: int, start: int, end: int, flags: int, context: object) -> None:
        self._hits.add(rule_id)

    def match(self, data: bytes) -> set[int]:
        self._hits = set()
        self._db.scan(data, match_event_handler=self._on_match)
        return self._hits


def _database_key(patterns: Sequence[str]) -> str:
    digest = hashlib.sha256()
    digest.update(getattr(_hs, "__version__", "hs").encode())
    for pattern in patterns:
        digest.update(pattern.encode("utf-8", "surrogatepass") + b"\x00")
    return digest.hexdigest()[:32]


def _explain_failure(rules: Sequence[Rule], engine: str) -> RuleSetError:
    """Find which rules an engine refuses (compiling one at a time) for a message naming them."""
    bad: list[str] = []
    for rule in rules:
        check_linear(rule)
        try:
            if engine == "hyperscan":
                _HyperscanBackend([rule.re2_pattern()], key="")
            else:
                _RE2Backend([rule.re2_pattern()])
        except Exception as exc:
            bad.append(f"rule {rule.id!r}: {exc}")
        if len(bad) >= 5:
            break
    detail = "; ".join(bad) if bad else "the set as a whole exceeds the engine's limits"
    return RuleSetError(f"{engine} cannot compile the rule set: {detail}")


def resolve_engine(engine: Engine) -> Literal["hyperscan", "re2"]:
    if engine == "re2":
        return "re2"
    if engine == "hyperscan" and _hs is None:
        raise RuleSetError("rule engine 'hyperscan' requested but the hyperscan package is not installed on this machine")
    return "hyperscan" if _hs is not None else "re2"


class RuleMatcher:
    """Finds which of a fixed list of rules match a text."""

    def __init__(self, rules: Sequence[Rule], engine: Engine = "auto") -> None:
        self.rules: tuple[Rule, ...] = tuple(rules)
        self.engine = resolve_engine(engine)
        patterns = [rule.re2_pattern() for rule in self.rules]
        key = _database_key(patterns) if patterns else ""
        cached = _MEMORY_CACHE.get((self.engine, key)) if key else None
        if cached is not None or not patterns:
            self._backend = cached
            return
        try:
            backend: _Backend = _HyperscanBackend(patterns, key) if self.engine == "hyperscan" else _RE2Backend(patterns)
        except Exception:
            raise _explain_failure(self.rules, self.engine) from None
        if len(_MEMORY_CACHE) >= _MEMORY_CACHE_SIZE:
            _MEMORY_CACHE.pop(next(iter(_MEMORY_CACHE)))
        _MEMORY_CACHE[(self.engine, key)] = backend
        self._backend = backend

    def __getstate__(self) -> dict[str, object]:
        return {"rules": self.rules, "engine": self.engine}  # compiled databases are rebuilt (or taken from the cache)

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__init__(state["rules"], state["engine"])  # type: ignore[misc]

    def __len__(self) -> int:
        return len(self.rules)

    def match_indices(self, texts: Iterable[str]) -> set[int]:
        """Indices of the rules matching any of ``texts``."""
        if self._backend is None:
            return set()
        hits: set[int] = set()
        for text in texts:
            if text:
                hits |= self._backend.match(text.encode("utf-8", "replace"))  # lone surrogates become "?"
        return hits

    def match(self, texts: Iterable[str]) -> list[Rule]:
        """The matching rules, in rule-set order."""
        return [self.rules[index] for index in sorted(self.match_indices(texts))]
