"""`selfimprove report RUN_DIR`: one self-contained HTML page (no network) from a run's recorded data.

Reads `rounds/rNN/metrics.json`, `votes.jsonl`, `samples.jsonl`, `verdicts.jsonl`, `train.jsonl`,
`pool.jsonl` (with each question's origin), and `pool_gold.jsonl` (hidden gold, for calibration only).
Writes `RUN_DIR/report.html`: plots as inline SVG (accuracy, agreement and pseudo-label accuracy,
calibration, diversity and length, gate pass rates), each plug-in's own section when its declaration
has one (`declarations.report_sections`: RL's per-step plots, the questions the model wrote, LADDER's
variant trees), where each round's questions came from, and a browser of questions with their rationales,
votes, gate verdicts and kept training examples. It computes nothing the run did not record except grouping: the
calibration bins and per-gate pass shares are counts over the stored verdicts and votes. Every file it
reads is in the run's manifest: a damaged or missing one is left out of the page and named in it
(`RunData.problems`), and `selfimprove report` names it on the console too and exits 1.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml

from selfimprove import plugins
from selfimprove.rundir import layout
from selfimprove.records import POOL_ORIGIN, RoundMetrics, from_row
from selfimprove.rundir.store import Problem, RunStore, StoreError
from selfimprove.svg import svg

BINS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0001)  # vote-share bins of the calibration curve
MAX_QUESTIONS = 300  # questions per round in the browser: keeps the page small for big pools


class ReportError(RuntimeError):
    pass


@dataclass
class RoundData:
    number: int
    votes: list[dict] = field(default_factory=list)
    samples: list[dict] = field(default_factory=list)
    verdicts: list[dict] = field(default_factory=list)
    train: list[dict] = field(default_factory=list)
    pool: list[dict] = field(default_factory=list)  # the round's questions, each with where it came from


@dataclass
class RunData:
    root: Path
    history: list[RoundMetrics]
    rounds: list[RoundData]
    questions: dict[str, str]
    gold: dict[str, str]
    problems: list[Problem]  # damaged or missing artifacts: `selfimprove report` names them and exits 1
    notes: list[str]  # what else the report could not show, and why
    is_equivalent: Callable[[str, str], bool] | None = None  # the task's answer equivalence; None = exact
    transductive: bool = False  # `selfimprove ttt`: adapted on the questions it is scored on
    # The run's plug-ins' own sections (their declarations' `report`), drawn with the plots.
    plugin_plots: Callable[[], dict[str, str]] | None = None


def _task_equivalence(root: Path, notes: list[str]):
    """The run's task's `is_equivalent` ("0.5" == "1/2"), or None (exact match) with a note saying why."""
    from selfimprove.config import load_config
    from selfimprove.tasks import get_task

    if not (root / "config.yaml").exists():
        return None
    try:
        return get_task(load_config(root / "config.yaml").task.name).is_equivalent
    except Exception as err:  # noqa: BLE001 - any failure only costs the report its equivalence
        notes.append(f"the run's task could not be loaded from config.yaml ({err}): calibration compares "
                     "answers as exact strings")
        return None


def _read(store: RunStore, name: str, problems: list[Problem]) -> list[dict]:
    """An artifact's rows; [] when it is damaged or missing, which `problems` then names (once)."""
    problem = store.problem(name)
    if problem is None:
        return store.read_jsonl(name)
    if problem not in problems:
        problems.append(problem)
    return []


def _saved_config(store: RunStore, problems: list[Problem]) -> dict | None:
    """The run's config.yaml as a dict; None (with the problem named) when it is missing or damaged."""
    path = store.path(layout.CONFIG)
    if layout.CONFIG in store.manifest["artifacts"] and store.problem(layout.CONFIG) is not None:
        return None  # verify's problems name it
    try:
        saved = yaml.safe_load(path.read_text()) if path.exists() else None
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        problems.append(Problem(layout.CONFIG, f"not valid YAML ({type(err).__name__})",
                                "restore it from the config the run was started with"))
        return None
    return saved if isinstance(saved, dict) else None


