"""The documentation's evidence numbers, rendered from the committed result files: the pages must contain them.

Each check reads one file under benchmarks/results/ and returns the phrases the documentation states about
it, rendered from the data: recomputed from per-question outcomes where the file stored them (paired tests
through `benchmarks.evidence`), otherwise the file's own numbers. The documentation is README.md and every
docs/*.md (`pages()`); a phrase may stand in any one of them (the opening result is in the README, the rest
mostly in docs/evidence.md). `tests/test_evidence_claims.py` asserts that every phrase is in one of those
pages (whitespace-insensitive), so a stated number cannot drift from its data.

    python -m benchmarks.readme_claims          # every phrase, and which page has it (MISSING: none)
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import from the repository root, as `python -m benchmarks...` does
    sys.path[0] = str(Path(__file__).resolve().parents[1])
from benchmarks.evidence import claims, stats  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def load(name: str) -> dict:
    return json.loads((RESULTS / f"{name}.json").read_text())


# --- how the documentation writes numbers ------------------------------------------------------------

def one_decimal(points: float) -> str:
    """Rounded half up, as a reader rounds 67.25 (269 of 400) to 67.3; float formatting would give 67.2."""
    return str(Decimal(f"{points:.6f}").quantize(Decimal("0.1"), ROUND_HALF_UP))


def pct(x: float) -> str:  # 0.332 -> "33.2%"
    return f"{one_decimal(100 * x)}%"


def val(x: float) -> str:  # 0.332 -> "33.2"
    return one_decimal(100 * x)


def pts(x: float) -> str:  # 0.083 -> "+8.3"
    return f"{100 * x:+.1f}"


def p_value(p: float) -> str:  # 6.5e-08 -> "6.5e-8", 0.3057 -> "0.31", 1.0 -> "1"
    return re.sub(r"e([+-])0*(\d)", r"e\1\2", f"{p:.2g}").replace("e+", "e")


def interval(lo: float, hi: float) -> str:
    return f"[{pts(lo)}, {pts(hi)}]"


def median_of(values: list[float], fmt=pts) -> str:  # "+26.5 [+20.0, +27.0]": median [min, max]
    return f"{fmt(statistics.median(values))} [{fmt(min(values))}, {fmt(max(values))}]"


def per_seed(values: list[float], fmt=pts) -> str:  # "[+12.5, +5.0, +10.5]"
    return "[" + ", ".join(fmt(v) for v in values) + "]"


def claim_phrase(c: claims.Claim) -> str:
    """How the documentation states a claim: effect, interval, p, n and seeds."""
    p = "" if c.p is None else f", p = {p_value(c.p)}"
    return f"{pts(c.effect)} points {interval(*c.ci95)}{p}, n = {c.n:,}"


# --- one check per result file ---------------------------------------------------------------------

def real_model_gain() -> list[str]:
    """The opening table, recomputed from the stored per-question outcomes (not from the summary)."""
    d = load("real_model_gain")
    arms = d["arms"]

    def outcomes(arm, rnd):
        return {s: arms[arm][s]["outcomes"][str(rnd)] for s in sorted(arms[arm]) if str(rnd) in arms[arm][s]["outcomes"]}

    def acc(o):
        return o.count("1") / len(o)

    label_free = outcomes("selftrain", 1)
    base = outcomes("selftrain", 0)
    out = [f"| base model | {pct(acc(base['0']))} |",
           f"**{pct(statistics.median(map(acc, label_free.values())))}** {per_seed(map(acc, label_free.values()), val)}"]
    for arm, row in (("control", "| {d} points {i}, {a} vs {b} questions, p = {p} |"),
                     ("majority", "| {d} {i}, {a} vs {b}, p = {p} |"), ("oracle", "| {d} {i}, {a} vs {b}, p = {p} |")):
        theirs = outcomes(arm, 1)
        seeds = [s for s in label_free if s in theirs]
        t = stats.mcnemar("".join(label_free[s] for s in seeds), "".join(theirs[s] for s in seeds))
        out.append(f"{pct(statistics.median(map(acc, theirs.values())))} {per_seed(map(acc, theirs.values()), val)}")
        out.append(row.format(d=pts(t["difference"]), i=interval(*t["ci95"]), a=t["only_this_right"],
                              b=t["only_other_right"], p=p_value(t["p_exact_mcnemar"])))
    control = outcomes("control", 1)
    gains = [acc(label_free[s]) - acc(control[s]) for s in sorted(control)]
    out.append(f"+{val(statistics.median(gains))} points median ({', '.join(pts(g) for g in gains)} by seed)")
    versus_base = stats.mcnemar("".join(label_free.values()), "".join(base[s] for s in label_free))
    base_gains = [acc(label_free[s]) - acc(base[s]) for s in label_free]
    out.append(f"Against the base: {pts(statistics.median(base_gains))} median, "
               f"p = {p_value(versus_base['p_exact_mcnemar'])}")
    round2 = outcomes("selftrain", 2)
    t = stats.mcnemar("".join(round2.values()), "".join(label_free[s] for s in round2))
    out.append(f"{pct(statistics.median(map(acc, round2.values())))} {per_seed(map(acc, round2.values()), val)}")
    out.append(f"round 2 vs 1: {pts(t['difference'])} {interval(*t['ci95'])}, {t['only_this_right']} vs "
               f"{t['only_other_right']}, p = {p_value(t['p_exact_mcnemar'])}")
    ttt = {arm: run["outcomes"]["adapted"] for arm, run in d.get("ttt", {}).items()}
    if ttt:
        t_base = stats.mcnemar(ttt["selftrain"], d["ttt"]["selftrain"]["outcomes"]["base"])
        t_control = stats.mcnemar(ttt["selftrain"], ttt["control"])
        t_oracle = stats.mcnemar(ttt["selftrain"], ttt["oracle"])
        t_random = stats.mcnemar(ttt["selftrain"], ttt["random"]) if "random" in ttt else None
        out += [f"Label-free {pct(acc(ttt['selftrain']))}, {pts(t_base['difference'])} points over the base "
                f"{interval(*t_base['ci95'])}, p = {p_value(t_base['p_exact_mcnemar'])}",
                f"control (every own path, same steps) {pct(acc(ttt['control']))}: {pts(t_control['difference'])} "
                f"{interval(*t_control['ci95'])}, p = {p_value(t_control['p_exact_mcnemar'])}",
                *([f"the random-reward control (each question's label one of its own sampled answers, drawn "
                   f"at random; same steps) {pct(acc(ttt['random']))}: label-free {pts(t_random['difference'])} "
                   f"{interval(*t_random['ci95'])}, p = {p_value(t_random['p_exact_mcnemar'])}"]
                  if t_random else []),
                f"the oracle (gold rationales) {pct(acc(ttt['oracle']))}: label-free "
                f"{-100 * t_oracle['difference']:.0f} points below it, p = {p_value(t_oracle['p_exact_mcnemar'])}"]
    return out


def real_model_gain_arithmetic() -> list[str]:
    """Each arm's held-out accuracy, and label-free against the control question by question (seed 0's
    final round; the stored outcomes, not the summary)."""
    d = load("real_model_gain_arithmetic")
    s, final = d["summary"], str(d["settings"]["rounds"])
    mine, control = d["outcomes"]["selftrain"]["0"][final], d["outcomes"]["control"]["0"][final]
    only_mine, only_control = stats.discordant(mine, control)
    return [f"base {pct(s['selftrain']['base'])}, label-free (arithmetic-checked vote) {pct(s['selftrain']['final'])}, "
            f"control (own unfiltered paths) {pct(s['control']['final'])}, gold rationales {pct(s['oracle']['final'])}",
            f"{only_mine} questions against {only_control}, exact McNemar p = {p_value(stats.mcnemar(mine, control)['p_exact_mcnemar'])}"]


def own_exemplars() -> list[str]:
    d = load("own_exemplars")
    arms, paired = d["smollm2"]["arms"], d["smollm2"]["paired"]["self vs task"]
    t = stats.mcnemar_counts(paired["only_first_right"], paired["only_second_right"], paired["questions"])
    emb = d["embedded"]["arms"]
    return [f"{pct(arms['self']['accuracy'])} vs {pct(arms['task']['accuracy'])} "
            f"({pts(t['difference'])} points {interval(*t['ci95'])}, p = {p_value(t['p_exact_mcnemar'])}; "
            f"zero-shot {pct(arms['zero']['accuracy'])})",
            f"{pct(emb['fewshot']['accuracy'])} few-shot vs {pct(emb['zero']['accuracy'])} zero-shot"]


def real_model_competence() -> list[str]:
    """The arithmetic scan's range over its sources: how often the right answer is among K paths, and how
    often the vote of the paths whose arithmetic recomputes is right."""
    d = load("real_model_competence")
    k, rows = d["settings"]["k"], d["rows"]

    def span(key: str) -> str:
        values = sorted(int(100 * r[key] + 0.5) for r in rows)  # half up, as a reader rounds 52.5
        return f"{values[0]}-{values[-1]}%"
    return [f"pass@{k} {span('pass_at_k')}, but checked maj@{k} only {span('checked_majority')}"]


def real_model_competence_equations() -> list[str]:
    rows = load("real_model_competence_equations")["rows"]
    chosen = next(r for r in rows if r["source"] == "steps=1-2,max_value=10" and r["shots"] == 2)
    return [f"8 samples for {100 * chosen['checked_covered']:.0f}% of questions",
            f"plain majority is right for {100 * chosen['plain_majority']:.0f}%"]


def embedded_evidence() -> list[str]:
    d = load("embedded_evidence")
    s = d["summary"]
    out = [f"| **label-free** (the demo) | **{pts(s['arms']['selftrain']['gain']['median'])}** "
           f"[{pts(s['arms']['selftrain']['gain']['min'])}, {pts(s['arms']['selftrain']['gain']['max'])}] |",
           f"| control: the same training steps on the labelled seed set alone | "
           f"{median_of(s['arms']['control']['gain']['values'])} |",
           f"| oracle: the same pool with its gold rationales (+ the same replay) | "
           f"{median_of(s['arms']['oracle']['gain']['values'])} |",
           f"**{100 * s['selftrain_share_of_oracle_gain']:.0f}% of the oracle's**",
           "per seed " + ", ".join(f"{100 * v:.0f}%" for v in s["share_of_oracle_gain_per_seed"].values())]
    for name, row in (("k1", "| K paths per question | 1 |"), ("k2", "| | 2 |"), ("k4", "| | 4 |"), ("k16", "| | 16 |")):
        a = s["ablations"]["K"][name]
        out.append(f"{row} {median_of(a['gain']['values'])} | {pct(a['kept_label_accuracy']['median'])} | "
                   f"{a['kept']['median']:,.0f} |")
    for name in ("no_filter", "majority", "share_0.75"):
        a = s["ablations"]["filter"][name]
        out.append(f"| {median_of(a['gain']['values'])} | {pct(a['kept_label_accuracy']['median'])} | "
                   f"{a['kept']['median']:,.0f} |")
    for name in ("four_formats", "direct_only"):
        out.append(f"| {median_of(s['ablations']['formats'][name]['gain']['values'])} | | |")
    for arm in ("selftrain", "control", "oracle"):  # the untouched test split
        out.append(f"| {median_of(s['arms'][arm]['test_gain']['values'])} |")
    for record in s["claims"]:
        c = claims.Claim(**{k: v for k, v in record.items() if k != "holds"})
        out.append(f"{c.compared}: {claim_phrase(c)}, per seed {per_seed(c.per_seed)}")
    return out


RL_ARMS = {"sft": "SFT rounds (the demo)", "grpo_verified": "GRPO, verified majority",
           "grpo_plain": "GRPO, plain majority (TTRL's reward)", "grpo_gold": "GRPO, gold labels (oracle)",
           "grpo_random": "GRPO, random reward (control)", "grpo_verified_guard": "GRPO, verified majority, guard on",
           "grpo_plain_long": "GRPO, plain majority, 4 rounds", "grpo_plain_long_guard": "GRPO, plain majority, 4 rounds, guard on"}
TTT_COLUMNS = ("ttt", "ttt_guard", "ttt_random", "ttt_gold", "ttt_lr0.002", "ttt_guard_lr0.002")


def rl_evidence() -> list[str]:
    """The arms table (untouched and probe-set gains, tokens), SFT against each arm on the untouched set,
    how far the guarded runs ended from their best probe, and the test-time training table by seed."""
    from benchmarks.rl_evidence import base_claims, gain, sft_claims, spent

    d = load("rl_evidence")
    out = []
    for arm, label in RL_ARMS.items():
        runs = [d["arms"][arm][s] for s in sorted(d["arms"][arm])]
        gains, probe = [gain(r, "untouched_accuracy") for r in runs], [gain(r) for r in runs]
        tokens = [spent(r) / 1e6 for r in runs]
        cost = f"{min(tokens):.2f}-{max(tokens):.2f}" if max(tokens) - min(tokens) > 0.05 else f"{statistics.median(tokens):.2f}"
        out.append(f"| {label} | {pts(statistics.median(gains))} {per_seed(gains)} | {pts(statistics.median(probe))} | "
                   f"{cost} |")
    for c in sft_claims(d):
        out.append(f"{c.compared.split(',')[0].replace('SFT vs ', '')}: {claim_phrase(c)}, per seed {per_seed(c.per_seed)}")
    for c in base_claims(d):
        out.append(f"{c.compared.split(',')[0]}: {claim_phrase(c)}, per seed {per_seed(c.per_seed)}")
    below = [b for arm in ("grpo_verified_guard", "grpo_plain_long_guard") for b in d["summary"][arm]["final_below_best_probe"]]
    out.append(f"{sum(b == 0 for b in below)} of {len(below)} guarded runs ended exactly on their best probe")
    for s in sorted(d["ttt"]):
        base = d["ttt"][s]
        cells = [pct(d[name][s]["adapted_accuracy"]) if s in d.get(name, {}) else "-" for name in TTT_COLUMNS]
        out.append(f"| {s} | {pct(base['base_accuracy'])} | {pct(base['base_vote_accuracy'])} | " + " | ".join(cells) + " |")
    return out


RL_KNOBS_ARMS = {"sft": "SFT rounds (the demo)", "grpo_verified": "GRPO, verified majority",
                 "grpo_dapo": "GRPO, verified majority + dynamic sampling + clip-higher",
                 "grpo_entropy": "GRPO, best certainty reward (dev)", "grpo_gold": "GRPO, gold labels (oracle)",
                 "grpo_random": "GRPO, random reward (control)"}


def rl_knobs(d: dict | None = None) -> list[str]:
    """The table row of each arm (untouched and dev gains, tokens, zero-variance share, token entropy, the
    chosen rate and reward) and SFT against each arm, paired per question on the untouched set."""
    from benchmarks.rl_evidence import final, gain, spent

    d = load("rl_knobs") if d is None else d
    arms, out = d["arms"], []
    for arm, label in RL_KNOBS_ARMS.items():
        if arm not in arms:
            continue
        runs = [arms[arm][s] for s in sorted(arms[arm])]
        test, dev = [gain(r, "untouched_accuracy") for r in runs], [gain(r) for r in runs]
        tokens = statistics.median(spent(r) for r in runs) / 1e6
        zero = [r["zero_variance_groups"] for r in runs if r["zero_variance_groups"] is not None]
        entropy = [r["token_entropy"] for r in runs if r["token_entropy"] is not None]
        setting = "" if arm == "sft" else f"{runs[0]['lr']:g}" + (f", {runs[0]['reward']}" if runs[0]["reward"] else "")
        out.append(f"| {label} | {pts(statistics.median(test))} {per_seed(test)} | {pts(statistics.median(dev))} | "
                   f"{tokens:.2f} | " + (f"{100 * statistics.median(zero):.0f}%" if zero else "-") + " | "
                   + (f"{statistics.median(entropy):.3f}" if entropy else "-") + f" | {setting or '-'} |")
    outcomes = {a: {s: final(r)["untouched_outcomes"] for s, r in arms[a].items()} for a in arms}
    pairs = [("sft", a) for a in RL_KNOBS_ARMS if a != "sft"] + [("grpo_dapo", "grpo_verified"),
                                                                  ("grpo_gold", "grpo_dapo"), ("grpo_dapo", "grpo_random")]
    for mine, other in ((a, b) for a, b in pairs if a in arms and b in arms):
        c = claims.paired(f"{mine} vs {other}", outcomes[mine], outcomes[other])
        out.append(f"{mine} vs {other}: {claim_phrase(c)}, per seed {per_seed(c.per_seed)}")
    for arm, candidates in d.get("selection", {}).items():
        out.append(f"{arm}: " + ", ".join(f"{c['lr']:g}{' ' + c['reward'] if c['reward'] else ''} "
                                          f"{pts(c['dev_gain'])}" for c in candidates))
    return out


def code_evidence() -> list[str]:
    from benchmarks.code_evidence import paired_claims

    d = load("code_evidence")
    out = []
    for arm in ("selftrain", "control", "oracle"):
        runs, summary = d["arms"][arm], d["summary"][arm]
        moves = ", ".join(f"{100 * h[0]['pass_at_1_greedy']:.0f}->{100 * h[-1]['pass_at_1_greedy']:.0f}"
                          for h in runs.values())
        tests = ", ".join(f"{100 * h[0]['test']['pass_at_1_greedy']:.1f}->{100 * h[-1]['test']['pass_at_1_greedy']:.1f}"
                          for h in runs.values())
        g, t = summary["gain_greedy_pass_at_1"], summary["test_gain_greedy_pass_at_1"]
        out.append(f"| {arm} | {moves} | {pts(g['median'])} [{pts(g['min'])}, {pts(g['max'])}] | {tests} | "
                   f"{pts(t['median'])} [{pts(t['min'])}, {pts(t['max'])}] | "
                   + median_of(summary["gain_sampled_pass_at_1"]["values"]) + " |")
    out.append(f"reach {100 * d['summary']['selftrain_share_of_oracle_gain']:.0f}% of the oracle's median greedy gain")
    for record in paired_claims(d["arms"]):  # recomputed from the stored per-problem outcomes
        c = claims.Claim(**{k: v for k, v in record.items() if k != "holds"})
        out.append(f"{c.compared}: {claim_phrase(c)}, per seed {per_seed(c.per_seed)}")
    return out


def acquisition_evidence() -> list[str]:
    w = load("acquisition_evidence")["summary"]["written"]
    g, q = w["gain"], w["written_questions"]
    ok = q["kept"] + q["surplus"]  # acceptable: used, or beyond the round's count ("surplus")
    seeds = lambda s: per_seed(s["values"])  # noqa: E731
    per_round = load("acquisition_evidence")["written"]["0"]["written_questions"][0]
    return [f"**{pts(g['real']['median'])}** {seeds(g['real'])}",
            f"{pts(g['written']['median'])} {seeds(g['written'])}: **{100 * w['share_of_real_gain']['median']:.0f}%**",
            f"| {pts(g['shown10']['median'])} {seeds(g['shown10'])} |",
            f"the model wrote {q['written']:,} questions", f"| acceptable | {ok:,} | {100 * ok / q['written']:.1f}% |",
            f"| malformed | {q['malformed']:,} |", f"| near duplicates | {q['near_duplicate']:,} |",
            f"| duplicates | {q['duplicate']:,} |", f"| leaks, caught by the guard | {q['leak']:,} | "
            f"{100 * q['leak'] / q['written']:.2f}% |", f"Of the acceptable ones, {q['used']:,} were used",
            f"{per_round['written']:,} questions written by the model each round, the first {per_round['used']:,} "
            f"acceptable ones used", *[f"{pts(t['median'])} {seeds(t)}" for t in w.get("test_gain", {}).values()],
            *acquisition_curriculum_and_variants(load("acquisition_evidence"))]


def acquisition_curriculum_and_variants(d: dict) -> list[str]:
    """The easy-to-hard tables (accuracy by steps; the 3-step test row), the variants table, and the paired
    test-split claims recomputed from the stored outcomes."""
    from benchmarks.acquisition_evidence import DEMO_ROUNDS, STEPS, part_claims

    med = lambda xs: pct(statistics.median(xs))  # noqa: E731
    out = []
    for part in ("curriculum", "curriculum_checked"):
        seeds = list(d.get(part, {}).values())
        if not seeds or not all(h.get("test_accuracy") is not None for x in seeds for h in x["same"]["history"]):
            continue
        last = str(DEMO_ROUNDS + 2)
        for steps in STEPS:
            at = lambda arm, r: [x[arm]["by_steps"][str(steps)][r] for x in seeds]  # noqa: E731
            out.append(f"| {steps}-step | {med(at('same', '0'))} | {med(at('same', str(DEMO_ROUNDS)))} | "
                       f"{med(at('same', last))} {per_seed(at('same', last), val)} | "
                       f"{med(at('harder', last))} {per_seed(at('harder', last), val)} |")
        test = lambda arm, r: [x[arm]["history"][r]["test_accuracy"] for x in seeds]  # noqa: E731
        out.append(f"| 3-step, untouched test | {med(test('same', 0))} | {med(test('same', DEMO_ROUNDS))} | "
                   f"{med(test('same', -1))} {per_seed(test('same', -1), val)} | "
                   f"{med(test('harder', -1))} {per_seed(test('harder', -1), val)} |")
    v = [x for x in d.get("variants", {}).values() if "histories" in x]
    if v:
        rounds = [str(r) for r in range(2, DEMO_ROUNDS + 1)]
        for arm, label in (("plain", "demo"), ("ladder", "*ladder*")):
            shares = [[x["trusted_later"][arm][r] for x in v] for r in rounds]
            out.append(f"| of the round-1 untrusted, trusted now: {label} | " + " | ".join(
                f"{med(s)} {per_seed(s, val)}" for s in shares) + " |")
            for split, key in (("dev", "accuracy"), ("test", "test_accuracy")):
                acc = [[x["histories"][arm][int(r)][key] for x in v] for r in rounds]
                out.append(f"| {split} greedy: {label} | " + " | ".join(f"{med(a)} {per_seed(a, val)}" for a in acc)
                           + " |")
        spent = {arm: [sum(h["compute_tokens"] or 0 for h in x["histories"][arm]) for x in v] for arm in ("plain", "ladder")}
        more = [a / b - 1 for a, b in zip(spent["ladder"], spent["plain"])]
        out.append(f"*ladder* spent {statistics.median(spent['ladder']) / 1e6:.2f}M tokens over the 4 rounds against the "
                   f"demo's {statistics.median(spent['plain']) / 1e6:.2f}M ({100 * statistics.median(more):+.0f}%)")
    for c in part_claims(d):
        out.append(f"{c.compared}: {claim_phrase(c)}, per seed {per_seed(c.per_seed)}")
    return out


def proposer_evidence() -> list[str]:
    """Each arm's row (dev and test gains by seed, generated and all tokens), the rate chosen on dev, and the paired
    test-set claims recomputed from the stored per-question outcomes."""
    from benchmarks.proposer_evidence import summarize

    d = load("proposer_evidence")
    s = summarize(d["jobs"])
    out = [f"chosen on dev: `{s['chosen_on_dev']}`"]
    for arm, a in s["arms"].items():
        if arm != "proposer":
            out.append(f"| {arm} | {median_of(a['dev_gain']['values'])} | {median_of(a['test_gain']['values'])} | "
                       f"{statistics.median(a['generated_tokens']['values']) / 1e6:.2f}M | "
                       f"{statistics.median(a['compute_tokens']['values']) / 1e6:.2f}M |")
    out += [f"{arm}: {100 * share:.0f}% of *real*'s median test gain" for arm, share in
            s["share_of_real_test_gain"].items() if arm in ("written", "proposer")]
    for r in s["proposed_by_round"][s["chosen_on_dev"]]:  # the difficulty by round, summed over seeds
        ops = r["operations_solved"]
        out.append(f"| {r['round']} | {r['questions']:,} | {r['verdicts'].get('malformed', 0):,} | "
                   f"{r['verdicts'].get('kept', 0):,} | {ops.get('1', 0):,} | {ops.get('2', 0):,} | "
                   f"{sum(v for k, v in ops.items() if k != 'None' and int(k) >= 3):,} | {r['mean_reward']:+.3f} | "
                   f"{r['mean_share_solved']:.2f} |")
    fast = s["proposed_by_round"].get("proposer-lr1e-3", [])
    out.append("malformed at 1e-3: " + ", ".join(f"{r['verdicts'].get('malformed', 0):,} of {r['questions']:,}"
                                                for r in fast))
    for record in s["claims"]:
        c = claims.Claim(**{k: v for k, v in record.items() if k != "holds"})
        out.append(f"{c.compared}: {claim_phrase(c)}, per seed {per_seed(c.per_seed)}")
    return out


def distill_evidence(name: str = "distill_evidence") -> list[str]:
    from benchmarks.distill_evidence import ARMS, student_claims

    d = load(name)
    s = d["summary"]
    spread = lambda k: f"{pct(s[k]['median'])} [{val(s[k]['min'])}, {val(s[k]['max'])}]"  # noqa: E731
    w = d["student_width"]
    runs = list(d["per_seed"].values())
    if all(h.get("test_accuracy") is not None for r in runs for h in r["distill"]):  # dev and test, every arm
        out = []
        for arm, _, label, _ in ARMS:
            if all(arm in r for r in runs):
                cells = [median_of([r[arm][i][key] for r in runs], val)
                         for key in ("accuracy", "test_accuracy") for i in (0, -1)]
                out.append(f"| {label.format(w=w)} | " + " | ".join(cells) + " |")
        for c in student_claims(d["per_seed"]):
            out.append(f"{claim_phrase(c)}, per seed {per_seed(c.per_seed)}")
        return out
    out = [f"| teacher (width 64), self-improvement | {spread('teacher_base')} | {spread('teacher_after')} |",
           f"| student (width {w}), distilled from the teacher | {spread('student_before')} | "
           f"**{spread('student_after')}** |",
           f"| student, labelled seed set only (control) | {pct(s['student_before']['median'])} | "
           f"{spread('control_after')} |"]
    for c in student_claims(d["per_seed"]):
        out.append(f"{claim_phrase(c)}, per seed {per_seed(c.per_seed)}")
    return out


def monitor_evidence() -> list[str]:
    """Each arm's row over the seeds, and the paired fresh-test claims pooled over them, recomputed from the
    stored outcomes: what the monitors add to the checked vote, what the checked vote adds to the plain one,
    and the monitor's chosen round against its own last round."""
    seeds = load("monitor_evidence")["seeds"]
    out = []
    for arm in ("on", "checked_vote", "off"):
        runs = [s["arms"][arm] for s in seeds.values()]
        anchor = [{h["round"]: h["anchor_accuracy"] for h in a["history"]}[a["final_round"]] for a in runs]
        out.append(f"| {arm} | {per_seed([a['best_accuracy'] - a['base_accuracy'] for a in runs])} | "
                   f"{per_seed([a['final_accuracy'] - a['base_accuracy'] for a in runs])} | "
                   f"{', '.join(str(a['final_round']) for a in runs)} | {per_seed(anchor, val)} | "
                   f"{per_seed([a['fresh_test_accuracy_final'] for a in runs], val)} |")

    def outcomes(arm: str, round_of) -> dict:
        return {k: s["arms"][arm]["fresh_test_outcomes"][str(round_of(s["arms"][arm]))] for k, s in seeds.items()}
    final, last = (lambda a: a["final_round"]), (lambda a: a["rounds_run"])
    for c in (claims.paired("on vs checked_vote", outcomes("on", final), outcomes("checked_vote", final)),
              claims.paired("checked_vote vs off", outcomes("checked_vote", final), outcomes("off", final)),
              claims.paired("on, chosen round vs its last round", outcomes("on", final), outcomes("on", last))):
        out.append(f"{c.compared}: {claim_phrase(c)}, per seed {per_seed(c.per_seed)}")
    out.append(f"fresh test at the base: {per_seed([s['arms']['on']['fresh_test_accuracy_base'] for s in seeds.values()], val)}")
    return out


