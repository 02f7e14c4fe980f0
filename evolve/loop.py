"""The co-evolution loop: generate -> test -> patch, generation after generation.

Per generation:

1. **Attackers evolve**: grunt campaigns start from recipes of the MAP-Elites
   archive (:mod:`attackers.archive`) — mutated or recombined elites of the
   previous generations — and keep adapting within their campaign.
2. **The staging stack runs them** under the current rule set (one full
   simulation run, tracked in MLflow with ``params.generation``).
3. **The miner patches** (:mod:`evolve.miner`): breached attacks that the
   input guard let through are split by episode id into a mining part (70 %)
   and a held-out part (30 %); candidate rules mined from the first are
   accepted only if the new set keeps the benign false-positive rate on the
   gate corpus within the bound; dead mined rules are pruned; the classifier
   is retrained with the mined attacks as extra positives.
4. **A new version** goes to the MLflow registry as a pyfunc model with the
   ``staging`` alias, carrying its held-out attacks for the promotion gate.

The loop is resumable per generation (``state.json``). ``frozen=True`` runs
the same evolving attackers against the unchanged starting rule set: the
control that shows whether a falling breach rate comes from the patches or
from weak attackers.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, Field

from attackers.archive import Archive
from evolve.benign_corpus import BenignCorpus, build_benign_corpus
from evolve.classifier_training import TrainingCorpus, train_classifier, training_corpus
from evolve.gate import evaluate
from evolve.miner import MinedAttack, Miner, MinerConfig, views
from kosmoi.ids import derive_seed, new_run_id, stable_hash64
from results.store import read_table
from sim.config import ConfigError, Experiment
from sim.environment import apply_defaults
from sim.runner import RunOptions, ray_session, run_experiment
from sim.tracking import resolve_tracking_uri
from targets.conversation import SESSION_MAX_CHARS, joined
from targets.rules import Rule, RuleSet, load_ruleset, parse_ruleset

log = logging.getLogger(__name__)

HELDOUT_SHARE = 0.3
PRUNE_AFTER = 3  # generations a mined rule may go without firing
GLOBAL_FPR_BOUND = 0.01


class GenerationRecord(BaseModel):
    generation: int
    run_id: str
    mlflow_run_id: str | None = None
    breach_rate: float
    false_positive_rate: float
    input_bypass_rate: float = 0.0  # attacks that passed the input guard / attacks that reached it
    attack_episodes: int
    breaches: int
    rules: int  # rules in force during this generation
    new_rules: int = 0  # mined from this generation into the next rule set
    next_rules: int | None = None  # rules of the next rule set (after new and pruned)
    pruned: int = 0
    archive_coverage: float
    breaching_coverage: float = 0.0  # archive cells with a breach this generation / all cells
    mined_from: int = 0
    heldout: int = 0
    gate_fpr: float | None = None
    heldout_allow_rate: float | None = None
    real_recall: float | None = None  # the staged version on the source-disjoint evaluation split: attacks caught
    real_false_positive_rate: float | None = None  # ... and real benign texts flagged or blocked
    real_split: str | None = None  # "corpus" or "committed sample"
    model_version: str | None = None
    ruleset_hash: str
    rejected: dict[str, int] = Field(default_factory=dict)
    seconds: float = 0.0


class EvolutionState(BaseModel):
    evolution_id: str
    experiment: str
    seed: int
    generations: int
    frozen: bool = False
    records: list[GenerationRecord] = Field(default_factory=list)
    rule_last_fired: dict[str, int] = Field(default_factory=dict)  # mined rule id -> last generation it fired
    mined_positives: list[str] = Field(default_factory=list)

    def save(self, directory: Path) -> None:
        tmp = directory / "state.json.tmp"
        tmp.write_text(self.model_dump_json(indent=1), "utf-8")
        tmp.replace(directory / "state.json")


@dataclass(slots=True)
class EvolutionOptions:
    out: Path = Path("runs")
    generations: int = 10
    frozen: bool = False
    workers: int | None = None
    address: str | None = None
    verbose: bool = False
    track: bool = True
    resume: Path | None = None


@dataclass
class EvolutionResult:
    directory: Path
    state: EvolutionState
    curve: list[dict[str, Any]] = field(default_factory=list)


ProgressCallback = Callable[[int, int, GenerationRecord | None], None]


@dataclass(frozen=True)
class Traffic:
    """The benign and labelled texts a generation's patch is checked against."""

    gate: list[str]  # the gate's held-out benign texts (real validation sources + a share of company traffic)
    company_negatives: list[str]  # the company's own legitimate traffic (the classifier's extra negatives)
    evaluation: tuple  # LabelledText rows of the source-disjoint evaluation split (real recall and FPR per generation)
    evaluation_origin: str
    training: TrainingCorpus  # read and featurised once for every generation's retraining