def load_run(run_dir: str | Path) -> RunData:
    root = Path(run_dir)
    if not (root / "manifest.json").exists():
        raise ReportError(f"{root} has no manifest.json: not a run directory (give the run.out_dir of a run)")
    try:
        store = RunStore(root)
    except StoreError as err:
        raise ReportError(str(err)) from None
    problems = [p for p in store.verify() if "unfinished write" not in p.what]
    notes: list[str] = []
    rounds_done = layout.finished_rounds(store.manifest["artifacts"])
    history = [from_row(RoundMetrics, store.read_json(layout.round_file(r, layout.METRICS)))
               for r in rounds_done if store.problem(layout.round_file(r, layout.METRICS)) is None]
    if not history:
        raise ReportError(f"{root} has no finished round yet (no rounds/rNN/metrics.json): let "
                          "`selfimprove run` finish round 0, then report again")
    names = (layout.VOTES, layout.SAMPLES, layout.VERDICTS, layout.TRAIN, layout.ROUND_POOL)
    rounds = [RoundData(r, *(_read(store, layout.round_file(r, n), problems) if store.done(layout.round_file(r, n))
                             else [] for n in names))
              for r in rounds_done if r > 0]
    questions = {q["id"]: q["question"] for q in _read(store, layout.POOL, problems)}
    for r in rounds_done:  # a round's own pool may hold questions the collected pool does not
        if r > 0 and store.done(layout.round_file(r, layout.ROUND_POOL)):
            rows = _read(store, layout.round_file(r, layout.ROUND_POOL), problems)
            questions |= {q["id"]: q["question"] for q in rows}
    gold = {g["id"]: g["gold"] for g in _read(store, layout.POOL_GOLD, problems)}
    if not gold:
        notes.append("pool_gold.jsonl is missing: no calibration curve (it needs the pool's hidden answers)")
    saved = _saved_config(store, problems)
    transductive = bool((saved or {}).get("run", {}).get("transductive"))
    equivalence = _task_equivalence(root, notes) if saved is not None else None
    return RunData(root, history, rounds, questions, gold, problems, notes, equivalence, transductive,
                   _plugin_plots(store, rounds_done, saved, problems))


def _plugin_plots(store: RunStore, rounds_done: list[int], saved: dict | None, problems: list[Problem]):
    """The sections the run's plug-ins declare (`report` of each declaration), bound to this run: a function
    that draws them all; None when none declares one."""
    from selfimprove.declarations import report_sections

    sections = [plugins.resolve(target, {}, "a plug-in's report section") for target in report_sections(saved)]
    if not sections:
        return None

    def draw() -> dict[str, str]:
        read = lambda artifact: _read(store, artifact, problems)  # noqa: E731 - what a section reads, named when bad
        return {k: v for section in sections for k, v in section(store, rounds_done, read).items()}
    return draw


def calibration(votes: list[dict], gold: dict[str, str], is_equivalent=None) -> list[dict]:
    """Accuracy of the majority answer by vote-share bin, under the task's equivalence (default: exact)."""
    same = is_equivalent or (lambda a, b: a == b)
    rows = []
    for lo, hi in zip(BINS, BINS[1:]):
        inside = [v for v in votes if v["answer"] is not None and v["question_id"] in gold and lo <= v["share"] < hi]
        if inside:
            rows.append({"lo": lo, "hi": min(hi, 1.0), "n": len(inside),
                         "share": sum(v["share"] for v in inside) / len(inside),
                         "accuracy": sum(same(v["answer"], gold[v["question_id"]]) for v in inside) / len(inside)})
    return rows


def gate_pass_rates(verdicts: list[dict]) -> dict[str, float]:
    names = sorted({g for v in verdicts for g in v["gates"]})
    rates = {g: sum(v["gates"][g]["passed"] for v in verdicts if g in v["gates"]) / len(verdicts) for g in names}
    rates["kept"] = sum(v["kept"] for v in verdicts) / len(verdicts) if verdicts else 0.0
    return rates


def _line_plot(title: str, history: list[RoundMetrics], keys: dict[str, str], ylabel: str) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    for key, label in keys.items():
        points = [(h.round, getattr(h, key)) for h in history if getattr(h, key) is not None]
        if points:
            ax.plot(*zip(*points), marker="o", label=label)
    ax.set(title=title, xlabel="round", ylabel=ylabel)
    ax.set_xticks([h.round for h in history])
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=8)
    return svg(fig)


