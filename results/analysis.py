"""Breach-rate analysis over many runs: grouped metrics with confidence intervals, the stage funnel,
time to contain, and the attacks that survived.

Every point estimate goes through ``kosmoi.metrics`` (a :class:`~kosmoi.metrics.Tally` per group,
exactly as the run summary and MLflow compute it); intervals are cluster-bootstrap intervals from
``kosmoi.stats`` (clusters: campaigns for attacks, identities for benign traffic). Everything streams
record batches from :class:`results.store.Runs`, holding one small partial aggregate per group and
cluster, so it works on runs far larger than memory.

Grouping keys: any episode column that identifies a slice (``run_id``, ``generation``, ``replica``,
``goal``, ``tier``, ``channel``, ``generator``, ``agent``, ``attempt``) and the virtual ``family``:
the technique families an attack used (an attack that stacked leetspeak and base64 counts in both
families; one with no operator is ``plain``), and the virtual ``owasp`` and ``atlas``: the OWASP
LLM 2025 and MITRE ATLAS ids an attack carries (``kosmoi.taxonomy``; an attack counts once in each of
its ids; runs written before the tags existed get them from their goal, channel and techniques).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from attackers.mutations import OPERATORS, families_of
from kosmoi.metrics import Tally, benign_guard_hits, bypass_rates, summary_metrics, tasks_completed, time_to_contain
from kosmoi.stats import REPS, RateCI, cluster_bootstrap_pairs, wilson
from kosmoi.taxonomy import episode_tags
from kosmoi.types import STAGE_ORDER, EpisodeKind
from results.store import Runs

FAMILY = "family"
TAG_KEYS = ("owasp", "atlas")
VIRTUAL_KEYS = (FAMILY, *TAG_KEYS)
TAG_SOURCES = ("goal", "channel", "techniques")  # the columns an old run's tags are derived from
EPISODE_KEYS = ("run_id", "generation", "replica", "goal", "tier", "channel", "generator", "agent", "attempt", "turn", "strategy")
RUN_LEVEL = frozenset({"run_id", "generation", "replica"})  # slices that split benign traffic and warrants too
_FAMILY_OF = {name: op.family for name, op in OPERATORS.items()}
_TALLY_COLUMNS = [
    "kind", "breached", "damage_usd", "secrets_leaked", "records_exfiltrated", "blocked_stage", "cost_usd",
    "input_action", "output_action", "task_completed", "identity",
]
_COMPACT_ROWS = 300_000


def _check_keys(by: Sequence[str]) -> list[str]:
    keys = list(by)
    unknown = [k for k in keys if k not in EPISODE_KEYS and k not in VIRTUAL_KEYS]
    if unknown:
        raise ValueError(f"cannot group by {', '.join(unknown)}; choose from {', '.join((*EPISODE_KEYS, *VIRTUAL_KEYS))}")
    return keys


def explode_families(table: pa.Table) -> pa.Table:
    """One row per (episode, technique family it used); ``plain`` for episodes without operators."""
    techniques = table["techniques"]
    flat = pc.list_flatten(techniques).to_numpy(zero_copy_only=False)
    parents = pc.list_parent_indices(techniques).to_numpy(zero_copy_only=False)
    families = pd.Series(flat, dtype=object).map(_FAMILY_OF).fillna("other").to_numpy()
    pairs = pd.DataFrame({"row": parents, FAMILY: families}).drop_duplicates()
    lengths = pc.list_value_length(techniques).to_numpy(zero_copy_only=False)
    plain = np.flatnonzero(lengths == 0)
    rows = np.concatenate([pairs["row"].to_numpy(dtype=np.int64), plain])
    labels = np.concatenate([pairs[FAMILY].to_numpy(dtype=object), np.array(["plain"] * len(plain), dtype=object)])
    order = np.argsort(rows, kind="stable")
    return table.take(pa.array(rows[order])).append_column(FAMILY, pa.array(labels[order], pa.string()))


def filled_tags(table: pa.Table, key: str) -> pa.ChunkedArray | pa.Array:
    """The ``owasp`` or ``atlas`` list column, with the taxonomy's ids where a run written before tags has nulls."""
    tags = table[key]
    if tags.null_count == 0:
        return tags
    rows = zip(tags.to_pylist(), *(table[c].to_pylist() for c in TAG_SOURCES))
    filled = [
        ids if ids is not None else list(getattr(episode_tags(goal or "", channel or "", families_of(techniques or ())), key))
        for ids, goal, channel, techniques in rows
    ]
    return pa.array(filled, pa.list_(pa.string()))