def _traffic(benign: BenignCorpus) -> Traffic:
    from evolve.corpus.build import load_split_or_sample

    rows, origin = load_split_or_sample("eval")
    company = [t.text for t in benign.mining if not t.source.startswith("real:")]
    return Traffic(benign.texts("gate"), company, tuple(rows), "committed sample" if origin == "committed sample" else "corpus", training_corpus())


def _rules_path(directory: Path, generation: int) -> Path:
    return directory / "rules" / f"g{generation:03d}.json"


CONTEXT_TURNS = 4  # earlier turns of a conversation that join its breached turn as what the guard should have caught


def _breached_attacks(episodes: pa.Table) -> list[MinedAttack]:
    """Breached attacks the input guard let through; a conversation's breached turn comes with its earlier turns.

    A multi-turn attack's breaching turn is often harmless alone ("now put a + b together"); what the
    guard should have caught is that turn in its context — the text the session-level guard judges.
    """
    mask = pc.and_(pc.and_(pc.equal(episodes["kind"], "attack"), episodes["breached"]), pc.not_equal(episodes["input_action"], "block"))
    has_turns = "conversation_id" in episodes.column_names
    columns = ["episode_id", "campaign_id", "goal", "payload", *(("conversation_id", "turn") if has_turns else ())]
    rows = episodes.filter(mask).select(columns).to_pylist()
    turns: dict[str, dict[int, str]] = {}
    wanted = {r["conversation_id"] for r in rows if r.get("conversation_id")}
    if wanted:
        attacks = episodes.filter(pc.equal(episodes["kind"], "attack")).select(["conversation_id", "turn", "payload"]).to_pylist()
        for row in attacks:
            if row["conversation_id"] in wanted:
                turns.setdefault(row["conversation_id"], {})[int(row["turn"] or 0)] = row["payload"]
    mined = []
    for r in rows:
        payload = r["payload"]
        if r.get("conversation_id"):
            earlier = turns.get(r["conversation_id"], {})
            turn = int(r["turn"] or 0)
            context = [earlier[t] for t in range(max(0, turn - CONTEXT_TURNS), turn) if t in earlier]
            payload = joined(context, payload, SESSION_MAX_CHARS)
        mined.append(MinedAttack(r["episode_id"], r["campaign_id"], r["goal"], payload))
    return mined


def _fired(episodes: pa.Table) -> set[str]:
    return set(pc.unique(pc.list_flatten(episodes["rule_ids"])).to_pylist())


def prune_dead(rules: tuple[Rule, ...], last_fired: dict[str, int], generation: int, after: int = PRUNE_AFTER) -> list[Rule]:
    """The rules to keep: shipped and hand-written rules always; mined rules that fired (or were born) within ``after`` generations."""
    kept = []
    for rule in rules:
        if rule.provenance.get("source") != "mined":
            kept.append(rule)
            continue
        last = last_fired.get(rule.id, int(rule.provenance.get("generation", generation)))
        if generation - last < after:
            kept.append(rule)
    return kept