def resume_cost() -> list[str]:
    d = load("resume_cost")
    points = d["points"]
    redone = sorted(p["redone_s"] for p in points.values())
    beyond = ", ".join(f"{p['redone_beyond_startup_s']:+.1f}" for p in points.values())
    return [f"{d['uninterrupted_s']:.0f} CPU s uninterrupted", f"start-up (imports, model load, the checks), which "
            f"every resume pays, is {d['startup_s']:.1f} s",
            "redone (T + R - U) " + ", ".join(f"{name} {p['redone_s']:.1f} s" for name, p in points.items()),
            f"at most {redone[-1]:.1f} s", f"kill redid {beyond} CPU seconds"]


def lm_eval_agreement() -> list[str]:
    d = load("lm_eval_agreement")
    rows, s = d["questions"], d["summary"]
    n = len(rows)
    raw = sum(r["selfimprove_text"] == r["lm_eval_text"] for r in rows)
    return [f"identical generated text on {round(s['identical_text'] * n)} of {n} questions after stripping "
            f"trailing whitespace ({raw} of {n} byte for byte",
            f"the same extracted answer on {sum(r['same_answer'] for r in rows)} of {n}",
            f"read an answer in {100 * s['lm_eval_strict_answers']:.0f}%", f"extraction in {100 * s['selfimprove_answers']:.0f}%"]


