"""Human review: export, import with validation and a change log, the next round honours the marks; dataset export."""

import csv
import json

import pytest
from fake_run import make_run
from hub_server import HubStandIn, point_at

from selfimprove.outputs.publish import export_dataset, push
from selfimprove.records import Sample, from_row
from selfimprove.review import ReviewError, apply_marks, export, import_marks
from selfimprove.rundir.store import RunStore


def test_export_import_round_trip_records_every_change(tmp_path):
    make_run(tmp_path)
    out = tmp_path / "review.csv"
    assert export(tmp_path, 1, out) == 9  # kept only
    assert export(tmp_path, 1, tmp_path / "all.jsonl", dropped=True) == 20
    rows = list(csv.DictReader(out.open()))
    rows[0]["decision"], rows[0]["note"] = "reject", "2+2 is not 1"
    rows[1]["decision"] = "accept"
    with out.open("w") as f:
        writer = csv.DictWriter(f, fieldnames=rows[0].keys())
        writer.writeheader()
        writer.writerows(rows)
    result = import_marks(tmp_path, out, reviewer="ana")
    assert (result.changed, result.unmarked, result.problems) == (2, 7, [])
    assert import_marks(tmp_path, out, reviewer="ana").unchanged == 2  # importing again changes nothing
    rows[0]["decision"] = "accept"
    with out.open("w") as f:
        writer = csv.DictWriter(f, fieldnames=rows[0].keys())
        writer.writeheader()
        writer.writerows(rows)
    import_marks(tmp_path, out, reviewer="bo")
    store = RunStore(tmp_path)
    log = store.read_jsonl("review/log.jsonl")
    assert [(e["reviewer"], e["before"], e["after"]) for e in log] == [("ana", None, "reject"), ("ana", None, "accept"),
                                                                      ("bo", "reject", "accept")]
    assert {m["decision"] for m in store.read_jsonl("review/marks.jsonl")} == {"accept"}


def test_bad_review_rows_are_named_and_valid_ones_kept(tmp_path):
    make_run(tmp_path)
    out = tmp_path / "r.jsonl"
    export(tmp_path, 1, out)
    good = json.loads(out.read_text().splitlines()[0])
    lines = [json.dumps({**good, "decision": "reject"}), "{not json", json.dumps({**good, "id": "r01|q9|x|0",
             "decision": "accept"}), json.dumps({**good, "decision": "maybe"}), json.dumps({"decision": "accept"}),
             json.dumps({**good, "id": "r07|q0|cot_zeroshot|0", "decision": "accept"})]
    out.write_text("\n".join(lines) + "\n")
    result = import_marks(tmp_path, out)
    assert result.changed == 1
    assert result.problems == ["line 2: not valid JSON", "line 3: unknown id 'r01|q9|x|0' (not a path of this run)",
                               "line 4: decision 'maybe' must be accept, reject or blank", "line 5: no 'id'",
                               "line 6: unknown id 'r07|q0|cot_zeroshot|0' (not a path of this run)"]
    with pytest.raises(ReviewError, match="does not exist"):
        import_marks(tmp_path, tmp_path / "nope.jsonl")
    with pytest.raises(ReviewError, match="round 5 has no complete verdicts"):
        export(tmp_path, 5, tmp_path / "x.jsonl")


def test_next_round_training_data_honours_marks(tmp_path):
    make_run(tmp_path)
    out = tmp_path / "r.jsonl"
    export(tmp_path, 1, out, dropped=True)
    rows = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    rows["r01|q0|cot_zeroshot|0"]["decision"] = "reject"  # q0's pseudo-label "0" is wrong, says the reviewer
    rows["r01|q3|cot_zeroshot|1"]["decision"] = "accept"  # a dropped path the reviewer vouches for
    out.write_text("".join(json.dumps(r) + "\n" for r in rows.values()))
    import_marks(tmp_path, out)
    store = RunStore(tmp_path)
    kept = [from_row(Sample, s) for s in store.read_jsonl("rounds/r02/samples.jsonl") if s["answer"] in ("0", "2")]
    filtered, added, rejected = apply_marks(store, 2, kept, "The answer is")
    assert {s.question_id for s in filtered} == {"q1"} and rejected == {("q0", "0")}
    assert [(p.question_id, p.answer, p.rationale) for p in added] == [("q3", "7", "Step 1 for q3.")]
    applied = store.read_json("rounds/r02/review_applied.json")
    assert applied["kept_paths_removed"] == 4 and applied["accepted_paths_added"] == 1
    assert apply_marks(store, 1, kept, "The answer is")[0] == kept  # a round's own marks apply to later rounds


