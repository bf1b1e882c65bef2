"""Human review: export a round's kept (and dropped) paths, import a person's accept/reject marks.

Reads `rounds/rNN/{samples,votes,verdicts}.jsonl` and `pool.jsonl`; writes the export file the
reviewer edits (JSONL or CSV, one row per path, `decision` left blank), `review/marks.jsonl`
(the latest mark per path) and `review/log.jsonl` (every change: who, when, from which file,
before and after). Later rounds honour the marks when they build their training data
(`apply_marks`): an accepted path is trained on like a replay example, and a rejected path's
answer is never trained on again for that question (a reviewer rejecting a path usually means
its pseudo-label is wrong, and later rounds would otherwise relearn it).

The export is UTF-8. An edited file may come back as a spreadsheet saves it: UTF-8 with a
byte-order mark, Windows-1252 (read with a note in `ImportResult.notes`), or semicolon-separated.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from selfimprove.rundir import layout
from selfimprove.rundir.store import RunStore

DECISIONS = ("accept", "reject")
COLUMNS = ("id", "decision", "note", "round", "question_id", "question", "rationale", "answer", "vote_answer",
           "vote_share", "kept", "reason")


class ReviewError(ValueError):
    pass


def example_id(round_: int, question_id: str, prompt_format: str, index: int) -> str:
    return f"r{round_:02d}|{question_id}|{prompt_format}|{index}"


def _round_rows(store: RunStore, round_: int) -> dict[str, dict]:
    """Every path of a round, by example id, with its question, vote and verdict."""
    def name(file: str) -> str:
        return layout.round_file(round_, file)

    if not store.done(name(layout.VERDICTS)):
        raise ReviewError(f"{store.root}: round {round_} has no complete verdicts.jsonl yet; run (or resume) "
                          "the run until that round has been curated")
    pool = name(layout.ROUND_POOL) if store.done(name(layout.ROUND_POOL)) else layout.POOL
    question = {r["id"]: r["question"] for r in store.read_jsonl(pool)}
    vote = {v["question_id"]: v for v in store.read_jsonl(name(layout.VOTES))}
    rows = {}
    for s, v in zip(store.read_jsonl(name(layout.SAMPLES)), store.read_jsonl(name(layout.VERDICTS))):
        eid = example_id(round_, s["question_id"], s["prompt_format"], s["index"])
        rows[eid] = {"id": eid, "decision": "", "note": "", "round": round_, "question_id": s["question_id"],
                     "question": question.get(s["question_id"], ""), "rationale": s["text"], "answer": s["answer"],
                     "vote_answer": vote[s["question_id"]]["answer"], "vote_share": vote[s["question_id"]]["share"],
                     "kept": v["kept"], "reason": v["reason"]}
    return rows


def export(run_dir: str | Path, round_: int, out: str | Path, dropped: bool = False) -> int:
    """Write the round's kept paths (and dropped ones when asked) for review. Returns the row count."""
    store = RunStore(run_dir)
    rows = [r for r in _round_rows(store, round_).values() if r["kept"] or dropped]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
        out.write_text(buf.getvalue(), encoding="utf-8")
    else:
        out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return len(rows)


def _read_text(path: Path) -> tuple[str, list[str]]:
    """The file's text and a note when it was not UTF-8.

    Spreadsheets save CSV as UTF-8 with a byte-order mark ("CSV UTF-8", which utf-8-sig strips) or,
    on Windows, in the ANSI code page, nearly always cp1252: such a file is read as cp1252, with a
    note, because its ids and decisions are ASCII either way and only the notes could be garbled.
    """
    if not path.exists():
        raise ReviewError(f"review file {path} does not exist")
    data = path.read_bytes()
    bom = data.startswith(codecs.BOM_UTF8)
    try:
        return data.decode("utf-8-sig"), []
    except UnicodeDecodeError as err:
        bad = err.start + (3 if bom else 0)  # utf-8-sig counts from after the BOM
    line = data.count(b"\n", 0, bad) + 1
    if not bom:  # a file that says it is UTF-8 and is not is damaged, not in another code page
        try:
            return data.decode("cp1252"), [
                f"{path} is not UTF-8 (line {line} first); read it as Windows-1252 (cp1252). If accented letters "
                "in the notes look wrong in review/marks.jsonl, save the file as UTF-8 (in a spreadsheet: "
                "\"CSV UTF-8\") and import it again"]
        except UnicodeDecodeError:
            pass
    also = "" if bom else " nor Windows-1252"
    raise ReviewError(f"{path}:{line}: not UTF-8 text (byte 0x{data[bad]:02x} at offset {bad}){also}; "
                      "save it as UTF-8 (in a spreadsheet: \"CSV UTF-8\") and import it again")