def lm_eval_math_agreement() -> list[str]:
    kinds = load("lm_eval_math_agreement")["per_kind"].values()
    rows = sum(k["rows"] for k in kinds)
    return [f"exact_match` on {sum(k['agree_exact_match'] for k in kinds)} of {rows}",
            f"`math_verify` on {sum(k['agree_math_verify'] for k in kinds)} of {rows}"]


def gates_ablation() -> list[str]:
    d = load("gates_ablation")
    rows = {r["combination"]: r for r in d["rows"]}
    out = [f"{d['samples']:,} paths of round {d['round']}"]
    for name in ("none", "majority", "majority+arithmetic", "all"):
        r = rows[name]
        out.append(f"| {name} | {r['kept_samples']:,} | {r['kept_questions']:,} | {pct(r['precision'])} |")
    return out


def generation() -> list[str]:
    return [f"| {r['baseline_samples_per_s']:.1f} samples/s | {r['backend_samples_per_s']:.1f} samples/s | "
            f"**{r['speedup']:.1f}x** |" for r in load("generation")["rows"]]


def http_vs_inprocess() -> list[str]:
    d = load("http_vs_inprocess")
    return [f"made {d['transformers']['samples_per_s']:.2f} samples/s",
            f"HTTP backend {d['http_llama_cpp']['samples_per_s']:.2f} ({d['http_over_inprocess']:.2f}x",
            f"{d['ray_1_workers']['samples_per_s']:.2f} samples/s with one worker and "
            f"{d['ray_2_workers']['samples_per_s']:.2f} with two ({d['ray_2_over_1']:.2f}x"]