def explode_tags(table: pa.Table, key: str) -> pa.Table:
    """One row per (episode, OWASP or ATLAS id it carries); episodes without ids (benign traffic) drop out."""
    tags = filled_tags(table, key)
    flat = pc.list_flatten(tags)
    parents = pc.list_parent_indices(tags)
    return table.drop_columns([key]).take(parents).append_column(key, flat)


def _groups(table: pa.Table, keys: list[str]) -> list[tuple[tuple[Any, ...], pa.Table]]:
    if not keys:
        return [((), table)]
    combos = table.select(keys).group_by(keys).aggregate([]).to_pylist()
    out = []
    for combo in combos:
        mask = None
        for key in keys:
            term = pc.equal(table[key], combo[key])
            mask = term if mask is None else pc.and_(mask, term)
        out.append((tuple(combo[k] for k in keys), table.filter(mask)))
    return out


def _compact(partials: list[pa.Table], keys: list[str], sums: list[str]) -> list[pa.Table]:
    merged = pa.concat_tables(partials)
    regrouped = merged.group_by(keys).aggregate([(column, "sum") for column in sums])
    return [regrouped.rename_columns([c.removesuffix("_sum") for c in regrouped.column_names])]


def _columns(keys: Iterable[str]) -> set[str]:
    """The stored columns behind grouping keys (a virtual key reads what it is derived from)."""
    out: set[str] = set()
    for key in keys:
        out |= {"techniques"} if key == FAMILY else {key, *TAG_SOURCES} if key in TAG_KEYS else {key}
    return out


def _stream(runs: Runs, columns: Iterable[str], filter: ds.Expression | None, keys: Sequence[str]) -> Iterable[pa.Table]:
    virtual = [k for k in keys if k in VIRTUAL_KEYS]
    wanted = sorted(_columns(columns) | _columns(virtual))
    for batch in runs.batches("episodes", columns=wanted, filter=filter):
        table = pa.Table.from_batches([batch])
        for key in virtual:
            table = explode_families(table) if key == FAMILY else explode_tags(table, key)
        yield table


def _interval(signatures: pd.DataFrame, hits: str, reps: int, seed: int) -> RateCI:
    if signatures.empty:
        return cluster_bootstrap_pairs(np.zeros(0), np.zeros(0), np.zeros(0))
    grouped = signatures.groupby([hits, "n"], as_index=False)["clusters"].sum()
    return cluster_bootstrap_pairs(grouped[hits].to_numpy(), grouped["n"].to_numpy(), grouped["clusters"].to_numpy(), reps=reps, seed=seed)


