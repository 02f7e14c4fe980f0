"""Simulation of one staging replica in simulated time.

All campaigns of a replica (attackers and benign users) share one staging
stack. Attempts run in time order (ties broken by campaign index); at every
window boundary the sentinels and the court run, and their warrants apply
from then on. :meth:`ReplicaSimulator.advance` runs up to a time and returns
what happened as Arrow tables, so a worker can stream results out and keep
bounded memory.
"""

from __future__ import annotations

import heapq
import math
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from attackers.archive import Archive
from attackers.backends import GenerationBackend
from attackers.bandit import BanditState
from attackers.base import ATTACKERS, SNIPER_KIND, Attacker, AttackerSpec, MultiTurnAttacker
from attackers.generation import GenerationRequest, GenerationResult
from attackers.mutations import families_of
from attackers.refine import MODEL_STRATEGIES
from attackers.seeds import AttackerAssets
from kosmoi.ids import derive_seed, episode_id
from kosmoi.schemas import CASES, WARRANTS, RowBuffer
from kosmoi.taxonomy import case_tags, episode_tags
from kosmoi.types import Attack, Case, EpisodeKind, Feedback, Goal, Outcome, Request, Stage, SubjectKind, Tier, Warrant
from sim.config import Experiment
from sim.plan import CampaignSpec, ReplicaPlan
from targets.rules import RuleSet
from targets.stack import StackSettings, StagingStack
from targets.traffic import benign_request, follow_up

CONVERSATION_KIND = "conversation"  # the attacker kind of conversation campaigns (attackers.conversation)


def stack_settings(exp: Experiment) -> StackSettings:
    """Map the experiment's ``targets`` section onto the stack's settings."""
    t = exp.targets
    return StackSettings(
        victim_profile=t.victim_profile,
        token_ttl_s=t.identity.token_ttl_s,
        key_rotation_s=t.identity.key_rotation_s,
        input_max_bytes=t.input_guard.max_bytes,
        input_guard=t.input_guard.enabled,
        output_guard=t.output_guard.enabled,
        enforce_identity=t.identity.enforce,
        business=t.output_guard,
        phone_regions=t.output_guard.phone_regions,
        auditor=t.sentinels,
        network=t.sentinels.network,
        court=t.court,
        customers=max(200, exp.benign.customers),
        llm_victim=t.llm_victim,
        endpoint=t.endpoint,
        rule_engine=t.rule_engine,
        semantic=t.input_guard.semantic,
        input_stages=tuple(part.ref() for part in t.input_guard.stages),
        output_stages=tuple(part.ref() for part in t.output_guard.stages),
        sentinels=tuple(part.ref() for part in t.sentinels.enabled),
        victim=t.victim or "",
        plugins=tuple(t.plugins),
        session_turns=t.input_guard.session_turns,
        session_max_chars=t.input_guard.session_max_chars,
    )


@dataclass(slots=True)
class _Campaign:
    spec: CampaignSpec
    attacker: Attacker | None
    backend: str | None = None  # key of the generation backend for model-written attacks
    token: str = ""
    token_expires: float = -1.0
    attempt: int = 0
    turn: int = 0  # the turn of the attempt's conversation being played
    follow_ups: int = 0  # a benign conversation's follow-up turns still to come


@dataclass(slots=True)
class SegmentOutput:
    """What one replica produced up to a point in simulated time."""

    episodes: pa.Table
    events: pa.Table
    cases: pa.Table
    warrants: pa.Table
    calls: pa.Table
    stage_seconds: dict[str, float] = field(default_factory=dict)