def sandbox_throughput() -> list[str]:
    a = load("sandbox_throughput")["arms"]
    return [f"{a[0]['programs_per_second']:.1f} programs/s serially, {a[1]['programs_per_second']:.1f}/s with 2 at once "
            f"({a[1]['speedup']:.2f}x), {a[2]['programs_per_second']:.1f}/s with 4 ({a[2]['speedup']:.2f}x"]


def round_memory() -> list[str]:
    s = load("round_memory")["sides"]
    return [f"**{s['this checkout']['peak_rss_mb']:.0f} MB** | **{s['this checkout']['model_loads']}** |",
            f"{s['baseline']['peak_rss_mb']:.0f} MB | {s['baseline']['model_loads']} |"]


def refinement_evidence() -> list[str]:
    a = load("refinement_evidence")["arms"]
    return [f"| {pct(a[arm]['pass_at_k'])} | {pct(a[arm]['vote_coverage'])} | {pct(a[arm]['pseudo_label_accuracy'])} | "
            f"{a[arm]['generated_tokens']:,} |" for arm in ("plain", "augmented", "debate")]


def demo_time() -> list[str]:
    d = load("demo_time")
    rows = [f"| {r['seed']} | {pct(r['base'])} | {pct(r['final'])} | {r['gain_points']:+.1f} | {r['wall_seconds']:.0f} s |"
            for r in d["rows"]]
    median = statistics.median(r["gain_points"] for r in d["rows"])
    return rows + [f"at most {d['max_wall_seconds']:.0f} s", f"Median gain **{median:+.1f} points**"]