def rates(runs: Runs, by: Sequence[str] = (), *, filter: ds.Expression | None = None, reps: int = REPS, seed: int = 0) -> pd.DataFrame:
    """Headline metrics per group with 95 % cluster-bootstrap intervals.

    Columns: the ``by`` keys; ``attacks``, ``breaches``, ``breach_rate`` (+ ``_low``/``_high``),
    ``campaigns``; damage and cost (``damage_usd``, ``secrets_leaked``, ``records_exfiltrated``,
    ``cost_usd``, ``cost_per_breach_usd``); and, when the groups split benign traffic too (run,
    generation, replica, or no grouping), ``benign``, ``false_positive_rate`` and ``utility``
    (each with its interval) and ``false_warrant_rate`` — every breach rate paired with what the
    defenses cost the legitimate users of the same slice.

    Memory is bounded by the largest single run (its campaigns and benign identities, a few dozen
    bytes each), not by the number of runs, episodes or the size of payloads.
    """
    keys = _check_keys(by)
    tallies: dict[tuple[Any, ...], Tally] = {}
    columns = {*(k for k in keys if k not in VIRTUAL_KEYS), *_TALLY_COLUMNS, "run_id", "campaign_id"}
    group_keys = [*keys, "kind", "cluster"]
    sums = ["hits", "done", "n"]
    counted: dict[str, list[pa.Table]] = {"hits": [], "done": []}
    for info in runs.infos:  # clusters never span runs: a run's cluster state is dropped once the run is read
        partials: list[pa.Table] = []
        for table in _stream(Runs([info]), columns, filter, keys):
            for key, part in _groups(table, keys):
                tallies.setdefault(key, Tally()).add_episodes(part)
            attack = pc.equal(table["kind"], EpisodeKind.ATTACK.value)
            clusters = pa.table(
                {
                    **{k: table[k] for k in keys},
                    "kind": table["kind"],
                    "cluster": pc.if_else(attack, table["campaign_id"], table["identity"]),
                    "hits": pc.if_else(attack, table["breached"], benign_guard_hits(table)).cast(pa.int64()),
                    "done": tasks_completed(table).cast(pa.int64()),
                    "n": pa.array(np.ones(table.num_rows, dtype=np.int64)),
                }
            )
            partials.append(_compact([clusters], group_keys, sums)[0])
            if sum(p.num_rows for p in partials) > _COMPACT_ROWS:
                partials = _compact(partials, group_keys, sums)
        if not partials:
            continue
        per_cluster = _compact(partials, group_keys, sums)[0]
        for name in ("hits", "done"):  # a cluster only matters through its (hits, size) signature
            counted[name].append(per_cluster.group_by([*keys, "kind", name, "n"]).aggregate([("cluster", "count")]))
    if set(keys) <= RUN_LEVEL:
        _add_warrants(runs, keys, tallies)
    signatures = {
        name: pa.concat_tables(tables).group_by([*keys, "kind", name, "n"]).aggregate([("cluster_count", "sum")]).rename_columns([*keys, "kind", name, "n", "clusters"]).to_pandas()
        if tables else pd.DataFrame()
        for name, tables in counted.items()
    }
    rows = []
    for key, tally in sorted(tallies.items(), key=lambda item: tuple((v is None, v) for v in item[0])):
        mine = {}
        for name, frame in signatures.items():
            for k, value in zip(keys, key):
                frame = frame[frame[k] == value]
            mine[name] = frame
        attacks_hits = mine["hits"][mine["hits"]["kind"] == EpisodeKind.ATTACK.value] if len(mine["hits"]) else mine["hits"]
        metrics = summary_metrics(tally)
        row: dict[str, Any] = dict(zip(keys, key))
        breach = _interval(attacks_hits, "hits", reps, seed)
        row.update(
            attacks=tally.attack_episodes, breaches=tally.breached, breach_rate=metrics["breach_rate"],
            breach_rate_low=breach.low, breach_rate_high=breach.high, campaigns=breach.clusters,
            damage_usd=tally.damage_usd, secrets_leaked=tally.secrets_leaked, records_exfiltrated=tally.records_exfiltrated,
            cost_usd=tally.cost_usd, cost_per_breach_usd=metrics["cost_per_breach_usd"],
        )
        if set(keys) <= RUN_LEVEL:
            benign_hits = mine["hits"][mine["hits"]["kind"] == EpisodeKind.BENIGN.value] if len(mine["hits"]) else mine["hits"]
            benign_done = mine["done"][mine["done"]["kind"] == EpisodeKind.BENIGN.value] if len(mine["done"]) else mine["done"]
            fpr, util = _interval(benign_hits, "hits", reps, seed), _interval(benign_done, "done", reps, seed)
            row.update(
                benign=tally.benign_episodes, false_positive_rate=metrics["false_positive_rate"], false_positive_rate_low=fpr.low,
                false_positive_rate_high=fpr.high, utility=metrics["utility"], utility_low=util.low, utility_high=util.high,
                false_warrant_rate=metrics["false_warrant_rate"], warrants=tally.warrants,
            )
        rows.append(row)
    return pd.DataFrame(rows)


def _add_warrants(runs: Runs, keys: list[str], tallies: dict[tuple[Any, ...], Tally]) -> None:
    generation_of = {info.run_id: info.generation for info in runs.infos}
    for batch in runs.batches("warrants", columns=["run_id", "replica", "subject", "subject_kind", "subject_is_benign"]):
        table = pa.Table.from_batches([batch])
        table = table.append_column("generation", pa.array([generation_of.get(r, 0) for r in table["run_id"].to_pylist()], pa.int32()))
        for key, part in _groups(table, keys):
            if key in tallies:
                tallies[key].add_warrants(part)