def test_train_stage_uses_the_marks(tmp_path, tiny_model):
    from rich.console import Console

    from selfimprove.adapt.examples import training_set
    from selfimprove.config import parse_config
    from selfimprove.context import Collected, RunContext
    from selfimprove.prompts import PromptStyle
    from selfimprove.records import Item
    from selfimprove.tasks import get_task

    store = make_run(tmp_path)
    (tmp_path / "marks.jsonl").write_text(json.dumps({"id": "r01|q1|cot_zeroshot|0", "decision": "reject"}) + "\n")
    import_marks(tmp_path, tmp_path / "marks.jsonl")
    cfg = parse_config({"model": {"name": tiny_model}, "adapt": {"max_steps": 1, "batch_size": 2, "max_length": 64,
                                                                  "formats": {"cot_zeroshot": 1.0}}})
    pool = [Item(r["id"], r["question"]) for r in store.read_jsonl("pool.jsonl")]
    samples = [from_row(Sample, s) for s in store.read_jsonl("rounds/r02/samples.jsonl")]
    verdicts = store.read_jsonl("rounds/r02/verdicts.jsonl")
    store.remove("rounds/r02/train.jsonl")
    ctx = RunContext(cfg, store, get_task("gsm8k"), None, Collected(pool, {}, [], []), PromptStyle([], False),
                     Console())
    training_set(ctx, 2, samples, verdicts, pool)
    train = store.read_jsonl("rounds/r02/train.jsonl")
    assert train and not [e for e in train if e["question_id"] == "q1"]


def test_kept_examples_load_as_a_dataset_and_push_uploads_the_folder(tmp_path, monkeypatch):
    from datasets import load_dataset
    from test_errors_cli import cli

    run = tmp_path / "run"
    make_run(run)
    folder = export_dataset(run)
    data = load_dataset(str(folder))
    assert sorted(data) == ["r01", "r02"] and len(data["r01"]) == 9
    assert data["r01"][0]["completion"].endswith("The answer is 0.")
    local = {p.name: p.read_bytes() for p in folder.iterdir()}
    hub = HubStandIn()  # the real huggingface_hub client, talking HTTP to a stand-in of the Hub on loopback
    try:
        point_at(hub, monkeypatch)
        assert push(run, "me/data") == f"{hub.url}/datasets/me/data"
        repo = hub.repos[("dataset", "me/data")]
        assert repo.private and repo.files == local and len(repo.commits) == 1
        arrived = tmp_path / "arrived"
        arrived.mkdir()
        for name, content in repo.files.items():
            (arrived / name).write_bytes(content)
        uploaded = load_dataset(str(arrived))
        assert {s: uploaded[s].to_list() for s in uploaded} == {s: data[s].to_list() for s in data}
        push(run, "me/data")  # again: the repository exists and nothing changed, so no second commit
        assert len(repo.commits) == 1 and repo.files == local

        # The command line, as a user runs it: the Hub and the token from the environment.
        result = cli("push", run, "me/open-data", "--public", HF_ENDPOINT=hub.url, HF_TOKEN=hub.token,
                     HF_HUB_OFFLINE="0")
        assert result.returncode == 0, result.stderr
        assert f"pushed to {hub.url}/datasets/me/open-data" in result.stdout
        assert not hub.repos[("dataset", "me/open-data")].private
        assert hub.repos[("dataset", "me/open-data")].files == local
        result = cli("push", run, "me/refused", HF_ENDPOINT=hub.url, HF_TOKEN="hf_wrong", HF_HUB_OFFLINE="0")
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
        assert "401 Unauthorized" in result.stderr and "token was refused" in result.stderr
        assert "HF_TOKEN" in result.stderr and "hf auth login" in result.stderr
        assert ("dataset", "me/refused") not in hub.repos
    finally:
        hub.stop()


# ---------------------------------------------------------------- review files saved by spreadsheets