def thread_default() -> list[str]:
    by_load = {s["load"]: {int(t): v for t, v in s["seconds_by_threads"].items()} for s in load("thread_default")["summary"]}
    idle, busy = by_load[0], by_load[1]
    return [f"{idle[1] / idle[2]:.2f}x faster with 2 threads than with 1 on an idle machine",
            f"{busy[2] / busy[1]:.2f}x slower with 2 beside one other busy process"]


def engine_race() -> list[str]:
    d = load("engine_race")
    by = {(r["engine"], r["threads"]): r for r in d["rows"]}
    out = [f"{d['wall_seconds'] / 60:.0f} minutes on an idle 2-core machine",
           f"{by['transformers', 1]['matmul_gflops']:.1f} and {by['transformers', 2]['matmul_gflops']:.1f} GFLOP/s",
           f"ran on the first {d['baseline_questions']} questions", f"{d['questions']} GSM8K chat prompts"]
    for engine in ("transformers", "vllm-cpu", "hf-k", "hf-loop"):
        one, two = by[engine, 1], by[engine, 2]
        cells = [f"{one['tokens_per_s']:.1f}", f"{two['tokens_per_s']:.1f}",
                 f"{one['flop_share']:.0%} / {two['flop_share']:.0%}"]
        if engine == "transformers":  # the winner's row is in bold
            cells = [f"**{c}**" for c in cells]
        out.append("| " + " | ".join(cells) + " |")
    return out