def funnel(runs: Runs, by: Sequence[str] = (), *, filter: ds.Expression | None = None) -> pd.DataFrame:
    """The blocked-by-stage funnel of attacks: per stage, how many reached it, were stopped there, passed."""
    keys = _check_keys(by)
    attack_only = ds.field("kind") == EpisodeKind.ATTACK.value
    tallies: dict[tuple[Any, ...], Tally] = {}
    columns = {*(k for k in keys if k not in VIRTUAL_KEYS), *_TALLY_COLUMNS}
    for table in _stream(runs, columns, attack_only if filter is None else filter & attack_only, keys):
        for key, part in _groups(table, keys):
            tallies.setdefault(key, Tally()).add_episodes(part)
    rows = []
    for key, tally in sorted(tallies.items()):
        bypass = bypass_rates(tally)
        reached = tally.attack_episodes
        for stage in STAGE_ORDER:
            blocked = tally.attack_blocked_by_stage.get(stage.value, 0)
            rows.append({**dict(zip(keys, key)), "stage": stage.value, "reached": reached, "blocked": blocked, "passed": reached - blocked, "bypass_rate": bypass[stage.value]})
            reached -= blocked
        rows.append({**dict(zip(keys, key)), "stage": "breached", "reached": reached, "blocked": 0, "passed": tally.breached, "bypass_rate": tally.breached / reached if reached else 0.0})
    return pd.DataFrame(rows)


def containment(runs: Runs, by: Sequence[str] = (), *, filter: ds.Expression | None = None) -> pd.DataFrame:
    """Time to contain per group: breached campaigns, how many got a warrant after their first breach, and how fast."""
    keys = _check_keys(by)
    breached = (ds.field("kind") == EpisodeKind.ATTACK.value) & (ds.field("breached") == True)  # noqa: E712 - a pyarrow expression
    partials: list[pa.Table] = []
    group_keys = list(dict.fromkeys([*keys, "run_id", "campaign_id", "identity"]))
    for table in _stream(runs, {*(k for k in keys if k not in VIRTUAL_KEYS), "run_id", "campaign_id", "identity", "sim_time"}, breached if filter is None else filter & breached, keys):
        partials.append(table.group_by(group_keys).aggregate([("sim_time", "min")]))
    warrant_times: dict[tuple[str, str], list[float]] = {}
    identity_warrants = ds.field("subject_kind") == "identity"
    for batch in runs.batches("warrants", columns=["run_id", "subject", "sim_time"], filter=identity_warrants):
        for run_id, subject, at in zip(batch["run_id"].to_pylist(), batch["subject"].to_pylist(), batch["sim_time"].to_pylist()):
            warrant_times.setdefault((run_id, subject), []).append(at)
    sorted_times = {k: np.sort(np.asarray(v, dtype=np.float64)) for k, v in warrant_times.items()}
    if not partials:
        return pd.DataFrame(columns=[*keys, "breached_campaigns", "contained", "contained_share", "contained_low", "contained_high", "median_s", "p90_s"])
    first = pa.concat_tables(partials).group_by(group_keys).aggregate([("sim_time_min", "min")]).to_pandas()
    empty = np.empty(0)
    first["time_to_contain_s"] = [
        time_to_contain(t, sorted_times.get((r, i), empty)) for r, i, t in zip(first["run_id"], first["identity"], first["sim_time_min_min"])
    ]
    rows = []
    for key, group in first.groupby(keys, sort=True, dropna=False) if keys else [((), first)]:
        times = group["time_to_contain_s"].dropna().to_numpy(dtype=np.float64)
        n = len(group)
        low, high = wilson(len(times), n)
        rows.append(
            {
                **dict(zip(keys, key if isinstance(key, tuple) else (key,))),
                "breached_campaigns": n, "contained": len(times), "contained_share": len(times) / n if n else 0.0,
                "contained_low": low, "contained_high": high,
                "median_s": float(np.median(times)) if len(times) else None, "p90_s": float(np.percentile(times, 90)) if len(times) else None,
            }
        )
    return pd.DataFrame(rows)


