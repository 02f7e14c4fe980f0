"""Sentinels ("white blood cells"): batch jobs over each closed event window.

They only flag: each returns :class:`~kosmoi.types.Case` objects with the
evidence event ids, a severity (1-5) and a confidence (0-1). Acting is the
court's job. Sentinels read the event log and the company's business tables
(orders, prices), never the simulator's ground truth.

Auditor:
- rapid fire: too many privileged actions (transfers, refunds, price
  changes, grants, secret reads) by one identity in one window;
- error loops: repeated rejections (denied auth or tools, blocked input);
- transaction logic: money sent out of the company to an account never paid
  before, refunds above what the order cost, price drops beyond a bound.

Network: request volume per identity and in total against an EWMA baseline.

Every sentinel implements :class:`Sentinel` and is registered in
:data:`SENTINELS` by name; the stack runs the ones its settings name
(``targets.sentinels.enabled`` in the experiment), so a new sentinel is one
module plus configuration (``docs/architecture.md``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pydantic import Field

from kosmoi.registry import Ref, Registry
from kosmoi.settings import Settings
from kosmoi.types import Case, EventKind, SubjectKind
from targets.company import Company
from targets.eventlog import EventRow

if TYPE_CHECKING:
    from targets.stack import StackSettings

INTERNAL_PREFIX = "credit:"  # store-credit wallets inside the company
PRIVILEGED_CALLS = frozenset({"finance.transfer", "finance.refund", "catalog.set_price", "iam.grant", "vault.read"})
_REJECTIONS = frozenset({EventKind.AUTH_DENIED.value, EventKind.TOOL_DENIED.value})


class AuditorConfig(Settings):
    """Thresholds of the auditor sentinel."""

    rapid_fire_per_window: int = Field(default=3, gt=0, description="privileged actions per identity per window")
    error_loop_threshold: int = Field(default=3, gt=0, description="rejections per identity per window")
    max_price_drop: float = Field(default=0.3, gt=0, le=1, description="fraction of the old price")


class NetworkConfig(Settings):
    """Baselines of the network sentinel."""

    alpha: float = Field(default=0.2, gt=0, le=1, description="EWMA weight of the newest window")
    spike_factor: float = Field(default=4.0, gt=1, description="a window above factor x baseline is a spike")
    min_requests: int = Field(default=8, gt=0, description="... and above this many requests")
    warmup_windows: int = Field(default=3, ge=0, description="windows before the global baseline is trusted")
    forget_after_windows: int = Field(default=120, gt=0, description="an identity silent this long loses its baseline (memory stays bounded)")


@runtime_checkable
class Sentinel(Protocol):
    """A batch job over each closed window of events: it only flags, as cases with evidence."""

    name: str

    def inspect(self, rows: list[EventRow], start: float, end: float) -> list[Case]:
        """Cases for the window ``[start, end)`` whose events are ``rows``."""
        ...


SentinelFactory = Callable[[Company, "StackSettings", Mapping[str, Any]], Sentinel]
SENTINELS: Registry[SentinelFactory] = Registry("sentinel", builtins=("targets.sentinels", "targets.conversation_sentinel"))


def register_sentinel(name: str) -> Callable[[SentinelFactory], SentinelFactory]:
    """Decorator: make a sentinel factory ``(company, stack settings, options) -> Sentinel`` buildable by ``name``."""
    return SENTINELS.register(name)


def build_sentinels(refs: Sequence[Ref], company: Company, settings: StackSettings) -> tuple[Sentinel, ...]:
    """The configured sentinels, in order; an unknown name is an error listing the registered ones."""
    built: list[Sentinel] = []
    for ref in refs:
        sentinel = SENTINELS.get(ref.name)(company, settings, ref.options)
        if not isinstance(sentinel, Sentinel):
            raise TypeError(f"sentinel {ref.name!r} has no name and inspect(rows, start, end)")
        built.append(sentinel)
    return tuple(built)


class _CaseFactory:
    def __init__(self, sentinel: str) -> None:
        self.sentinel = sentinel
        self.count = 0

    def __call__(self, rule: str, subject: str, kind: SubjectKind, severity: int, confidence: float, start: float, end: float, evidence: list[int]) -> Case:
        self.count += 1
        return Case(f"{self.sentinel}-{rule}-{self.count}", self.sentinel, rule, subject, kind, severity, round(confidence, 3), start, end, tuple(evidence[:50]))


class Auditor:
    """Flags rapid privileged activity, error loops and transaction-logic anomalies."""

    name = "auditor"

    def __init__(self, company: Company, config: AuditorConfig | None = None) -> None:
        self.config = config or AuditorConfig()
        self.company = company
        self.known_payees: set[str] = {row[2] for row in company.transactions}
        self._case = _CaseFactory(self.name)

    def inspect(self, rows: list[EventRow], start: float, end: float) -> list[Case]:
        """Cases for one closed window of events."""
        privileged: dict[str, list[int]] = defaultdict(list)
        rejections: dict[str, list[int]] = defaultdict(list)
        cases: list[Case] = []
        case = self._case
        cfg = self.config
        for row in rows:
            kind = row.kind
            if kind == "tool_call":
                if row.ok and row.service in PRIVILEGED_CALLS:
                    privileged[row.identity].append(row.event_id)
            elif kind in _REJECTIONS or (kind == "guard_input" and not row.ok):
                rejections[row.identity].append(row.event_id)
            elif kind in ("transfer", "refund") and row.ok:
                if not row.service.startswith(INTERNAL_PREFIX) and row.service not in self.known_payees:
                    cases.append(case("new-payee", row.identity, SubjectKind.IDENTITY, 4, 0.85, start, end, [row.event_id]))
                    cases.append(case("new-payee", row.service, SubjectKind.WALLET, 4, 0.85, start, end, [row.event_id]))
                    self.known_payees.add(row.service)
                if kind == "refund":
                    order = self.company.orders.get(row.detail.removeprefix("order "))
                    if order is not None and order.refunded > order.amount + 0.005:
                        confidence = min(0.95, 0.7 + 0.1 * (order.refunded / max(order.amount, 1.0)))
                        cases.append(case("refund-above-purchase", row.identity, SubjectKind.IDENTITY, 4, confidence, start, end, [row.event_id]))
            elif kind == "price_change" and row.ok:
                old, _, new = row.detail.partition("->")
                try:
                    before, after = float(old), float(new)
                except ValueError:
                    continue
                if before > 0 and (before - after) / before > cfg.max_price_drop:
                    drop = (before - after) / before
                    cases.append(case("price-drop", row.identity, SubjectKind.IDENTITY, 3, min(0.95, 0.5 + drop / 2), start, end, [row.event_id]))
        for identity, ids in privileged.items():
            if len(ids) > cfg.rapid_fire_per_window:
                confidence = min(0.95, 0.5 + 0.1 * (len(ids) - cfg.rapid_fire_per_window))
                cases.append(case("rapid-fire", identity, SubjectKind.IDENTITY, 3, confidence, start, end, ids))
        for identity, ids in rejections.items():
            if len(ids) >= cfg.error_loop_threshold:
                confidence = min(0.95, 0.55 + 0.1 * (len(ids) - cfg.error_loop_threshold))
                cases.append(case("error-loop", identity, SubjectKind.IDENTITY, 3, confidence, start, end, ids))
        return cases


class NetworkSentinel:
    """Flags request-volume spikes per identity and in total against EWMA baselines."""

    name = "network"

    def __init__(self, config: NetworkConfig | None = None) -> None:
        self.config = config or NetworkConfig()
        self._global_mean = 0.0
        self._global_var = 0.0
        self._windows = 0
        self._identity_mean: dict[str, float] = {}
        self._identity_seen: dict[str, int] = {}  # window index each identity was last seen in
        self._case = _CaseFactory(self.name)

    def inspect(self, rows: list[EventRow], start: float, end: float) -> list[Case]:
        cfg = self.config
        per_identity: dict[str, list[int]] = defaultdict(list)
        per_agent: dict[str, int] = defaultdict(int)
        for row in rows:
            if row.kind == "request":
                per_identity[row.identity].append(row.event_id)
                per_agent[row.agent] += 1
        total = sum(len(ids) for ids in per_identity.values())
        cases: list[Case] = []
        for identity, ids in per_identity.items():
            baseline = self._identity_mean.get(identity, 1.0)
            if len(ids) >= cfg.min_requests and len(ids) > cfg.spike_factor * baseline:
                confidence = min(0.95, 0.5 + 0.05 * (len(ids) / max(baseline, 1.0)))
                cases.append(self._case("identity-spike", identity, SubjectKind.IDENTITY, 2, confidence, start, end, ids))
        if self._windows >= cfg.warmup_windows and total >= cfg.min_requests:
            std = math.sqrt(max(self._global_var, 1.0))
            if total > self._global_mean * cfg.spike_factor and total > self._global_mean + 4 * std:
                agent = max(per_agent, key=lambda a: (per_agent[a], a))
                evidence = [i for ids in per_identity.values() for i in ids]
                cases.append(self._case("global-spike", agent, SubjectKind.AGENT, 2, 0.6, start, end, evidence))
        # update baselines (identities seen in this window; silence decays them lazily next time they appear)
        for identity, ids in per_identity.items():
            previous = self._identity_mean.get(identity, float(len(ids)))
            self._identity_mean[identity] = (1 - cfg.alpha) * previous + cfg.alpha * len(ids)
            self._identity_seen[identity] = self._windows
        if self._windows % 64 == 0:
            self._forget_silent_identities()
        delta = total - self._global_mean
        self._global_mean += cfg.alpha * delta
        self._global_var = (1 - cfg.alpha) * (self._global_var + cfg.alpha * delta * delta)
        self._windows += 1
        return cases

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("_identity_seen", {})  # snapshots taken before identities were forgotten

    def _forget_silent_identities(self) -> None:
        """Drop the baselines of identities not seen for ``forget_after_windows``: finished campaigns and users leave nothing behind."""
        horizon = self._windows - self.config.forget_after_windows
        for identity in [i for i, seen in self._identity_seen.items() if seen < horizon]:
            del self._identity_seen[identity]
            self._identity_mean.pop(identity, None)


def _no_options(name: str, options: Mapping[str, Any]) -> None:
    if options:
        raise ValueError(f"sentinel {name!r} takes its settings from targets.sentinels, not options: got {', '.join(sorted(options))}")


@register_sentinel("auditor")
def _auditor(company: Company, settings: StackSettings, options: Mapping[str, Any]) -> Sentinel:
    _no_options("auditor", options)
    return Auditor(company, settings.auditor)


@register_sentinel("network")
def _network(company: Company, settings: StackSettings, options: Mapping[str, Any]) -> Sentinel:
    _no_options("network", options)
    return NetworkSentinel(settings.network)