def plots(run: RunData) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = run.history
    out = {
        "accuracy": _line_plot("Held-out accuracy", h, {"accuracy": "greedy", "majority_accuracy": "majority (maj@k)",
                                                         "verified_majority_accuracy": "verified majority",
                                                         "pass_at_k": "pass@k"}, "accuracy"),
        "agreement": _line_plot("Pool agreement and pseudo-label accuracy", h,
                                {"agreement": "agreement (mean vote share)", "pseudo_label_accuracy": "pseudo-label acc.",
                                 "kept_pseudo_label_accuracy": "pseudo-label acc. (kept)"}, "share"),
        "diversity": _line_plot("Rationale diversity", h, {"distinct_2": "distinct-2",
                                                           "abstention_rate": "abstention rate"}, "share"),
        "length": _line_plot("Rationale length", h, {"mean_tokens": "mean tokens"}, "tokens"),
    }
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot([0, 1], [0, 1], ls="--", color="grey", label="calibrated")
    for rd in run.rounds:
        curve = calibration(rd.votes, run.gold, run.is_equivalent)
        if curve:
            ax.plot([c["share"] for c in curve], [c["accuracy"] for c in curve], marker="o", label=f"round {rd.number}")
    ax.set(title="Calibration: pseudo-label accuracy by vote share", xlabel="vote share", ylabel="accuracy",
           xlim=(0, 1.02), ylim=(-0.02, 1.02))
    ax.legend(fontsize=8)
    out["calibration"] = svg(fig)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    rates = {rd.number: gate_pass_rates(rd.verdicts) for rd in run.rounds if rd.verdicts}
    names = sorted({g for r in rates.values() for g in r})
    width = 0.8 / max(1, len(rates))
    for i, (r, rate) in enumerate(rates.items()):
        ax.bar([j + i * width for j in range(len(names))], [rate.get(g, 0) for g in names], width, label=f"round {r}")
    ax.set_xticks([j + width * (len(rates) - 1) / 2 for j in range(len(names))], names, rotation=20, fontsize=8)
    ax.set(title="Gate pass rates (share of sampled paths)", ylabel="passed", ylim=(0, 1.05))
    if rates:
        ax.legend(fontsize=8)
    out["gates"] = svg(fig)
    if run.plugin_plots is not None:
        out |= run.plugin_plots()
    return out


def browser_data(run: RunData) -> list[dict]:
    """Per round, per question: question, hidden gold, vote, every sample with its verdict, kept examples."""
    rounds = []
    for rd in run.rounds:
        verdict = {(v["question_id"], v["prompt_format"], v["index"]): v for v in rd.verdicts}
        examples: dict[str, list] = {}
        for e in rd.train:
            examples.setdefault(e["question_id"], []).append({"format": e["format"], "completion": e["completion"]})
        samples: dict[str, list] = {}
        for s in rd.samples:
            v = verdict.get((s["question_id"], s["prompt_format"], s["index"]), {})
            samples.setdefault(s["question_id"], []).append({
                "index": s["index"], "format": s["prompt_format"], "text": s["text"], "answer": s["answer"],
                "kept": v.get("kept"), "reason": v.get("reason"),
                "gates": {g: [x["passed"], x["reason"]] for g, x in v.get("gates", {}).items()}})
        origin = {q["id"]: (q.get("origin", POOL_ORIGIN), q.get("parent")) for q in rd.pool}
        questions = [{"id": v["question_id"], "question": run.questions.get(v["question_id"], ""),
                      "origin": origin.get(v["question_id"], (POOL_ORIGIN, None))[0],
                      "parent": origin.get(v["question_id"], (POOL_ORIGIN, None))[1],
                      "gold": run.gold.get(v["question_id"]), "vote": v["answer"], "share": v["share"],
                      "counts": v["counts"], "samples": samples.get(v["question_id"], []),
                      "examples": examples.get(v["question_id"], [])} for v in rd.votes[:MAX_QUESTIONS]]
        rounds.append({"round": rd.number, "questions": questions, "total": len(rd.votes)})
    return rounds


def sources_table(run: RunData) -> str:
    """Per round: how many questions came from where (each question's `origin`)."""
    rows = []
    for rd in run.rounds:
        origins: dict[str, int] = {}
        for q in rd.pool:
            origins[q.get("origin", POOL_ORIGIN)] = origins.get(q.get("origin", POOL_ORIGIN), 0) + 1
        rows.append(f"<tr><td>{rd.number}</td><td>{_fmt(', '.join(f'{k}: {v}' for k, v in origins.items()))}</td></tr>")
    return ("<table class='metrics' id='sources'><tr><th>round</th><th>questions by origin</th></tr>"
            + "".join(rows) + "</table>")


def metrics_table(history: list[RoundMetrics]) -> str:
    cols = ["round", "accuracy", "majority_accuracy", "pass_at_k", "agreement", "pseudo_label_accuracy", "kept",
            "train_examples", "train_loss_last", "decision"]
    head = "".join(f"<th>{c}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(getattr(h, c))}</td>" for c in cols) + "</tr>" for h in history)
    return f"<table class='metrics'><tr>{head}</tr>{body}</table>"


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return html.escape("-" if value is None else str(value))


def render(run: RunData) -> str:
    figures = "".join(f"<figure class='plot' id='plot-{name}'>{svg}</figure>" for name, svg in plots(run).items())
    notes = "".join(f"<li>{html.escape(str(n))}</li>" for n in [*run.problems, *run.notes]) or \
        "<li>none: every artifact matches its checksum</li>"
    data = json.dumps(browser_data(run), ensure_ascii=False).replace("</", "<\\/")
    title = ("TRANSDUCTIVE (adapted on the questions it is scored on): " if run.transductive else "") + str(run.root)
    return (TEMPLATE.replace("%TITLE%", html.escape(title))
            .replace("%TABLE%", metrics_table(run.history)).replace("%PLOTS%", figures)
            .replace("%SOURCES%", sources_table(run))
            .replace("%NOTES%", notes).replace("%DATA%", data))


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    return write_html(load_run(run_dir), out)