def conversations(runs: Runs, top: int = 5) -> pd.DataFrame:
    """Transcripts of the ``top`` breached attack conversations that did the most damage: every turn, in order.

    Columns: ``run_id``, ``conversation_id``, ``strategy``, ``turn``, ``payload``, ``blocked_stage``,
    ``input_action``, ``input_score``, ``rule_ids``, ``breached``, ``damage_usd``. A conversation's
    damage is the sum over its turns; it breached at its first breached turn.
    """
    columns = ["run_id", "conversation_id", "strategy", "turn", "payload", "blocked_stage", "input_action", "input_score", "rule_ids", "breached", "damage_usd"]
    in_conversation = (ds.field("kind") == EpisodeKind.ATTACK.value) & ds.field("conversation_id").is_valid()
    damage: dict[tuple[str, str], float] = {}
    for batch in runs.batches("episodes", columns=["run_id", "conversation_id", "breached", "damage_usd"], filter=in_conversation & (ds.field("breached") == True)):  # noqa: E712
        for run_id, cid, dollars in zip(batch["run_id"].to_pylist(), batch["conversation_id"].to_pylist(), batch["damage_usd"].to_pylist()):
            damage[(run_id, cid)] = damage.get((run_id, cid), 0.0) + float(dollars)
    chosen = sorted(damage, key=lambda key: (-damage[key], key))[:top]
    if not chosen:
        return pd.DataFrame(columns=columns)
    wanted = ds.field("conversation_id").isin(sorted({cid for _, cid in chosen}))
    frames = [pa.Table.from_batches([b]).to_pandas() for b in runs.batches("episodes", columns=columns, filter=in_conversation & wanted)]
    frame = pd.concat(frames, ignore_index=True)
    frame = frame[[key in damage and key in chosen for key in zip(frame["run_id"], frame["conversation_id"])]]
    order = {key: rank for rank, key in enumerate(chosen)}
    frame = frame.assign(_rank=[order[key] for key in zip(frame["run_id"], frame["conversation_id"])])
    return frame.sort_values(["_rank", "turn"], kind="stable").drop(columns="_rank").reset_index(drop=True)


def survivors(runs: Runs, top: int = 20, *, filter: ds.Expression | None = None) -> pd.DataFrame:
    """The distinct attack payloads that did the most damage, and how often their recipe (seed + operators) breached.

    What missed them is in ``input_action``/``input_score``/``rule_ids`` (rules that fired without
    blocking) and ``output_action``; ``parent_ids`` and ``attempt`` give the lineage.
    """
    breached = (ds.field("kind") == EpisodeKind.ATTACK.value) & (ds.field("breached") == True)  # noqa: E712
    columns = [
        "run_id", "generation", "episode_id", "campaign_id", "attempt", "goal", "tier", "generator", "channel", "agent", "seed_id",
        "techniques", "parent_ids", "payload", "input_action", "input_score", "rule_ids", "output_action", "damage_usd",
        "secrets_leaked", "records_exfiltrated", "sim_time",
    ]
    best: pd.DataFrame | None = None
    recipes: list[pa.Table] = []
    order = ["damage_usd", "run_id", "episode_id"]
    for batch in runs.batches("episodes", columns=columns, filter=breached if filter is None else filter & breached):
        table = pa.Table.from_batches([batch])
        recipe = pc.binary_join_element_wise(table["seed_id"], pc.binary_join(table["techniques"], "+"), " | ")
        table = table.append_column("recipe", recipe)
        recipes.append(table.select(["recipe"]).append_column("n", pa.array(np.ones(table.num_rows, dtype=np.int64))).group_by(["recipe"]).aggregate([("n", "sum")]))
        merged = table.to_pandas() if best is None else pd.concat([best, table.to_pandas()], ignore_index=True)
        # one row per payload: the same text breaching again (another run, a later attempt) is not another survivor
        best = merged.sort_values(order, ascending=[False, True, True], kind="stable").drop_duplicates("payload").head(top).reset_index(drop=True)
    if best is None:
        return pd.DataFrame(columns=[*columns, "recipe", "recipe_breaches"])
    counts = pa.concat_tables(recipes).group_by(["recipe"]).aggregate([("n_sum", "sum")]).to_pandas().set_index("recipe")["n_sum_sum"]
    best["recipe_breaches"] = best["recipe"].map(counts).astype("int64")
    return best
