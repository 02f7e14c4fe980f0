"""Mining attacks that got through into new guardrail rules.

Only confirmed damage is mined: attack episodes the input guard let through
*and* the oracle judged breached — noise and near misses cannot poison the
rule set (cf. Perdisci et al., "Misleading worm signature generators").

1. Every attack is seen the way the guard sees it: its canonical text and
   what its obfuscation hides (decoded base64/hex/URL/QP, ROT13, reversed and
   split payloads) — see :func:`targets.input_stages.derived_variants`.
2. Its tokens are the words (three letters or more, no digits, so amounts,
   IBANs and identities are left out, and no stopwords).
3. Attacks of one goal are clustered greedily by the overlap of their tokens.
4. Per cluster, a token-subsequence signature in the style of Polygraph and
   Hamsa: from the *invariant* tokens (shared by at least half of the
   cluster's campaigns, so one persistent attacker cannot dominate), rarest
   in the benign corpus first, a conjunction is grown greedily — a token joins
   only if the signature still matches enough of the cluster within one view
   of each text — until it stays under the per-rule false-positive bound on
   the benign corpus. Tokens are generalised to their stem plus a bounded
   suffix, kept in their usual order and joined by bounded gaps: a regex RE2
   and Hyperscan run in linear time. Tokens need not be rare one by one:
   "refund" and "account" are both everyday words, "refund ... account" is
   not.
5. Candidates are rejected (with the reason recorded) when they cannot run in
   linear time, match too much benign text, cover too little of their
   cluster, or duplicate an existing rule.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from targets.canonical import canonicalize
from targets.input_stages import derived_variants
from targets.matcher import RuleMatcher
from targets.rules import Rule, RuleSet, RuleSetError, check_linear

_TOKEN_RE = re.compile(r"\b[a-z][a-z']{2,23}\b")  # whole words only: not the letters inside an IBAN or a base64 run
STOPWORDS = frozenset(
    """the and you your for this that with are from have will can our all any not but was were has had its his her they them their
    what when where which who how why there here then than into onto over under also just only very more most some such these those
    would could should been being does did doing done get got out off one two may might must shall please thanks thank hello dear
    about after again against before between both each few other same own too now""".split()
)


@dataclass(frozen=True, slots=True)
class MinerConfig:
    max_benign_df: float = 0.003  # a distinctive token appears in at most this share of benign texts
    max_rule_fpr: float = 0.001  # per-rule false positives on the benign mining corpus
    min_coverage: float = 0.5  # share of its cluster's members a rule must match
    min_cluster: int = 2  # attacks needed to mine a cluster
    max_gap: int = 100  # characters between signature tokens
    max_tokens: int = 4
    max_candidates: int = 12  # invariant tokens considered per cluster, rarest first
    seed_tokens: int = 3  # signatures grown from each of the rarest few
    cluster_similarity: float = 0.3
    max_new_rules: int = 25


@dataclass(frozen=True, slots=True)
class MinedAttack:
    """One breached attack episode, as the miner needs it."""

    episode_id: str
    campaign_id: str
    goal: str
    payload: str


@dataclass
class Candidate:
    rule: Rule | None
    cluster: int
    goal: str
    members: int
    coverage: float = 0.0
    benign_fpr: float = 0.0
    rejected: str = ""


@dataclass
class MiningReport:
    rules: list[Rule] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)
    clusters: int = 0
    attacks: int = 0

    @property
    def rejected(self) -> dict[str, int]:
        return dict(Counter(c.rejected for c in self.candidates if c.rejected))


def views(text: str) -> list[str]:
    """The texts the guard matches rules against, for one input."""
    canon = canonicalize(text)
    found = list(canon.variants())
    found.extend(hidden for _, hidden in derived_variants(text, canon))
    return found


def tokens(texts: Iterable[str]) -> set[str]:
    return {t for text in texts for t in _TOKEN_RE.findall(text) if t not in STOPWORDS}


def _stem_pattern(token: str) -> str:
    stem = token[:6] if len(token) > 7 else token
    return re.escape(stem) + ("[a-z']{0,8}" if len(token) > 7 else "")


def signature_pattern(ordered_tokens: Sequence[str], max_gap: int) -> str:
    """``\\btoken1[a-z]{0,8}(?s:.{0,gap})\\btoken2...``: bounded, linear-time."""
    return f"(?s:.{{0,{max_gap}}})".join(rf"\b{_stem_pattern(t)}" for t in ordered_tokens)


class Miner:
    """Turns breached attacks into candidate rules, checked against a benign corpus."""

    def __init__(self, benign_texts: Sequence[str], config: MinerConfig | None = None) -> None:
        self.config = config or MinerConfig()
        self.benign_texts = list(benign_texts)
        self.benign_views = [canonicalize(t).text for t in benign_texts]
        self._benign_df = Counter(token for text in self.benign_views for token in set(_TOKEN_RE.findall(text)))
        self._max_df = max(1, int(self.config.max_benign_df * len(self.benign_views)))

    def distinctive(self, texts: Iterable[str]) -> set[str]:
        """Tokens rare in the benign corpus (used to rank signature tokens)."""
        return {t for t in tokens(texts) if self._benign_df.get(t, 0) <= self._max_df}

    def _benign_hits(self, rule: Rule) -> int:
        matcher = RuleMatcher([rule], "re2")  # one rule: RE2 compiles in microseconds, Hyperscan in milliseconds
        return sum(1 for text in self.benign_views if matcher.match_indices((text,)))

    def mine(self, attacks: Sequence[MinedAttack], ruleset: RuleSet, generation: int, run_id: str) -> MiningReport:
        """Candidate rules for the breached ``attacks`` of one generation."""
        cfg = self.config
        report = MiningReport(attacks=len(attacks))
        prepared = []
        for attack in attacks:
            seen = views(attack.payload)
            prepared.append((attack, seen, tokens(seen)))
        blocking = [r for r in ruleset.for_stage("input") if r.action == "block"]
        existing = RuleMatcher(blocking, "re2") if blocking else None
        existing_patterns = {r.pattern for r in ruleset.rules}
        clusters: list[tuple[str, set[str], list[tuple[MinedAttack, list[str], set[str]]]]] = []
        for item in sorted(prepared, key=lambda p: (p[0].goal, p[0].campaign_id, p[0].episode_id)):
            attack, _seen, distinct = item
            if not distinct:
                continue
            best, best_score = None, 0.0
            for index, (goal, centre, _members) in enumerate(clusters):
                if goal != attack.goal:
                    continue
                score = len(distinct & centre) / len(distinct | centre)
                if score > best_score:
                    best, best_score = index, score
            if best is not None and best_score >= cfg.cluster_similarity:
                clusters[best][1].update(distinct)
                clusters[best][2].append(item)
            else:
                clusters.append((attack.goal, set(distinct), [item]))
        report.clusters = len(clusters)
        clusters.sort(key=lambda c: (-len({m[0].campaign_id for m in c[2]}), c[0], sorted(c[1])[:3]))
        accepted: list[Rule] = []
        for number, (goal, _centre, members) in enumerate(clusters):
            if len(members) < cfg.min_cluster or len(accepted) >= cfg.max_new_rules:
                continue
            candidate = self._candidate(goal, number, members, generation, run_id, existing, existing_patterns | {r.pattern for r in accepted})
            report.candidates.append(candidate)
            if candidate.rule is not None and not candidate.rejected:
                accepted.append(candidate.rule)
        report.rules = accepted
        return report

    @staticmethod
    def _rule(goal: str, number: int, members: list, generation: int, run_id: str, chosen: list[str], pattern: str) -> Rule:
        return Rule(
            id=f"mined.g{generation}.{goal.replace('_', '-')}.{number}",
            kind="regex",
            pattern=pattern,
            action="block",
            weight=1.0,
            description=f"mined from {len(members)} breaching {goal} attacks: {' ... '.join(chosen)}",
            provenance={
                "source": "mined",
                "generation": generation,
                "run_id": run_id,
                "attack_ids": sorted(a.episode_id for a, _, _ in members)[:20],
                "cluster_size": len(members),
                "tokens": chosen,
            },
        )

    def _candidate(self, goal: str, number: int, members: list, generation: int, run_id: str, existing: RuleMatcher | None, patterns: set[str]) -> Candidate:
        cfg = self.config
        candidate = Candidate(None, number, goal, len(members))
        if existing is not None and all(existing.match_indices(seen) for _, seen, _ in members):
            candidate.rejected = "already covered by an existing rule"
            return candidate
        per_campaign: dict[str, set[str]] = {}
        for attack, _seen, words in members:
            per_campaign.setdefault(attack.campaign_id, set()).update(words)
        frequency = Counter(token for tokens_of_campaign in per_campaign.values() for token in tokens_of_campaign)
        support = max(1, int(0.5 * len(per_campaign) + 0.5))
        invariant = [t for t, n in frequency.items() if n >= support]
        # rarest in benign text first; among equally rare, the most shared
        ranked = sorted(invariant, key=lambda t: (self._benign_df.get(t, 0), -frequency[t], t))[: cfg.max_candidates]
        if len(ranked) < 2:
            candidate.rejected = "fewer than two invariant tokens"
            return candidate

        def position(token: str) -> float:
            spots = []
            for _, seen, _ in members:
                for text in seen:
                    at = text.find(token)
                    if at >= 0:
                        spots.append(at / max(1, len(text)))
                        break
            return statistics.median(spots) if spots else 1.0

        # Grow a conjunction greedily (as Hamsa does): from each of the rarest tokens, add the next
        # rarest token that still co-occurs, in one view, in enough of the cluster; stop as soon as
        # the signature is specific enough for the benign corpus. A token that only appears in
        # another view of the text (the base64 wrapper, not the decoded request) is skipped.
        last_problem = ""
        tried: set[str] = set()
        best: tuple[float, Rule, float] | None = None  # (coverage, rule, benign fpr): the widest-covering signature wins
        for first in ranked[: cfg.seed_tokens]:
            chosen = [first]
            for token in ranked:
                if token in chosen:
                    continue
                trial = sorted([*chosen, token], key=lambda t: (position(t), t))
                pattern = signature_pattern(trial, cfg.max_gap)
                if pattern in tried:
                    continue
                tried.add(pattern)
                if pattern in patterns:
                    last_problem = "duplicate of an existing rule"
                    continue
                rule = self._rule(goal, number, members, generation, run_id, trial, pattern)
                try:
                    check_linear(rule)
                    matcher = RuleMatcher([rule], "re2")
                except RuleSetError as exc:
                    last_problem = f"not linear-time: {exc}"
                    continue
                covered = sum(1 for _, seen, _ in members if matcher.match_indices(seen)) / len(members)
                if covered < cfg.min_coverage:
                    last_problem = f"covers {covered:.0%} of its cluster (< {cfg.min_coverage:.0%})"
                    continue  # this token does not go with the others: try the next one
                chosen = trial
                fpr = self._benign_hits(rule) / max(1, len(self.benign_views))
                candidate.coverage, candidate.benign_fpr = covered, fpr
                if fpr <= cfg.max_rule_fpr:
                    if best is None or (covered, -len(trial)) > (best[0], -len(best[1].provenance["tokens"])):
                        best = (covered, rule.model_copy(update={"provenance": {**rule.provenance, "coverage": round(covered, 3), "benign_fpr": round(fpr, 5)}}), fpr)
                    break  # the best signature grown from this first token
                last_problem = f"benign false-positive rate {fpr:.4f} above {cfg.max_rule_fpr}"
                if len(chosen) >= cfg.max_tokens:
                    break  # as specific as a signature may get
        if best is not None:
            candidate.coverage, candidate.rule, candidate.benign_fpr = best
            return candidate
        candidate.rejected = last_problem or "no signature found"
        return candidate