def _read_csv(path: Path, text: str) -> list[tuple[int, dict]]:
    """(first line of the record, row) pairs. Rationales span lines, so numbers come from the reader."""
    first_line = text.split("\n", 1)[0]
    # Spreadsheets in locales with a decimal comma save CSV with semicolons.
    delimiter = max((",", ";", "\t"), key=first_line.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = next(reader, [])
    if "id" not in header:
        raise ReviewError(f"{path}:1: the header has no 'id' column (columns: {', '.join(header) or 'none'}); "
                          "import the file `selfimprove review export` wrote, keeping its header row")
    rows, start = [], reader.line_num + 1
    for record in reader:
        if any(value.strip() for value in record):  # spreadsheets write blank rows as ",,,,"
            rows.append((start, dict(zip(header, record))))
        start = reader.line_num + 1
    return rows


def _read_marks_file(path: Path) -> tuple[list[tuple[int, dict]], list[str], list[str]]:
    """(line number, row) pairs, the problems of rows that could not be read, and notes on the file."""
    text, notes = _read_text(path)
    if path.suffix == ".csv":
        return _read_csv(path, text), [], notes
    rows, problems = [], []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            problems.append(f"line {n}: not valid JSON")
            continue
        if not isinstance(row, dict):
            problems.append(f"line {n}: not a JSON object")
            continue
        rows.append((n, row))
    return rows, problems, notes


@dataclass
class ImportResult:
    changed: int = 0
    unchanged: int = 0
    unmarked: int = 0  # rows with a blank decision: not reviewed yet
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # about the file as a whole (read as cp1252); not errors


def import_marks(run_dir: str | Path, path: str | Path, reviewer: str = "") -> ImportResult:
    """Record every valid accept/reject mark of `path`; name each invalid row (valid ones are kept)."""
    store = RunStore(run_dir)
    path = Path(path)
    rows, problems, notes = _read_marks_file(path)
    marks = {m["id"]: m for m in load_marks(store)}
    log = store.read_jsonl(layout.REVIEW_LOG) if store.done(layout.REVIEW_LOG) else []
    known: dict[int, dict[str, dict]] = {}
    result = ImportResult(problems=problems, notes=notes)
    now = time.strftime("%Y-%m-%dT%H:%M:%S")
    for n, row in rows:
        eid, decision = str(row.get("id") or ""), str(row.get("decision") or "").strip().lower()
        if not eid:
            result.problems.append(f"line {n}: no 'id'")
            continue
        try:
            round_ = int(eid.split("|", 1)[0].removeprefix("r"))
            if round_ not in known:
                known[round_] = _round_rows(store, round_)
        except (ValueError, ReviewError):
            result.problems.append(f"line {n}: unknown id {eid!r} (not a path of this run)")
            continue
        if eid not in known[round_]:
            result.problems.append(f"line {n}: unknown id {eid!r} (not a path of this run)")
            continue
        if decision == "":
            result.unmarked += 1
            continue
        if decision not in DECISIONS:
            result.problems.append(f"line {n}: decision {row.get('decision')!r} must be accept, reject or blank")
            continue
        before = marks.get(eid)
        note = str(row.get("note") or "")
        if before and before["decision"] == decision and before["note"] == note:
            result.unchanged += 1
            continue
        path_row = known[round_][eid]
        marks[eid] = {"id": eid, "round": round_, "question_id": path_row["question_id"],
                      "index": int(eid.rsplit("|", 1)[1]), "question": path_row["question"],
                      "rationale": path_row["rationale"], "answer": path_row["answer"], "was_kept": path_row["kept"],
                      "decision": decision, "note": note, "reviewer": reviewer, "time": now}
        log.append({"time": now, "reviewer": reviewer, "file": str(path), "line": n, "id": eid,
                    "before": before["decision"] if before else None, "after": decision, "note": note})
        result.changed += 1
    if result.changed:
        store.write_jsonl(layout.REVIEW_MARKS, sorted(marks.values(), key=lambda m: m["id"]))
        store.write_jsonl(layout.REVIEW_LOG, log)
    return result


def load_marks(store: RunStore) -> list[dict]:
    store = RunStore(store.root)  # marks may have been imported by another process since `store` was opened
    return store.read_jsonl(layout.REVIEW_MARKS) if store.done(layout.REVIEW_MARKS) else []


def apply_marks(store: RunStore, round_: int, kept: list, answer_prefix: str):
    """Round `round_`'s kept samples filtered by earlier rounds' marks, the accepted paths to add,
    and the rejected (question_id, answer) pairs. Writes what was applied to `review_applied.json`."""
    from selfimprove.prompts import rationale_of
    from selfimprove.records import TrustedPath

    marks = [m for m in load_marks(store) if m["round"] < round_]
    if not marks:
        return kept, [], set()
    rejected = {(m["question_id"], m["answer"]) for m in marks if m["decision"] == "reject"}
    accepted = [m for m in marks if m["decision"] == "accept" and m["answer"] is not None]
    filtered = [s for s in kept if (s.question_id, s.answer) not in rejected]
    paths = [TrustedPath(m["question_id"], m["question"], rationale_of(m["rationale"], answer_prefix), m["answer"],
                         m["index"]) for m in accepted]
    store.write_json(layout.round_file(round_, layout.REVIEW_APPLIED), {
        "marks": len(marks), "accepted_paths_added": len(paths), "rejected_answers": sorted(map(list, rejected)),
        "kept_paths_removed": len(kept) - len(filtered)})
    return filtered, paths, rejected
