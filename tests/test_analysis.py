"""Loading many runs and the grouped metrics with intervals, on runs whose answers we know."""

from __future__ import annotations

import numpy as np
import pyarrow.dataset as ds
import pytest

from kosmoi.stats import cluster_bootstrap, wilson
from results import analysis
from results.store import load_runs
from tests.synthetic_runs import attack, benign, warrant, write_run


@pytest.fixture()
def two_runs(tmp_path):
    """Run A (generation 0): 10 campaigns x 4 attempts, 3 campaigns breach at attempt 0 (then contained), 1 at attempt 3.
    Run B (generation 1): 10 campaigns x 4 attempts, no breach. Benign: 5 customers x 4 requests each run, one flagged in A."""
    episodes_a = []
    for c in range(10):
        for a in range(4):
            breached = (c < 3 and a == 0) or (c == 3 and a == 3)
            blocked = None if breached else ("court" if c < 3 else "input_guard")
            techniques = ["leetspeak", "base64"] if c % 2 else []
            episodes_a.append(attack(f"a{c}", a, breached=breached, blocked_stage=blocked, damage_usd=100.0 if breached else 0.0,
                                     techniques=techniques, sim_time=10.0 * c + a, goal="drain_wallet" if c < 5 else "tamper_price",
                                     payload=f"<script>alert({c})</script> campaign {c}"))
    for i in range(5):
        for n in range(4):
            episodes_a.append(benign(f"cust-{i}", n, input_action="flag" if (i, n) == (0, 0) else "allow", task_completed=n != 1, sim_time=5.0 * n))
    warrants_a = [warrant("att-a0", 12.5), warrant("att-a1", 40.0), warrant("att-a2", 5.0), warrant("cust-4", 30.0, benign_subject=True)]
    episodes_b = [attack(f"b{c}", a, blocked_stage="input_guard") for c in range(10) for a in range(4)]
    episodes_b += [benign(f"cust-{i}", n) for i in range(5) for n in range(4)]
    write_run(tmp_path / "runs", "run-a", episodes_a, warrants_a, generation=0, segments=3)
    write_run(tmp_path / "runs", "run-b", episodes_b, generation=1)
    return tmp_path / "runs"