class ReplicaSimulator:
    """Runs one replica's campaigns against its own staging stack."""

    def __init__(
        self,
        exp: Experiment,
        plan: ReplicaPlan,
        seed: int,
        run_id: str,
        ruleset: RuleSet,
        generation: int = 0,
        backends: Mapping[str, GenerationBackend] | None = None,
        archive: Archive | None = None,
    ) -> None:
        self.exp = exp
        self.replica = plan.replica
        self.run_id = run_id
        self.generation = generation
        self.config_hash = exp.config_hash()
        self.seed = seed
        self.window_s = exp.simulation.window_s
        self.stack = StagingStack(stack_settings(exp), ruleset, seed, plan.replica, run_nonce=run_id)
        company = self.stack.company
        self.backends: dict[str, GenerationBackend] = dict(backends or {})
        self.archive = archive
        self._rng = random.Random(0)  # scratch generator, re-seeded from (campaign seed, attempt) before each use
        self._timings: dict[str, float] = {"attack_generation": 0.0, "benign_generation": 0.0}
        self.bandit = BanditState() if exp.attackers.grunt.shared_bandit else None
        self._agents = company.agent_descriptions()
        self._products = tuple(sorted(company.product_by_name))
        self._secret_names = tuple(company.vault)
        self.campaigns: list[_Campaign] = []
        self._heap: list[tuple[float, int]] = []
        self._prepared: dict[int, GenerationResult] = {}
        constants = {"run_id": run_id, "replica": plan.replica}
        self._calls = RowBuffer("calls", constants)
        for spec in plan.campaigns:
            # attackers are built at their first attempt and dropped after their last: memory follows the
            # campaigns in flight, not the run's population (construction is pure, so results are the same)
            campaign = _Campaign(spec, None, self._backend_key(spec) if spec.kind is EpisodeKind.ATTACK else None)
            if spec.kind is EpisodeKind.ATTACK:
                company.truth.attacker_identities.add(spec.identity)
            self.campaigns.append(campaign)
            if spec.times:
                self._heap.append((spec.times[0], spec.index))
        heapq.heapify(self._heap)
        self._window_end = self.window_s
        self._episodes = RowBuffer("episodes", {**constants, "generation": generation})
        self._cases: list[Case] = []
        self._warrants: list[Warrant] = []
        self._benign_identities = {c.spec.identity for c in self.campaigns if c.spec.kind is EpisodeKind.BENIGN}
        self._benign_campaigns = {c.spec.campaign_id for c in self.campaigns if c.spec.kind is EpisodeKind.BENIGN}
        self._attack_turn_gap = exp.attackers.grunt.conversations.turn_gap_s
        self._benign_turn_gap = exp.benign.turn_gap_s

    def _backend_key(self, spec: CampaignSpec) -> str | None:
        """Which generation backend writes this campaign's attacks (None: the offline mutator)."""
        if spec.strategy and spec.strategy not in MODEL_STRATEGIES:
            return None  # written offline, around the mutator's payload
        if spec.tier is Tier.SNIPER:
            return f"sniper:{int(spec.campaign_id[1:]) % len(self.exp.attackers.sniper.providers)}"
        grunt = self.exp.attackers.grunt
        writes = spec.strategy in MODEL_STRATEGIES or (not spec.strategy and ATTACKERS.get(grunt.generator).uses_model)
        return "grunt" if writes and grunt.llm is not None else None

    def _attacker_for(self, campaign: _Campaign) -> Attacker:
        if campaign.attacker is None:
            campaign.attacker = self._make_attacker(campaign.spec)
        return campaign.attacker

    def _make_attacker(self, spec: CampaignSpec) -> Attacker:
        company = self.stack.company
        assets = AttackerAssets(
            identity=spec.identity,
            account=company.attacker_account_list[spec.seed % len(company.attacker_account_list)],
            email=company.attacker_email_list[spec.seed % len(company.attacker_email_list)],
            products=self._products,
            secret_names=self._secret_names,
        )
        attackers = self.exp.attackers
        grunt = attackers.grunt
        sampling: dict[str, float] = {}  # model sampling settings, for the kinds that call a model
        max_turns = grunt.conversations.max_turns
        if spec.tier is Tier.SNIPER:
            kind = ATTACKERS.get(spec.strategy or SNIPER_KIND)
            sampling = {"max_tokens": attackers.sniper.max_tokens, "temperature": attackers.sniper.temperature}
            max_turns = attackers.sniper.max_turns
        elif spec.strategy in MODEL_STRATEGIES:
            kind = ATTACKERS.get(spec.strategy)
            if grunt.llm is not None:
                sampling = {"max_tokens": grunt.llm.max_tokens, "temperature": grunt.llm.temperature}
        elif spec.strategy:
            kind = ATTACKERS.get(CONVERSATION_KIND)
        else:
            kind = ATTACKERS.get(grunt.generator)
            if grunt.llm is not None:
                sampling = {"max_tokens": grunt.llm.max_tokens, "temperature": grunt.llm.temperature}
        start = None
        if self.archive is not None and kind.starts_from_archive:
            start = self.archive.recipe_for(spec.goal.value, random.Random(derive_seed(spec.seed, "archive")), grunt.max_depth)
        return kind.factory(
            AttackerSpec(
                spec.campaign_id, spec.goal, assets, spec.seed, spec.tier, max_depth=grunt.max_depth, agents=self._agents,
                bandit=self.bandit, start=start, strategy=spec.strategy, max_turns=max_turns if spec.strategy else 1,
                **sampling,  # type: ignore[arg-type]
            )
        )  # fmt: skip

    def __getstate__(self) -> dict[str, object]:
        return {**self.__dict__, "backends": {}}  # clients are per process: re-attach after a restore

    def attach_backends(self, backends: Mapping[str, GenerationBackend]) -> None:
        self.backends = dict(backends)

    @property
    def finished(self) -> bool:
        return not self._heap

    def _prepare(self, first: int) -> None:
        """Generate the next attack of every model-backed campaign that is waiting, one batch per backend.

        A campaign is waiting once its previous attempt has run (its feedback is
        in the prompt), so batching everything waiting keeps exact time order
        and full adaptivity while giving the backend the largest batch.
        """
        waiting = [first] + [i for _, i in self._heap if self.campaigns[i].backend is not None and i not in self._prepared and i != first]
        by_backend: dict[str, list[int]] = {}
        for index in waiting:
            by_backend.setdefault(self.campaigns[index].backend or "", []).append(index)
        for key, indices in sorted(by_backend.items()):
            backend = self.backends.get(key)
            requests = [self._generation_request(self.campaigns[i]) for i in indices]
            if backend is None:
                results = [GenerationResult(r.request_id, False, status="error", error=f"no generation backend {key!r} in this worker") for r in requests]
            else:
                results = backend.generate(requests)
            for index, result in zip(indices, results):
                self._prepared[index] = result

    def _generation_request(self, campaign: _Campaign) -> GenerationRequest:
        request = self._attacker_for(campaign).generation_request(campaign.attempt)
        if request is None:
            raise RuntimeError(f"campaign {campaign.spec.campaign_id} has a generation backend but its attacker writes its own attacks")
        return request

    def _close_windows_until(self, t: float) -> None:
        while self._window_end <= t:
            if not self.stack.log.pending_window():
                # nothing happened since the last window: skip straight to the window holding t
                self._window_end = (math.floor(t / self.window_s) + 1) * self.window_s
                return
            cases, warrants = self.stack.close_window(self._window_end - self.window_s, self._window_end)
            self._cases.extend(cases)
            self._warrants.extend(warrants)
            self._window_end += self.window_s

    def advance(self, until: float) -> SegmentOutput:
        """Simulate every attempt before ``until`` and close the windows up to it."""
        heap = self._heap
        campaigns = self.campaigns
        started = time.perf_counter()
        while heap and heap[0][0] < until:
            t, index = heapq.heappop(heap)
            self._close_windows_until(t)
            campaign = campaigns[index]
            if self._run_attempt(campaign, t):
                campaign.turn += 1  # the conversation goes on: its next turn, a little later
                gap = self._attack_turn_gap if campaign.spec.kind is EpisodeKind.ATTACK else self._benign_turn_gap
                heapq.heappush(heap, (round(t + gap, 3), index))
                continue
            if campaign.turn or campaign.spec.strategy:
                self.stack.end_conversation(self._conversation_id(campaign))
            campaign.turn = 0
            campaign.attempt += 1
            if campaign.attempt < len(campaign.spec.times):
                heapq.heappush(heap, (campaign.spec.times[campaign.attempt], index))
            else:
                campaign.attacker, campaign.token = None, ""  # finished: keep nothing per campaign
        self._close_windows_until(until)
        drain_started = time.perf_counter()
        output = SegmentOutput(
            self._drain_episodes(),
            self.stack.log.drain(self.run_id),
            self._drain_cases(),
            self._drain_warrants(),
            self._drain_calls(),
        )
        finished = time.perf_counter()
        stages = dict(self.stack.timings)
        stages.update({name: seconds for name, seconds in self._timings.items()})
        stages["arrow"] = finished - drain_started
        stages["simulate"] = finished - started
        self.stack.timings.clear()
        self._timings = {"attack_generation": 0.0, "benign_generation": 0.0}
        output.stage_seconds = stages
        return output

    def _token_for(self, campaign: _Campaign, now: float) -> str:
        if now >= campaign.token_expires - 1.0:
            campaign.token = self.stack.login(campaign.spec.identity, now)
            campaign.token_expires = now + self.stack.settings.token_ttl_s
        return campaign.token

    @staticmethod
    def _conversation_id(campaign: _Campaign) -> str:
        return f"{campaign.spec.campaign_id}.{campaign.attempt}"

    def _run_attempt(self, campaign: _Campaign, now: float) -> bool:
        """One turn of the campaign's current attempt; whether its conversation has another turn."""
        spec = campaign.spec
        turn = campaign.turn
        eid = episode_id(self.config_hash, self.seed, spec.campaign_id if not turn else f"{spec.campaign_id}.t{turn}", campaign.attempt)
        token = self._token_for(campaign, now)
        if spec.kind is EpisodeKind.ATTACK:
            attacker = self._attacker_for(campaign)
            generation_started = time.perf_counter()
            result = None
            if campaign.backend is not None:
                if spec.index not in self._prepared:
                    self._prepare(spec.index)
                result = self._prepared.pop(spec.index)
            attack: Attack = attacker.propose(campaign.attempt, result)
            if result is not None:
                self._calls.append(
                    episode_id=eid, campaign_id=spec.campaign_id, attempt=campaign.attempt, tier=spec.tier.value, provider=result.provider,
                    model=result.model, status=result.status, error=result.error, input_tokens=result.input_tokens,
                    output_tokens=result.output_tokens, cost_usd=result.cost_usd, latency_s=result.latency_s, retries=result.retries, sim_time=now,
                )
            self._timings["attack_generation"] += time.perf_counter() - generation_started
            cid = self._conversation_id(campaign) if spec.strategy else ""
            if attack.carrier is not None:
                request = Request(eid, spec.identity, attack.target_agent, attack.carrier, attack.payload, now, conversation_id=cid, turn=turn)
            else:
                request = Request(eid, spec.identity, attack.target_agent, attack.payload, None, now, conversation_id=cid, turn=turn)
            outcome = self.stack.handle(request, token)
            attacker.observe(Feedback(attack.attack_id, outcome.blocked_stage, outcome.rule_ids, outcome.response[:500], outcome.breached))
            self._record(
                eid, campaign, outcome, now, kind="attack", goal=attack.goal.value, channel=attack.channel.value, tier=attack.tier.value,
                generator=attack.generator, agent=attack.target_agent, techniques=list(attack.techniques), seed_id=attack.seed_id,
                parent_ids=list(attack.parent_ids), payload=attack.payload, task_completed=None, cost_usd=attack.cost_usd,
                conversation_id=cid or None, turn=turn if cid else None, strategy=attack.strategy or None,
            )
            return bool(cid) and isinstance(attacker, MultiTurnAttacker) and attacker.continues()
        generation_started = time.perf_counter()
        benign_settings = self.exp.benign
        if not turn:
            self._rng.seed(derive_seed(spec.seed, campaign.attempt))
            benign = benign_request(self.stack.company, spec.identity, self._rng, benign_settings.hard_negative_rate, benign_settings.real_rate)
            if spec.span_s:
                campaign.follow_ups = random.Random(derive_seed(spec.seed, campaign.attempt, "follow-ups")).randint(0, benign_settings.follow_ups)
        else:
            self._rng.seed(derive_seed(spec.seed, campaign.attempt, "turn", turn))
            benign = follow_up(self.stack.company, spec.identity, self._rng)
        self._timings["benign_generation"] += time.perf_counter() - generation_started
        cid = self._conversation_id(campaign) if spec.span_s and (turn or campaign.follow_ups) else ""
        request = Request(eid, spec.identity, benign.agent, benign.text, benign.document, now, open_ended=benign.real, conversation_id=cid, turn=turn)
        outcome = self.stack.handle(request, token)
        self._record(
            eid, campaign, outcome, now, kind="benign", goal=Goal.NONE.value, channel="indirect" if benign.document else "direct", tier=Tier.USER.value,
            generator="real-traffic" if benign.real else "traffic", agent=benign.agent, techniques=[], seed_id="", parent_ids=[],
            payload=benign.document or benign.text, task_completed=outcome.task_completed, cost_usd=0.0,
            conversation_id=cid or None, turn=turn if cid else None, strategy=None,
        )
        if turn < campaign.follow_ups and outcome.blocked_stage not in (Stage.COURT, Stage.IDENTITY):
            return True
        campaign.follow_ups = 0
        return False

    def _record(self, eid: str, campaign: _Campaign, outcome: Outcome, now: float, **episode: Any) -> None:
        """One row of the episodes table: what the campaign sent (``episode``) and what the stack made of it."""
        tags = episode_tags(episode["goal"], episode["channel"], families_of(episode["techniques"]))
        self._episodes.append(
            owasp=list(tags.owasp), atlas=list(tags.atlas),
            episode_id=eid, campaign_id=campaign.spec.campaign_id, attempt=campaign.attempt, identity=campaign.spec.identity,
            blocked_stage=outcome.blocked_stage.value if outcome.blocked_stage else None, rule_ids=list(outcome.rule_ids),
            input_action=outcome.input_action.value, input_score=outcome.input_score, output_action=outcome.output_action.value,
            breached=outcome.breached, damage_usd=outcome.damage_usd, secrets_leaked=outcome.secrets_leaked,
            records_exfiltrated=outcome.records_exfiltrated, sim_time=now, poisoned_by=outcome.poisoned_by, **episode,
        )

    # --- draining to Arrow ---------------------------------------------------
    def _drain_episodes(self) -> pa.Table:
        return self._episodes.drain()

    def _drain_calls(self) -> pa.Table:
        return self._calls.drain()

    def _drain_cases(self) -> pa.Table:
        cases, self._cases = self._cases, []
        if not cases:
            return CASES.empty_table()
        return pa.Table.from_pylist(
            [
                {
                    "run_id": self.run_id, "replica": self.replica, "case_id": f"r{self.replica}-{c.case_id}", "sentinel": c.sentinel,
                    "rule": c.rule, "subject": c.subject, "subject_kind": c.subject_kind.value, "severity": c.severity,
                    "confidence": c.confidence, "window_start": c.window_start, "window_end": c.window_end, "evidence": list(c.evidence),
                    "owasp": list(case_tags(c.rule).owasp), "atlas": list(case_tags(c.rule).atlas),
                }
                for c in cases
            ],
            schema=CASES,
        )

    def _is_benign_subject(self, warrant: Warrant) -> bool:
        """Ground truth: was the warrant's subject innocent?"""
        truth = self.stack.company.truth
        if warrant.subject_kind is SubjectKind.IDENTITY:
            return warrant.subject in self._benign_identities
        if warrant.subject_kind is SubjectKind.WALLET:
            return warrant.subject not in truth.attacker_accounts
        if warrant.subject_kind is SubjectKind.SESSION:
            return warrant.subject.rpartition(".")[0] in self._benign_campaigns
        return True  # quarantining a company agent always hurts legitimate users

    def _drain_warrants(self) -> pa.Table:
        warrants, self._warrants = self._warrants, []
        if not warrants:
            return WARRANTS.empty_table()
        return pa.Table.from_pylist(
            [
                {
                    "run_id": self.run_id, "replica": self.replica, "warrant_id": f"r{self.replica}-{w.warrant_id}", "action": w.action.value,
                    "subject": w.subject, "subject_kind": w.subject_kind.value, "case_ids": [f"r{self.replica}-{c}" for c in w.case_ids],
                    "reasoning": w.reasoning, "sim_time": w.sim_time, "subject_is_benign": self._is_benign_subject(w),
                }
                for w in warrants
            ],
            schema=WARRANTS,
        )