def spreadsheet_csv(run, out, encoding, delimiter=",", notes=("café – naïve", "")):
    """A run's exported CSV with two marks, saved as a spreadsheet would: in `encoding`, with `delimiter`."""
    make_run(run)
    export(run, 1, out)
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    rows[0]["decision"], rows[0]["note"] = "Reject", notes[0]
    rows[1]["decision"], rows[1]["note"] = "accept", notes[1]
    with out.open("w", encoding=encoding, newline="") as f:
        writer = csv.DictWriter(f, fieldnames=rows[0].keys(), delimiter=delimiter, lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(rows)
    return rows


@pytest.mark.parametrize("encoding", ["utf-8-sig", "cp1252"])
def test_csv_saved_by_a_spreadsheet_imports(tmp_path, encoding):
    out = tmp_path / "review.csv"
    rows = spreadsheet_csv(tmp_path, out, encoding)
    assert out.read_bytes().startswith(b"\xef\xbb\xbfid,") == (encoding == "utf-8-sig")
    result = import_marks(tmp_path, out, reviewer="ana")
    assert (result.changed, result.unmarked, result.problems) == (2, 7, [])
    if encoding == "cp1252":  # read anyway, and the reviewer is told how it was read
        assert len(result.notes) == 1 and "not UTF-8 (line 2 first)" in result.notes[0]
        assert "Windows-1252" in result.notes[0] and "save the file as UTF-8" in result.notes[0]
    else:
        assert result.notes == []
    marks = {m["id"]: m for m in RunStore(tmp_path).read_jsonl("review/marks.jsonl")}
    assert (marks[rows[0]["id"]]["decision"], marks[rows[0]["id"]]["note"]) == ("reject", "café – naïve")


def test_semicolon_csv_with_multiline_notes_names_the_right_lines(tmp_path):
    out = tmp_path / "review.csv"
    rows = spreadsheet_csv(tmp_path, out, "utf-8-sig", delimiter=";", notes=("first line\nsecond line", ""))
    text = out.read_text(encoding="utf-8-sig").replace(f"{rows[2]['id']};;", f"{rows[2]['id']};maybe;")
    out.write_text(text + ";;;;;;;;;;;\r\n", encoding="utf-8-sig")  # and a blank spreadsheet row
    result = import_marks(tmp_path, out)
    assert result.changed == 2
    assert result.problems == ["line 5: decision 'maybe' must be accept, reject or blank"]  # row 3 starts on line 5


def test_unreadable_review_files_are_one_clear_error(tmp_path):
    make_run(tmp_path)
    out = tmp_path / "review.csv"
    # 0x81 is neither UTF-8 on its own nor a Windows-1252 character.
    out.write_bytes(b"id,decision,note\r\nr01|q0|cot_zeroshot|0,accept,\r\nr01|q0|cot_zeroshot|1,accept,a\x81b\r\n")
    with pytest.raises(ReviewError, match=r"review\.csv:3: not UTF-8 text \(byte 0x81 at offset 79\) nor Windows-1252"
                                          r".*save it as UTF-8"):
        import_marks(tmp_path, out)
    out.write_bytes(b"\xef\xbb\xbf" + out.read_bytes().replace(b"\x81", b"\xe9"))  # UTF-8 BOM, then a cp1252 byte
    with pytest.raises(ReviewError, match=r"review\.csv:3: not UTF-8 text \(byte 0xe9 at offset 82\); save"):
        import_marks(tmp_path, out)
    out.write_text("question,decision\nWhat?,accept\n")
    with pytest.raises(ReviewError, match=r"review\.csv:1: the header has no 'id' column \(columns: question, decision\)"):
        import_marks(tmp_path, out)


def test_cli_review_import_prints_the_notes_on_the_file(tmp_path):
    from typer.testing import CliRunner

    from selfimprove.cli import app

    out = tmp_path / "review.csv"
    spreadsheet_csv(tmp_path, out, "cp1252")
    result = CliRunner().invoke(app, ["review", "import", str(tmp_path), str(out), "--reviewer", "ana"])
    assert result.exit_code == 0, result.output
    assert "Windows-1252" in result.output and str(out) in result.output.replace("\n", "")
    assert "2 mark(s) recorded" in result.output
