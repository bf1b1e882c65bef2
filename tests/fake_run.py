"""A small run directory written through RunStore with made-up rows: for report and review tests (no model)."""

from selfimprove.rundir.store import RunStore

QUESTIONS = {f"q{i}": f"Question {i}: what is {i} + {i}?" for i in range(5)}


def sample(qid, r, i, answer, text=None):
    return {"question_id": qid, "round": r, "index": i, "prompt_format": "cot_zeroshot", "seed": 0, "model": "m",
            "adapter": None, "text": text or f"Step {i} for {qid}. The answer is {answer}.", "answer": answer,
            "num_tokens": 10 + i, "truncated": False, "logprob": -3.0}


def write_round(store, r, answers):
    """answers: question id -> the K sampled answers. Majority wins; a sample is kept if it agrees."""
    samples, votes, verdicts, train = [], [], [], []
    for qid, ks in answers.items():
        counts = {a: ks.count(a) for a in ks if a is not None}
        top = max(counts, key=counts.get) if counts else None
        share = counts[top] / sum(counts.values()) if counts else 0.0
        votes.append({"question_id": qid, "round": r, "answer": top, "share": share, "num_votes": sum(counts.values()),
                      "num_abstain": ks.count(None), "counts": counts})
        for i, a in enumerate(ks):
            s = sample(qid, r, i, a)
            samples.append(s)
            kept = a is not None and a == top
            verdicts.append({"question_id": qid, "round": r, "index": i, "prompt_format": "cot_zeroshot", "answer": a,
                             "kept": kept, "reason": "kept" if kept else "failed majority",
                             "gates": {"majority": {"passed": kept, "reason": "" if kept else "disagrees", "score": None}}})
            if kept:
                train.append({"question_id": qid, "round": r, "sample_index": i, "format": "cot_zeroshot",
                              "prompt": f"Q: {QUESTIONS[qid]}\nA:", "completion": s["text"], "answer": a})
    rd = f"rounds/r{r:02d}"
    store.write_jsonl(f"{rd}/samples.jsonl", samples)
    store.write_jsonl(f"{rd}/votes.jsonl", votes)
    store.write_jsonl(f"{rd}/verdicts.jsonl", verdicts)
    store.write_jsonl(f"{rd}/train.jsonl", train)
    store.write_json(f"{rd}/metrics.json", {"round": r, "accuracy": 0.2 * r, "majority_accuracy": 0.25 * r,
                                            "pass_at_k": 0.3 * r, "agreement": 0.7, "pseudo_label_accuracy": 0.6,
                                            "kept": sum(v["kept"] for v in verdicts), "distinct_2": 0.5,
                                            "mean_tokens": 12.0, "decision": "continue"})


def make_run(root) -> RunStore:
    store = RunStore(root)
    store.write_jsonl("pool.jsonl", [{"id": k, "question": q, "gold": None} for k, q in QUESTIONS.items()])
    store.write_jsonl("pool_gold.jsonl", [{"id": f"q{i}", "gold": str(2 * i)} for i in range(5)])
    store.write_json("rounds/r00/metrics.json", {"round": 0, "accuracy": 0.1, "majority_accuracy": 0.1})
    write_round(store, 1, {"q0": ["0", "0", "1", None], "q1": ["2", "2", "2", "2"], "q2": ["5", "5", "4", "3"],
                           "q3": ["6", "7", "8", "9"], "q4": [None, None, None, None]})
    write_round(store, 2, {"q0": ["0", "0", "0", "0"], "q1": ["2", "2", "2", "3"], "q2": ["4", "4", "5", "4"],
                           "q3": ["6", "6", "8", "9"], "q4": ["8", None, None, None]})
    return store