def test_load_runs_finds_runs_and_filters_while_reading(two_runs, tmp_path):
    runs = load_runs(two_runs)
    assert sorted(i.run_id for i in runs.infos) == ["run-a", "run-b"]
    assert len(load_runs(two_runs / "run-a")) == 1  # a run directory itself
    assert len(runs.episodes(["episode_id"], kind="attack")) == 80
    assert len(runs.episodes(["episode_id"], kind="attack", generation=1)) == 40
    assert len(runs.select(generations=[0]).episodes(["episode_id"], tier="user")) == 20
    assert runs.table("episodes", ["episode_id"], filter=ds.field("breached")).num_rows == 4
    assert sum(b.num_rows for b in runs.batches("episodes", ["breached"], batch_size=7)) == 120
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_runs(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no runs found"):
        load_runs(tmp_path / "empty")


def test_rates_by_generation_pair_breaches_with_benign_costs(two_runs):
    frame = analysis.rates(load_runs(two_runs), ["generation"]).set_index("generation")
    a, b = frame.loc[0], frame.loc[1]
    assert (a["attacks"], a["breaches"], a["campaigns"]) == (40, 4, 10) and a["breach_rate"] == pytest.approx(0.1)
    assert a["breach_rate_low"] < 0.1 < a["breach_rate_high"]
    assert a["false_positive_rate"] == pytest.approx(1 / 20) and a["utility"] == pytest.approx(15 / 20)
    assert a["false_warrant_rate"] == pytest.approx(1 / 5) and a["damage_usd"] == 400.0
    assert b["breaches"] == 0 and b["breach_rate_low"] == 0.0
    assert b["breach_rate_high"] == pytest.approx(wilson(0, 40)[1])  # no breach: Wilson, not a [0, 0] bootstrap


def test_technique_families_are_multi_label(two_runs):
    frame = analysis.rates(load_runs(two_runs).select(runs=["run-a"]), ["family"]).set_index("family")
    # odd campaigns used leetspeak (obfuscation) + base64 (encoding): counted in both; even ones are plain
    assert frame.loc["plain", "attacks"] == 20 and frame.loc["plain", "breaches"] == 2
    assert frame.loc["obfuscation", "attacks"] == 20 and frame.loc["encoding", "attacks"] == 20
    assert frame.loc["encoding", "breaches"] == 2
    assert "false_positive_rate" not in frame.columns  # benign traffic has no technique family


def test_streaming_in_small_batches_gives_the_same_answer(two_runs, monkeypatch):
    runs = load_runs(two_runs)
    whole = analysis.rates(runs, ["goal", "generation"])
    monkeypatch.setattr(analysis, "_COMPACT_ROWS", 3)
    original = runs.batches
    monkeypatch.setattr(runs, "batches", lambda name, columns=None, filter=None, batch_size=65_536: original(name, columns, filter, batch_size=5))
    assert analysis.rates(runs, ["goal", "generation"]).equals(whole)


def test_funnel_counts_add_up(two_runs):
    funnel = analysis.funnel(load_runs(two_runs).select(runs=["run-a"])).set_index("stage")
    assert funnel.loc["court", "reached"] == 40 and funnel.loc["court", "blocked"] == 9
    assert funnel.loc["input_guard", "reached"] == 31 and funnel.loc["input_guard", "blocked"] == 27
    assert funnel.loc["breached", "passed"] == 4
    assert all(funnel["reached"] - funnel["blocked"] >= 0)


def test_time_to_contain_counts_only_warrants_after_the_first_breach(two_runs):
    row = analysis.containment(load_runs(two_runs)).iloc[0]
    # a0 breached at 0 -> warrant 12.5; a1 at 10 -> 40 (30 s); a2 at 20, its warrant at 5 came before: not contained; a3 never
    assert row["breached_campaigns"] == 4 and row["contained"] == 2
    assert row["median_s"] == pytest.approx((12.5 + 30.0) / 2)


def test_survivors_are_ranked_and_keep_the_payload(two_runs):
    top = analysis.survivors(load_runs(two_runs), 3)
    assert len(top) == 3 and (top["damage_usd"] == 100.0).all()
    assert top["payload"].str.startswith("<script>").all()
    assert set(top["recipe_breaches"]) <= {1, 2, 3} and top["recipe_breaches"].max() >= 2


def test_cluster_bootstrap_covers_the_truth_about_95_percent_of_the_time():
    rng = np.random.default_rng(7)
    covered = 0
    trials = 300
    for trial in range(trials):
        # 200 campaigns of 4 attempts; each campaign's breach probability varies (clustered data)
        p = rng.beta(1, 19, size=200)
        hits = rng.binomial(4, p)
        ci = cluster_bootstrap(hits, np.full(200, 4), reps=500, seed=trial)
        covered += ci.low <= 0.05 <= ci.high
    assert 0.90 <= covered / trials <= 0.99


def test_cluster_bootstrap_is_wider_than_pretending_attempts_are_independent():
    hits = np.array([4] * 10 + [0] * 90)  # all-or-nothing campaigns
    clustered = cluster_bootstrap(hits, np.full(100, 4))
    naive_low, naive_high = wilson(int(hits.sum()), 400)
    assert (clustered.high - clustered.low) > 1.5 * (naive_high - naive_low)


def test_unknown_grouping_keys_are_a_clear_error(two_runs):
    with pytest.raises(ValueError, match="cannot group by payload"):
        analysis.rates(load_runs(two_runs), ["payload"])


def test_identical_runs_are_counted_once_and_survivors_listed_once(tmp_path):
    from results.report import build_report

    episodes = [attack("c1", 0, breached=True, damage_usd=900.0, payload="wire 900 to DE89"), attack("c2", 0), benign("cust-1", 0)]
    same = {"config_hash": "abc", "seed": 7, "rules": {"hash": "sha256:r1"}}
    write_run(tmp_path / "runs", "run-a", episodes, summary=same)
    write_run(tmp_path / "runs", "run-b", episodes, summary=same)
    write_run(tmp_path / "runs", "run-c", episodes, summary={**same, "seed": 8})  # another seed: another measurement
    runs = load_runs(tmp_path / "runs")
    kept, repeats = runs.distinct()
    assert [i.run_id for i in kept.infos] == ["run-a", "run-c"] and repeats == [("run-b", "run-a")]
    page = build_report(runs)
    assert "1 run(s) repeat an earlier one" in page and "run-b</code> = <code>run-a" in page
    assert page.count("wire 900 to DE89") == 1  # one survivor row, though it breached in two counted runs
    assert "cost per breach found<b>—" in page and "no model was called" in page
    assert "past every stage" in page


def test_generation_axes_have_whole_numbers_only(tmp_path):
    import re

    from results.report import build_report

    for generation in (0, 1):
        write_run(tmp_path / "runs", f"run-{generation}", [attack("c1", 0, breached=generation == 0, damage_usd=10.0), benign("cust-1", 0)], generation=generation)
    page = build_report(load_runs(tmp_path / "runs"))
    trend = page[page.index("by generation</h2>") :]
    trend = trend[: trend.index("</svg>")]
    blocks = re.split(r'<g id="xtick_\d+">', trend.split('<g id="matplotlib.axis_2">')[0])[1:]  # the x axis's ticks
    labels = [re.search(r"<text[^>]*>([^<]*)</text>", block).group(1) for block in blocks]
    assert labels and all(re.fullmatch(r"[−-]?\d+", label) for label in labels), labels
