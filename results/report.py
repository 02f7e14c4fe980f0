"""`immune report`: one self-contained HTML file for one or more runs.

Plots are inline SVG (matplotlib, Agg backend), styles inline, no script, no
font or image fetched from anywhere: a Content-Security-Policy meta tag
forbids every network request, so the file reads the same offline, attached
to a ticket or opened from a mail. Attack payloads are shown escaped,
truncated, with invisible and bidirectional-control characters made visible
(``\\u202e``) so a payload cannot rearrange or hide the report's text.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from results import analysis
from results.coverage import atlas_coverage, coverage
from results.display import printable
from results.store import Runs

log = logging.getLogger(__name__)

PAYLOAD_CHARS = 300
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#1d2330;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2.2rem;border-bottom:1px solid #d8dce5;padding-bottom:.3rem}
.muted{color:#5d6678}.warn{color:#a04000;font-weight:600}.note{background:#fef5e7;padding:.4rem .6rem;border-left:3px solid #d68910}.cards{display:flex;flex-wrap:wrap;gap:.8rem;margin:1rem 0}
.card{border:1px solid #d8dce5;border-radius:6px;padding:.6rem .9rem;min-width:10rem}.card b{display:block;font-size:1.25rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:12.5px}th,td{border-bottom:1px solid #e6e9ef;padding:.25rem .5rem;text-align:right;vertical-align:top}
th{background:#f4f6fa}td.l,th.l{text-align:left}code,.payload{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px}
.payload{white-space:pre-wrap;word-break:break-all;max-width:34rem;text-align:left;display:block}svg{max-width:100%;height:auto}
"""


def visible(text: str, limit: int = PAYLOAD_CHARS) -> str:
    """``text`` made safe to show: invisible/bidi characters as escapes, truncated, HTML-escaped."""
    return html.escape(printable(text, limit), quote=True)


def _pct(value: float | None) -> str:
    return "–" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.2%}"


def _ci(row: pd.Series, name: str) -> str:
    return f"{_pct(row[name])} <span class=muted>[{_pct(row[name + '_low'])}, {_pct(row[name + '_high'])}]</span>"