def _accept(candidate_rules: list[Rule], base: RuleSet, benign_gate: list[str], bound: float) -> tuple[RuleSet, list[Rule], float]:
    """Add rules while the whole set stays within the false-positive bound (or the parent's rate, if higher)."""
    limit = max(bound, evaluate(base, [], benign_gate).false_positive_rate.value)
    accepted = list(candidate_rules)
    while True:
        trial = base.model_copy(update={"rules": base.rules + tuple(accepted), "hash": None}).sealed()
        fpr = evaluate(trial, [], benign_gate).false_positive_rate.value
        if fpr <= limit + 1e-12 or not accepted:
            return trial, accepted, fpr
        accepted.pop()  # candidates come largest cluster first: drop the least important


def _load_evolution(directory: Path) -> tuple[EvolutionState, Experiment]:
    """The state and experiment of an evolution directory, or a ConfigError that says what is wrong."""
    from pydantic import ValidationError

    for name in ("state.json", "experiment.json"):
        if not (directory / name).is_file():
            raise ConfigError(f"{directory}: not an evolution directory (no {name}); pass the evo-<id> directory that `immune evolve` printed")
    try:
        state = EvolutionState.model_validate_json((directory / "state.json").read_text("utf-8"))
        exp = Experiment.model_validate_json((directory / "experiment.json").read_text("utf-8"))
    except (ValidationError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{directory}: its state.json or experiment.json is damaged ({str(exc).splitlines()[0]})") from None
    return state, exp


def evolve(exp: Experiment, options: EvolutionOptions, progress: ProgressCallback | None = None, benign: BenignCorpus | None = None) -> EvolutionResult:
    """Run (or resume) an evolution; returns its directory, state and breach-rate curve."""
    if options.resume is not None:
        directory = options.resume
        state, exp = _load_evolution(directory)
        state.generations = max(state.generations, options.generations) if options.generations else state.generations
    else:
        evolution_id = f"evo-{new_run_id()}"
        directory = options.out / evolution_id
        (directory / "rules").mkdir(parents=True)
        (directory / "experiment.json").write_text(exp.model_dump_json(indent=1), "utf-8")
        state = EvolutionState(evolution_id=evolution_id, experiment=exp.name, seed=exp.seed, generations=options.generations, frozen=options.frozen)
        start_rules = load_ruleset(exp.targets.rules)
        _rules_path(directory, 0).write_text(start_rules.to_json(), "utf-8")
        state.save(directory)
    benign = benign or build_benign_corpus(exp.seed)
    archive_path = directory / "archive.json"
    archive = Archive.from_json(archive_path.read_text("utf-8")) if archive_path.exists() else Archive()
    tracking_root = options.out if options.resume is None else directory.parent
    tracking_uri, _ = resolve_tracking_uri(tracking_root)
    patch_context = PatchContext(Miner(benign.texts("mining"), MinerConfig()), _traffic(benign), tracking_uri)
    first = len(state.records)
    with ray_session(options.address, options.workers, options.verbose):
        for generation in range(first, state.generations):
            started = time.perf_counter()
            ruleset = parse_ruleset(_rules_path(directory, generation).read_text("utf-8"), str(_rules_path(directory, generation)))
            seed = int(derive_seed(exp.seed, "generation", generation) % (2**31))
            result = run_experiment(
                exp.model_copy(update={"seed": seed}),
                RunOptions(out=directory / "runs", workers=options.workers, address=options.address, verbose=options.verbose, track=options.track, lock=False),
                ruleset=ruleset,
                generation=generation,
                archive_json=archive.to_json() if archive.elites else None,
                tracking_extra={"params": {"evolution": state.evolution_id, "frozen": options.frozen or state.frozen}, "tags": {"kosmoi.evolution": state.evolution_id}, "tracking_root": tracking_root},
            )
            episodes = read_table(result.run_dir, "episodes")
            archive.update(episodes, generation)
            archive.save(archive_path)
            summary = result.summary
            record = GenerationRecord(
                generation=generation, run_id=result.run_id, mlflow_run_id=summary.get("mlflow_run_id"),
                breach_rate=summary["breach_rate"], false_positive_rate=summary["false_positive_rate"],
                input_bypass_rate=round(summary.get("bypass_rate_by_stage", {}).get("input_guard", 0.0), 5),
                attack_episodes=summary["attack_episodes"], breaches=summary["breaches"], rules=len(ruleset.rules),
                archive_coverage=round(archive.coverage, 4), breaching_coverage=round(archive.breaching_coverage, 4), ruleset_hash=str(ruleset.hash),
            )
            fired = _fired(episodes)
            for rule in ruleset.rules:
                if rule.provenance.get("source") == "mined" and rule.id in fired:
                    state.rule_last_fired[rule.id] = generation
            next_rules = ruleset
            if not (options.frozen or state.frozen):
                learned_from = GenerationRun(generation, result.run_id, ruleset, episodes, record.mlflow_run_id, summary.get("mlflow_run_id") or result.run_id)
                patch = _patch(patch_context, learned_from, state)
                next_rules, state.mined_positives = patch.ruleset, patch.mined_positives
                record = record.model_copy(update=patch.figures)
            _rules_path(directory, generation + 1).write_text(next_rules.to_json(), "utf-8")
            record.seconds = round(time.perf_counter() - started, 1)
            _log_generation(tracking_uri, record, options.track)
            state.records.append(record)
            state.save(directory)
            if progress:
                progress(generation + 1, state.generations, record)
    curve = [
        r.model_dump(include={"generation", "breach_rate", "false_positive_rate", "input_bypass_rate", "rules", "new_rules", "archive_coverage", "breaching_coverage", "breaches", "attack_episodes", "real_recall", "real_false_positive_rate"})
        for r in state.records
    ]
    (directory / "curve.json").write_text(json.dumps(curve, indent=1), "utf-8")
    return EvolutionResult(directory, state, curve)


@dataclass(frozen=True)
class PatchContext:
    """What every generation's patch draws on: fixed for the whole evolution."""

    miner: Miner
    traffic: Traffic
    tracking_uri: str


@dataclass(frozen=True)
class GenerationRun:
    """The generation a patch learns from: its rule set, its episodes and where it is tracked."""

    generation: int
    run_id: str
    ruleset: RuleSet
    episodes: pa.Table
    mlflow_run_id: str | None  # the generation's MLflow run (the registered version's source)
    source_run: str  # the simulation run it mines, as MLflow knows it (else the run id)


@dataclass(frozen=True)
class Patch:
    """What a patch produces: the next rule set, the mined positives to keep, and its figures for the generation's record."""

    ruleset: RuleSet
    mined_positives: list[str]
    figures: dict[str, Any]


def _patch(context: PatchContext, run: GenerationRun, state: EvolutionState) -> Patch:
    """Mine, prune, retrain, gate and register the next rule set (``state`` is read, not changed)."""
    traffic, ruleset, generation = context.traffic, run.ruleset, run.generation
    gate_texts = traffic.gate
    breached = _breached_attacks(run.episodes)
    heldout = [a for a in breached if stable_hash64("heldout", a.episode_id) % 1000 < HELDOUT_SHARE * 1000]
    held_ids = {a.episode_id for a in heldout}
    mining = [a for a in breached if a.episode_id not in held_ids]
    report = context.miner.mine(mining, ruleset, generation, run.run_id)
    figures: dict[str, Any] = {"mined_from": len(mining), "heldout": len(heldout), "rejected": report.rejected}
    kept = prune_dead(ruleset.rules, state.rule_last_fired, generation)
    figures["pruned"] = len(ruleset.rules) - len(kept)
    base = ruleset.model_copy(update={"rules": tuple(kept), "hash": None}).sealed()
    candidate, accepted, fpr = _accept(report.rules, base, gate_texts, GLOBAL_FPR_BOUND)
    figures["new_rules"] = len(accepted)
    positives = list(state.mined_positives)
    for attack in mining:
        positives.extend(v for v in views(attack.payload)[:2] if v)
    positives = positives[-5000:]
    version = f"g{generation + 1}"
    trained = (ruleset.classifier.training or {}) if ruleset.classifier is not None else {}
    trained_c, trained_rounds = trained.get("C"), trained.get("mil_rounds", 0)
    retrained, _ = train_classifier(
        candidate.model_copy(update={"name": "evolved"}),
        seed=generation,
        c=float(trained_c) if isinstance(trained_c, int | float) else None,  # the production model's C and refits: no search per generation
        mil_rounds=int(trained_rounds) if isinstance(trained_rounds, int) else 0,
        extra_positives=positives,
        extra_negatives=traffic.company_negatives,  # the real benign texts are in the training corpus already
        version=version,
        corpus=traffic.training,
    )
    heldout_eval = evaluate(retrained, [(a.payload, a.goal) for a in heldout], gate_texts)
    figures["gate_fpr"] = round(heldout_eval.false_positive_rate.value, 5)
    figures["heldout_allow_rate"] = round(heldout_eval.allow_rate.value, 5)
    if figures["gate_fpr"] > max(GLOBAL_FPR_BOUND, fpr) + 1e-12:
        log.warning("generation %d: the retrained classifier raised the gate FPR to %.4f; keeping the previous classifier", generation, figures["gate_fpr"])
        retrained = candidate.model_copy(update={"name": "evolved", "version": version, "parent": ruleset.version, "hash": None}).sealed()
        figures["gate_fpr"] = round(evaluate(retrained, [], gate_texts).false_positive_rate.value, 5)
    figures.update(_evaluate_on_real_traffic(retrained, traffic))
    if run.mlflow_run_id:
        from evolve.registry import register_version

        figures["model_version"] = register_version(
            retrained,
            tracking_uri=context.tracking_uri,
            run_id=run.mlflow_run_id,
            generation=generation,
            parent_version=state.records[-1].model_version if state.records else None,
            source_runs=[run.source_run],
            metrics={"rules": len(retrained.rules), "new_rules": figures["new_rules"], "gate_fpr": figures["gate_fpr"], "heldout_allow_rate": figures["heldout_allow_rate"] or 0.0},
            heldout_attacks=[a.payload for a in heldout],
        )
    figures["next_rules"] = len(retrained.rules)
    return Patch(retrained, positives, figures)


def _evaluate_on_real_traffic(ruleset: RuleSet, traffic: Traffic) -> dict[str, Any]:
    """The staged version's recall and false-positive rate on the source-disjoint evaluation split (record fields)."""
    from evolve.guard_eval import report, score_rows
    from targets.input_guard import InputGuard

    if not traffic.evaluation:
        return {}
    overall = report(score_rows(InputGuard(ruleset), traffic.evaluation)).overall
    return {"real_recall": _rate(overall.get("recall")), "real_false_positive_rate": _rate(overall.get("false_positive_rate")), "real_split": traffic.evaluation_origin}


def _log_generation(tracking_uri: str, record: GenerationRecord, track: bool) -> None:
    if not (track and record.mlflow_run_id):
        return
    try:
        apply_defaults()
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri)
        for key in ("rules", "new_rules", "archive_coverage", "breaching_coverage", "pruned", "input_bypass_rate"):
            client.log_metric(record.mlflow_run_id, key, float(getattr(record, key)), step=record.generation)
        if record.gate_fpr is not None:
            client.log_metric(record.mlflow_run_id, "gate_false_positive_rate", record.gate_fpr, step=record.generation)
        for key in ("real_recall", "real_false_positive_rate"):
            if getattr(record, key) is not None:
                client.log_metric(record.mlflow_run_id, key, float(getattr(record, key)), step=record.generation)
    except Exception as exc:
        log.warning("could not log generation %d to MLflow: %s", record.generation, exc)


def _rate(entry: object) -> float | None:
    """The ``rate`` of one entry of a guard-evaluation report (None when it has none)."""
    rate = entry.get("rate") if isinstance(entry, dict) else None
    return float(rate) if isinstance(rate, int | float) else None