def write_html(run: RunData, out: str | Path | None = None) -> Path:
    """`run`'s page, written atomically to `out` (default RUN_DIR/report.html)."""
    out = Path(out) if out else run.root / "report.html"
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(render(run), encoding="utf-8")
    tmp.replace(out)
    return out


TEMPLATE = """<!doctype html>
<html><head><meta charset="utf-8"><title>selfimprove report: %TITLE%</title>
<style>
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222} h1{font-size:1.3em}
table.metrics{border-collapse:collapse;font-size:.85em} table.metrics td,table.metrics th{border:1px solid #ccc;padding:2px 6px;text-align:right}
.plots{display:flex;flex-wrap:wrap;gap:8px} figure.plot{margin:0;border:1px solid #eee} figure.plot svg{width:420px;height:auto}
#browser{display:flex;gap:12px} #qlist{width:32%;max-height:640px;overflow:auto;border:1px solid #ddd}
#qlist div{padding:4px;border-bottom:1px solid #eee;cursor:pointer;font-size:.85em} #qlist div.sel{background:#e8f0ff}
#detail{flex:1;font-size:.9em} .sample{border:1px solid #ddd;margin:4px 0;padding:4px} .kept{border-left:4px solid #2a2}
.dropped{border-left:4px solid #c33} pre{white-space:pre-wrap;margin:2px 0} .gate{font-size:.8em;color:#555}
details.variant{margin-left:1.2em;font-size:.85em} details.trusted>summary{color:#181} details.untrusted>summary{color:#a22}
</style></head><body>
<h1>selfimprove report: %TITLE%</h1>
%TABLE%
<h2>Plots</h2><div class="plots">%PLOTS%</div>
<h2>Where each round's questions came from</h2>%SOURCES%
<h2>Problems found in the run directory</h2><ul id="notes">%NOTES%</ul>
<h2>Questions</h2>
<p>Round <select id="round"></select> <input id="filter" placeholder="filter questions"> <span id="count"></span></p>
<div id="browser"><div id="qlist"></div><div id="detail">Pick a question.</div></div>
<script type="application/json" id="data">%DATA%</script>
<script>
const rounds = JSON.parse(document.getElementById('data').textContent);
const sel = document.getElementById('round'), list = document.getElementById('qlist'), detail = document.getElementById('detail');
const esc = s => String(s ?? '-').replace(/[&<>]/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;'}[c]));
rounds.forEach((r, i) => sel.add(new Option('round ' + r.round, i)));
function show(q) {
  let h = `<h3>${esc(q.id)}</h3><p>from: ${esc(q.origin)}${q.parent ? ' (a variant of ' + esc(q.parent) + ')' : ''}</p><pre>${esc(q.question)}</pre><p>majority <b>${esc(q.vote)}</b> (share ${q.share.toFixed(2)}; votes ${esc(JSON.stringify(q.counts))}); hidden gold ${esc(q.gold)}</p><h4>Sampled rationales</h4>`;
  for (const s of q.samples) {
    const gates = Object.entries(s.gates).map(([g, [ok, why]]) => `${ok ? '&#10003;' : '&#10007;'} ${esc(g)}${why ? ': ' + esc(why) : ''}`).join(' &middot; ');
    h += `<div class="sample ${s.kept ? 'kept' : 'dropped'}"><b>#${s.index}</b> ${esc(s.format)}: answer <b>${esc(s.answer)}</b>, ${esc(s.reason)}<pre>${esc(s.text)}</pre><div class="gate">${gates}</div></div>`;
  }
  h += '<h4>Kept training examples</h4>' + (q.examples.map(e => `<div class="sample kept">${esc(e.format)}<pre>${esc(typeof e.completion === 'string' ? e.completion : JSON.stringify(e.completion))}</pre></div>`).join('') || '<p>none</p>');
  detail.innerHTML = h;
}
function fill() {
  const r = rounds[sel.value]; if (!r) return;
  const f = document.getElementById('filter').value.toLowerCase();
  list.innerHTML = '';
  const qs = r.questions.filter(q => (q.id + q.question).toLowerCase().includes(f));
  document.getElementById('count').textContent = `${qs.length} shown of ${r.total} questions`;
  qs.forEach((q, i) => { const d = document.createElement('div'); d.textContent = `${q.id}: ${q.question.slice(0, 80)}`;
    d.onclick = () => { list.querySelectorAll('.sel').forEach(x => x.classList.remove('sel')); d.classList.add('sel'); show(q); };
    list.appendChild(d); if (i === 0) d.click(); });
}
sel.onchange = fill; document.getElementById('filter').oninput = fill; fill();
</script></body></html>
"""