CHECKS = {
    "real_model_gain": real_model_gain, "real_model_gain_arithmetic": real_model_gain_arithmetic,
    "real_model_competence": real_model_competence,
    "real_model_competence_equations": real_model_competence_equations, "own_exemplars": own_exemplars,
    "embedded_evidence": embedded_evidence, "rl_evidence": rl_evidence, "code_evidence": code_evidence,
    "acquisition_evidence": acquisition_evidence, "proposer_evidence": proposer_evidence,
    "distill_evidence": distill_evidence,
    "distill_evidence_w48": lambda: distill_evidence("distill_evidence_w48"), "monitor_evidence": monitor_evidence,
    "rl_knobs": rl_knobs, "resume_cost": resume_cost, "lm_eval_agreement": lm_eval_agreement, "lm_eval_math_agreement": lm_eval_math_agreement,
    "gates_ablation": gates_ablation, "generation": generation, "http_vs_inprocess": http_vs_inprocess,
    "sandbox_throughput": sandbox_throughput, "round_memory": round_memory, "refinement_evidence": refinement_evidence,
    "demo_time": demo_time, "thread_default": thread_default, "engine_race": engine_race,
}


def normalized(text: str) -> str:
    return " ".join(text.split())


def pages() -> dict[str, str]:
    """The documentation a phrase may stand in: README.md and every docs/*.md, by path, whitespace-normalized."""
    paths = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return {str(p.relative_to(ROOT)): normalized(p.read_text()) for p in paths}


def where(phrase: str, texts: dict[str, str]) -> str | None:
    """The first page (README.md, then docs/*.md by name) that contains `phrase`, or None when none does."""
    return next((path for path, text in texts.items() if normalized(phrase) in text), None)


def missing(name: str, texts: dict[str, str] | None = None) -> list[str]:
    """The phrases result file `name` gives that no page of the documentation contains (`texts`: path ->
    text, default `pages()`)."""
    texts = pages() if texts is None else {path: normalized(text) for path, text in texts.items()}
    return [p for p in CHECKS[name]() if where(p, texts) is None]


def main() -> None:
    texts = pages()
    for name, check in CHECKS.items():
        for phrase in check():
            page = where(phrase, texts)
            print(f"{'MISSING' if page is None else 'ok ' + page} {name}: {phrase}")


if __name__ == "__main__":
    main()