def _key(value: object) -> str:
    """A grouping value as text (pandas turns integer keys into floats when a row mixes types)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return html.escape(str(value))


def _svg(draw: Callable[[object], None], height: float = 3.0) -> str:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "none", "font.size": 9})
    fig, ax = plt.subplots(figsize=(8.5, height))
    try:
        draw(ax)
        fig.tight_layout()
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg")
    finally:
        plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _rate_bars(frame: pd.DataFrame, key: str, title: str) -> str:
    frame = frame.sort_values("breach_rate")

    def draw(ax) -> None:
        y = np.arange(len(frame))
        rate = frame["breach_rate"].to_numpy() * 100
        err = np.vstack([rate - frame["breach_rate_low"].to_numpy() * 100, frame["breach_rate_high"].to_numpy() * 100 - rate])
        ax.barh(y, rate, xerr=np.clip(err, 0, None), color="#c0392b", alpha=0.8, capsize=3)
        ax.set_yticks(y, [str(v) for v in frame[key]])
        ax.set_xlabel("breach rate, % of attack episodes (95 % cluster-bootstrap interval)")
        ax.set_title(title)

    return _svg(draw, height=max(1.8, 0.35 * len(frame) + 1.0))


def _trend(frame: pd.DataFrame, key: str) -> str:
    def draw(ax) -> None:
        x = frame[key].to_numpy()
        ax.plot(x, frame["breach_rate"] * 100, marker="o", color="#c0392b", label="breach rate")
        ax.fill_between(x, frame["breach_rate_low"] * 100, frame["breach_rate_high"] * 100, color="#c0392b", alpha=0.15)
        ax.plot(x, frame["false_positive_rate"] * 100, marker="s", color="#2471a3", label="benign false-positive rate")
        ax.fill_between(x, frame["false_positive_rate_low"] * 100, frame["false_positive_rate_high"] * 100, color="#2471a3", alpha=0.15)
        ax.set_xlabel(key)
        if key == "generation":
            from matplotlib.ticker import MaxNLocator

            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # generations are whole numbers
        ax.set_ylabel("%")
        ax.set_ylim(bottom=0)
        ax.legend(loc="upper right")
        ax.set_title(f"breach rate and false-positive rate by {key} (95 % intervals)")

    return _svg(draw)


def _funnel_svg(frame: pd.DataFrame) -> str:
    def draw(ax) -> None:
        y = np.arange(len(frame))[::-1]
        ax.barh(y, frame["reached"], color="#d5dbe6", label="reached")
        ax.barh(y, frame["blocked"], color="#1e8449", label="stopped here")
        ax.set_yticks(y, frame["stage"])
        ax.set_xlabel("attack episodes")
        ax.legend(loc="lower right")
        ax.set_title("where attacks were stopped")

    return _svg(draw, height=2.8)


def _table(frame: pd.DataFrame, columns: Sequence[tuple[str, str, Callable[[pd.Series], str]]]) -> str:
    head = "".join(f"<th class={'l' if i == 0 else 'r'}>{html.escape(title)}</th>" for i, (title, _, _) in enumerate(columns))
    body = []
    for _, row in frame.iterrows():
        cells = "".join(f"<td class={'l' if i == 0 else 'r'}>{render(row)}</td>" for i, (_, _, render) in enumerate(columns))
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _breakdown(runs: Runs, key: str, title: str) -> str:
    frame = analysis.rates(runs, [key])
    frame = frame[frame["attacks"] > 0] if len(frame) else frame  # benign traffic has no goal, tier or family
    if frame.empty:
        return ""
    table = _table(
        frame.sort_values("breach_rate", ascending=False),
        [
            (key, key, lambda r: _key(r[key])),
            ("attacks", "attacks", lambda r: f"{int(r['attacks']):,}"),
            ("breaches", "breaches", lambda r: f"{int(r['breaches']):,}"),
            ("breach rate [95 % CI]", "breach_rate", lambda r: _ci(r, "breach_rate")),
            ("campaigns", "campaigns", lambda r: f"{int(r['campaigns']):,}"),
            ("damage $", "damage_usd", lambda r: f"{r['damage_usd']:,.0f}"),
        ],
    )
    return f"<h2>{html.escape(title)}</h2>{_rate_bars(frame, key, title)}{table}"


def build_report(runs: Runs, title: str = "Kosmoi Immune report", top: int = 25) -> str:
    """The report as one HTML string."""
    if len(runs) == 0:
        raise ValueError("no runs to report on")
    runs, repeats = runs.distinct()
    overall = analysis.rates(runs).iloc[0]
    contain = analysis.containment(runs)
    contained = contain.iloc[0] if len(contain) else None
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p class=muted>{len(runs)} run(s), {int(overall['attacks']):,} attack and {int(overall['benign']):,} benign episodes; generated {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC. "
        "Intervals are 95 % cluster-bootstrap intervals (campaigns for attacks, identities for benign traffic; Wilson where no or every episode counts).</p>",
        _repeats_note(repeats),
        "<div class=cards>",
        f"<div class=card>breach rate<b>{_pct(overall['breach_rate'])}</b><span class=muted>[{_pct(overall['breach_rate_low'])}, {_pct(overall['breach_rate_high'])}]</span></div>",
        f"<div class=card>benign false positives<b>{_pct(overall['false_positive_rate'])}</b><span class=muted>[{_pct(overall['false_positive_rate_low'])}, {_pct(overall['false_positive_rate_high'])}]</span></div>",
        f"<div class=card>utility (benign tasks done)<b>{_pct(overall['utility'])}</b><span class=muted>[{_pct(overall['utility_low'])}, {_pct(overall['utility_high'])}]</span></div>",
        f"<div class=card>false-warrant rate<b>{_pct(overall['false_warrant_rate'])}</b><span class=muted>{int(overall['warrants']):,} warrants</span></div>",
        f"<div class=card>damage<b>${overall['damage_usd']:,.0f}</b><span class=muted>{int(overall['secrets_leaked'])} secrets, {int(overall['records_exfiltrated'])} records</span></div>",
        f"<div class=card>cost per breach found<b>{_cost_per_breach(overall)}</b><span class=muted>{_spent(overall)}</span></div>",
    ]
    if contained is not None:
        median = "–" if contained["median_s"] is None or pd.isna(contained["median_s"]) else f"{contained['median_s']:,.0f} s"
        parts.append(f"<div class=card>time to contain (median)<b>{median}</b><span class=muted>{int(contained['contained'])} of {int(contained['breached_campaigns'])} breached campaigns contained</span></div>")
    parts.append("</div>")
    parts.append(_runs_table(runs))
    trend_key = "generation" if runs.runs["generation"].nunique() > 1 else "run_id" if len(runs) > 1 else None
    if trend_key:
        by = analysis.rates(runs, [trend_key]).sort_values(trend_key)
        parts.append(f"<h2>Breach rate and false positives by {trend_key}</h2>")
        if trend_key == "generation":
            parts.append(_trend(by, trend_key))
        parts.append(_benign_table(by, trend_key))
    parts.append(_coverage_section(runs))
    for key, heading in (("family", "By technique family"), ("goal", "By goal"), ("tier", "By tier"), ("channel", "By channel")):
        parts.append(_breakdown(runs, key, heading))
    funnel = analysis.funnel(runs)
    parts.append("<h2>Where attacks were stopped</h2><p class=muted>Each stage sees what the stages before it let through. "
                 "The last row, <i>past every stage</i>, counts the attacks no stage stopped; of those, <i>passed</i> did real damage (the breaches), "
                 "the rest were harmless (the victim complied with nothing that hurt).</p>")
    parts.append(_funnel_svg(funnel[funnel["stage"] != "breached"]))
    parts.append(
        _table(
            funnel,
            [
                ("stage", "stage", lambda r: "past every stage" if r["stage"] == "breached" else html.escape(str(r["stage"]))),
                ("reached", "reached", lambda r: f"{int(r['reached']):,}"),
                ("stopped here", "blocked", lambda r: f"{int(r['blocked']):,}"),
                ("passed", "passed", lambda r: f"{int(r['passed']):,}"),
                ("bypass rate", "bypass_rate", lambda r: _pct(r["bypass_rate"])),
            ],
        )
    )
    parts.append(_containment_section(runs))
    parts.append(_survivors_section(runs, top))
    parts.append(_conversations_section(runs))
    parts.append("<p class=muted>Kosmoi Immune · metric definitions: kosmoi/metrics.py · intervals: kosmoi/stats.py</p></body></html>")
    return "".join(parts)


def _stop(row: pd.Series, which: str) -> str:
    stage = row[which]
    return "–" if stage is None or pd.isna(stage) else f"{html.escape(str(stage))} ({_pct(row[f'{which}_share'])})"


def _coverage_section(runs: Runs) -> str:
    """The OWASP LLM 2025 matrix (every category, attacked or not) and the ATLAS techniques exercised."""
    owasp = coverage(runs)

    def status(r: pd.Series) -> str:
        css = {"attacked": "", "checked": " class=muted", "not attacked": " class=muted", "not exercised": " class=warn"}[r["status"]]
        detail = f" — {html.escape(r['exercised_by'])}" if r["exercised_by"] and r["status"] != "attacked" else ""
        return f"<span{css}>{html.escape(r['status'])}</span>{detail}"

    def attacked(text: Callable[[pd.Series], str]) -> Callable[[pd.Series], str]:
        return lambda r: text(r) if r["status"] == "attacked" else "–"

    matrix = _table(
        owasp,
        [
            ("OWASP LLM 2025", "owasp", lambda r: f"<b>{r['owasp']}</b> {html.escape(r['name'])}"),
            ("status", "status", status),
            ("attacks", "attacks", attacked(lambda r: f"{int(r['attacks']):,}")),
            ("breach rate [95 % CI]", "breach_rate", attacked(lambda r: _ci(r, "breach_rate"))),
            ("damage $", "damage_usd", attacked(lambda r: f"{r['damage_usd']:,.0f}")),
            ("first stage that stops it", "first_stop", attacked(lambda r: _stop(r, "first_stop"))),
            ("stops the most", "main_stop", attacked(lambda r: _stop(r, "main_stop"))),
            ("cases / warrants", "cases", lambda r: f"{int(r['cases']):,} / {int(r['warrants']):,}"),
            ("other sessions harmed", "harmed_sessions", lambda r: f"{int(r['harmed_sessions']):,} (${r['harm_usd']:,.0f})" if r["harmed_sessions"] else "–"),
        ],
    )
    atlas = atlas_coverage(runs)
    techniques = _table(
        atlas,
        [
            ("MITRE ATLAS", "atlas", lambda r: f"<b>{r['atlas']}</b> {html.escape(r['name'])}"),
            ("attacks", "attacks", lambda r: f"{int(r['attacks']):,}" if r["attacks"] else "not exercised"),
            ("breach rate [95 % CI]", "breach_rate", lambda r: _ci(r, "breach_rate") if r["attacks"] else "–"),
        ],
    )
    return (
        "<h2>OWASP Top 10 for LLM Applications (2025) and MITRE ATLAS</h2><p class=muted>An attack counts in every category its goal, "
        "channel and techniques map to (kosmoi/taxonomy.py), so the rows overlap. A planted document's later harm to other "
        "customers' sessions is credited to the plant (<i>other sessions harmed</i>). <i>Checked</i>: defended by checks the simulated "
        "campaigns do not attack; <i>not attacked</i>: these runs had no attack on it; <i>not exercised</i>: nothing here attacks or checks it.</p>" + matrix + techniques
    )


def _repeats_note(repeats: list[tuple[str, str]]) -> str:
    """A line naming the runs counted once because they repeat another (same config hash, seed and rule set)."""
    if not repeats:
        return ""
    pairs = "; ".join(f"<code>{html.escape(a)}</code> = <code>{html.escape(b)}</code>" for a, b in repeats)
    return f"<p class=note>{len(repeats)} run(s) repeat an earlier one (same config hash, seed and rule-set hash) and are counted once: {pairs}.</p>"


def _cost_per_breach(overall: pd.Series) -> str:
    return "—" if not overall["cost_usd"] or not overall["breaches"] else f"${overall['cost_per_breach_usd']:,.4f}"


def _spent(overall: pd.Series) -> str:
    return "no model was called" if not overall["cost_usd"] else f"${overall['cost_usd']:,.2f} spent"


def _runs_table(runs: Runs) -> str:
    frame = runs.runs
    return "<h2>Runs</h2>" + _table(
        frame,
        [
            ("run", "run_id", lambda r: f"<code>{html.escape(str(r['run_id']))}</code>"),
            ("experiment", "experiment", lambda r: html.escape(str(r["experiment"]))),
            ("generation", "generation", lambda r: str(r["generation"])),
            ("status", "status", lambda r: html.escape(str(r["status"]))),
            ("episodes", "episodes", lambda r: "–" if pd.isna(r["episodes"]) else f"{int(r['episodes']):,}"),
            ("breach rate", "breach_rate", lambda r: _pct(r["breach_rate"])),
            ("benign FPR", "false_positive_rate", lambda r: _pct(r["false_positive_rate"])),
            ("rules", "rules_version", lambda r: html.escape(str(r["rules_version"]))),
        ],
    )


def _benign_table(by: pd.DataFrame, key: str) -> str:
    return _table(
        by,
        [
            (key, key, lambda r: _key(r[key])),
            ("attacks", "attacks", lambda r: f"{int(r['attacks']):,}"),
            ("breach rate [95 % CI]", "breach_rate", lambda r: _ci(r, "breach_rate")),
            ("benign", "benign", lambda r: f"{int(r['benign']):,}"),
            ("false-positive rate [95 % CI]", "false_positive_rate", lambda r: _ci(r, "false_positive_rate")),
            ("utility [95 % CI]", "utility", lambda r: _ci(r, "utility")),
            ("false-warrant rate", "false_warrant_rate", lambda r: _pct(r["false_warrant_rate"])),
            ("cost per breach $", "cost_per_breach_usd", lambda r: f"{r['cost_per_breach_usd']:,.4f}"),
        ],
    )


def _containment_section(runs: Runs) -> str:
    key = "generation" if runs.runs["generation"].nunique() > 1 else "goal"
    frame = analysis.containment(runs, [key])
    if frame.empty:
        return "<h2>Time to contain</h2><p>No campaign breached anything.</p>"

    def seconds(value: object) -> str:
        return "–" if not isinstance(value, int | float) or pd.isna(value) else f"{float(value):,.0f}"

    return "<h2>Time to contain</h2><p class=muted>Simulated seconds from a campaign's first breach to the first warrant against its identity.</p>" + _table(
        frame,
        [
            (key, key, lambda r: _key(r[key])),
            ("breached campaigns", "breached_campaigns", lambda r: f"{int(r['breached_campaigns']):,}"),
            ("contained [95 % CI]", "contained_share", lambda r: _ci(r.rename({"contained_low": "contained_share_low", "contained_high": "contained_share_high"}), "contained_share")),
            ("median s", "median_s", lambda r: seconds(r["median_s"])),
            ("p90 s", "p90_s", lambda r: seconds(r["p90_s"])),
        ],
    )


def _conversations_section(runs: Runs, top: int = 5) -> str:
    """Transcripts (escaped) of the breached conversations that did the most damage; nothing for runs without conversations."""
    frame = analysis.conversations(runs, top)
    if frame.empty:
        return ""
    parts = ["<h2>Top surviving conversations</h2>"]
    for (run_id, cid), turns in frame.groupby(["run_id", "conversation_id"], sort=False):
        strategy = html.escape(str(turns["strategy"].iloc[0]))
        rows = []
        for r in turns.itertuples():
            outcome = "breached" if r.breached else f"stopped by {html.escape(str(r.blocked_stage))}" if isinstance(r.blocked_stage, str) else "answered"
            fired = ", ".join(r.rule_ids) or "no rule"
            rows.append(
                f"<tr><td class=r>{int(r.turn) + 1}</td><td class=l><code>{visible(str(r.payload))}</code></td>"
                f"<td class=l>input {html.escape(str(r.input_action))} ({float(r.input_score):.2f}; {html.escape(fired)})</td><td class=l>{outcome}</td></tr>"
            )
        head = "<tr><th class=r>turn</th><th class=l>attacker said</th><th class=l>input guard</th><th class=l>outcome</th></tr>"
        parts.append(f"<h3><code>{html.escape(str(cid))}</code> · {strategy} · run <code>{html.escape(str(run_id))}</code></h3><table>{head}{''.join(rows)}</table>")
    return "".join(parts)


def _survivors_section(runs: Runs, top: int) -> str:
    frame = analysis.survivors(runs, top)
    if frame.empty:
        return "<h2>Top surviving attacks</h2><p>None: no attack breached.</p>"

    def lineage(r: pd.Series) -> str:
        ops = " → ".join(r["techniques"]) or "no operators"
        parents = ", ".join(r["parent_ids"]) or "first attempt"
        return f"<code>{html.escape(str(r['seed_id']) or '-')}</code> + {html.escape(ops)}<br><span class=muted>attempt {int(r['attempt'])}; parent {html.escape(parents)}; {html.escape(str(r['generator']))}</span>"

    def missed(r: pd.Series) -> str:
        fired = ", ".join(r["rule_ids"]) or "no rule"
        return f"input {html.escape(str(r['input_action']))} (score {float(r['input_score']):.2f}; {html.escape(fired)}); output {html.escape(str(r['output_action']))}"

    return (
        f"<h2>Top surviving attacks</h2><p class=muted>The {len(frame)} breaches with the most damage; a recipe is a seed plus its operators, "
        "and 'recipe breaches' counts how often it breached across these runs. Payloads are escaped and truncated.</p>"
        + _table(
            frame,
            [
                ("payload", "payload", lambda r: f"<span class=payload>{visible(str(r['payload']))}</span>"),
                ("goal / tier", "goal", lambda r: f"{html.escape(str(r['goal']))}<br><span class=muted>{html.escape(str(r['tier']))}, {html.escape(str(r['channel']))} → {html.escape(str(r['agent']))}</span>"),
                ("lineage", "seed_id", lineage),
                ("what missed it", "input_action", missed),
                ("damage $", "damage_usd", lambda r: f"{r['damage_usd']:,.0f}"),
                ("recipe breaches", "recipe_breaches", lambda r: f"{int(r['recipe_breaches']):,}"),
            ],
        )
    )


def write_report(runs: Runs, path: Path, title: str = "Kosmoi Immune report", top: int = 25) -> Path:
    """Write the report atomically; returns its path."""
    text = build_report(runs, title, top)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, "utf-8")
    tmp.replace(path)
    return path
