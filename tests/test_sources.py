"""Reading rows from files, directories and the Hub, and the one clear error for each kind of bad input.
Writes small data files under pytest's tmp_path only."""

from __future__ import annotations

import json

import pytest

from selfimprove.tasks import get_task
from selfimprove.tasks.base import Fields
from selfimprove.tasks.sources import DataError


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


GSM8K = get_task("gsm8k")


# ---------------------------------------------------------------- formats that load

def test_jsonl(tmp_path):
    f = write(tmp_path / "q.jsonl", '{"question": "1+1?", "answer": "2"}\n\n{"question": "2+2?", "answer": "#### 4"}\n')
    items = GSM8K.load(f)
    assert [(it.id, it.question, it.gold) for it in items] == [("gsm8k/train/0", "1+1?", "2"),
                                                               ("gsm8k/train/1", "2+2?", "4")]


def test_json_array_and_json_lines_with_json_extension(tmp_path):
    rows = [{"question": "a?", "answer": 1}, {"question": "b?", "answer": 2.5}]
    array = write(tmp_path / "array.json", json.dumps(rows, indent=2))
    lines = write(tmp_path / "lines.json", "\n".join(json.dumps(r) for r in rows))
    assert [it.gold for it in GSM8K.load(array)] == ["1", "2.5"]
    assert [it.gold for it in GSM8K.load(lines)] == ["1", "2.5"]


def test_csv_with_field_mapping_and_ids(tmp_path):
    f = write(tmp_path / "mine.csv", 'uid,Problem,Label\nx1,"How many, in total?","1,000"\nx2,Half of 3?,1.5\n')
    items = GSM8K.load(f, fields=Fields(question="Problem", answer="Label", id="uid"))
    assert [(it.id, it.question, it.gold) for it in items] == [("gsm8k/x1", "How many, in total?", "1000"),
                                                               ("gsm8k/x2", "Half of 3?", "1.5")]


def test_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"question": ["q1", "q2"], "answer": ["3", "4"]}), tmp_path / "d.parquet")
    assert [it.gold for it in GSM8K.load(tmp_path / "d.parquet")] == ["3", "4"]


def test_directory_of_splits_and_shards(tmp_path):
    write(tmp_path / "train.jsonl", '{"question": "t", "answer": "1"}\n')
    sub = tmp_path / "main"
    sub.mkdir()
    write(sub / "test-00000-of-00002.jsonl", '{"question": "a", "answer": "2"}\n')
    write(sub / "test-00001-of-00002.jsonl", '{"question": "b", "answer": "3"}\n')
    assert [it.gold for it in GSM8K.load(tmp_path, split="train")] == ["1"]
    assert [it.gold for it in GSM8K.load(tmp_path, split="test")] == ["2", "3"]
    assert GSM8K.load(tmp_path, split="test", limit=1)[0].id == "gsm8k/test/0"


def test_unlabeled_questions(tmp_path):
    f = write(tmp_path / "pool.jsonl", '{"question": "q1"}\n{"question": "q2"}\n')
    assert [it.gold for it in GSM8K.load(f)] == [None, None]
    assert [it.gold for it in GSM8K.load(f, fields=Fields(answer=None))] == [None, None]


def test_user_file_for_each_kind_of_task(tmp_path):
    f = write(tmp_path / "mc.jsonl", '{"question": "Pick (A) 1 (B) 2", "answer": "(b)"}\n')
    assert get_task("aqua").load(f)[0].gold == "B"
    f = write(tmp_path / "yn.jsonl", '{"question": "Is it?", "answer": true}\n{"question": "Or?", "answer": "No"}\n')
    assert [it.gold for it in get_task("strategyqa").load(f)] == ["yes", "no"]


# ---------------------------------------------------------------- bad input: one clear DataError

def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"nope\.jsonl: no such file or directory"):
        GSM8K.load(tmp_path / "nope.jsonl")
    with pytest.raises(DataError, match="no such file"):
        GSM8K.load("./data/missing.csv")


def test_malformed_jsonl_line_names_file_and_line(tmp_path):
    f = write(tmp_path / "bad.jsonl", '{"question": "a", "answer": "1"}\n{"question": "b", "answer": "2"}\n'
                                      '{"question": "c", "answer": \n')
    with pytest.raises(DataError) as e:
        GSM8K.load(f)
    assert "bad.jsonl:3" in str(e.value) and "not valid JSON" in str(e.value)


def test_jsonl_line_that_is_not_an_object(tmp_path):
    f = write(tmp_path / "list.jsonl", '{"question": "a"}\n[1, 2]\n')
    with pytest.raises(DataError, match=r"list\.jsonl:2: expected a JSON object"):
        GSM8K.load(f)


def test_malformed_json_array_names_the_line(tmp_path):
    f = write(tmp_path / "bad.json", '[\n  {"question": "a", "answer": 1},\n  {"question": "b" "answer": 2}\n]\n')
    with pytest.raises(DataError, match=r"bad\.json:3: not valid JSON"):
        GSM8K.load(f)


def test_missing_question_field_names_field_file_row_columns_and_fix(tmp_path):
    f = write(tmp_path / "cols.jsonl", '{"question": "ok", "answer": "1"}\n{"prompt": "what?", "label": "2"}\n')
    with pytest.raises(DataError) as e:
        GSM8K.load(f)
    message = str(e.value)
    for part in ("cols.jsonl:2", "'question'", "is missing", "columns are: prompt, label",
                 "`task.fields.question: <column>`"):
        assert part in message, (part, message)
    assert "Fields(" not in message  # a config key, not Python: most users write YAML


@pytest.mark.parametrize("name,text,fields,key", [
    ("mine.csv", "Problem,Label\nhow many?,3\n", Fields(question="Problem", answer="Solution"),
     r"mine\.csv:2: field 'Solution' \(the answer\) is missing .*columns are: Problem, Label\. .*"
     r"`task\.fields\.answer: <column>`, or `task\.fields\.answer: null`"),
    ("mine.json", '[{"q": "a?", "a": 1}]', Fields(question="q", answer="a", id="uid"),
     r"mine\.json row 0: field 'uid' \(the id\) is missing .*columns are: q, a\. .*`task\.fields\.id: <column>`"),
    ("mine.jsonl", '{"text": "a?"}\n', Fields(question="prompt", answer=None),
     r"mine\.jsonl:1: field 'prompt' \(the question\) is missing .*columns are: text\. .*"
     r"`task\.fields\.question: <column>`\.$"),
])
def test_mapped_field_missing_names_the_config_key_and_the_columns(tmp_path, name, text, fields, key):
    with pytest.raises(DataError, match=key):
        GSM8K.load(write(tmp_path / name, text), fields=fields)


def test_mapped_answer_column_must_exist(tmp_path):
    f = write(tmp_path / "q.csv", "Problem\nhow many?\n")
    with pytest.raises(DataError, match=r"q\.csv:2: field 'Label' \(the answer\) is missing .*columns are: Problem"):
        GSM8K.load(f, fields=Fields(question="Problem", answer="Label"))


def test_empty_question_value(tmp_path):
    f = write(tmp_path / "e.jsonl", '{"question": "  ", "answer": "1"}\n')
    with pytest.raises(DataError, match=r"e\.jsonl:1: field 'question' is empty.*Fill it in"):
        GSM8K.load(f)


def test_answer_that_is_not_an_answer(tmp_path):
    f = write(tmp_path / "a.jsonl", '{"question": "q", "answer": "seven"}\n')
    with pytest.raises(DataError, match=r"a\.jsonl:1: field 'answer' holds 'seven'.*`task\.fields\.answer: null`"):
        GSM8K.load(f)
    f = write(tmp_path / "mc.jsonl", '{"question": "q", "answer": "G"}\n')
    with pytest.raises(DataError, match=r"mc\.jsonl:1: field 'answer' holds 'G'"):
        get_task("aqua").load(f)


@pytest.mark.parametrize("name,text", [("empty.jsonl", ""), ("blank.jsonl", "\n\n"), ("empty.json", "[]"),
                                       ("empty.csv", "question,answer\n")])
def test_empty_source(tmp_path, name, text):
    with pytest.raises(DataError, match="no rows"):
        GSM8K.load(write(tmp_path / name, text))


def test_empty_directory_names_the_split(tmp_path):
    write(tmp_path / "train.jsonl", '{"question": "t"}\n')
    with pytest.raises(DataError, match=r"no file for split 'test'.*holds: train\.jsonl"):
        GSM8K.load(tmp_path, split="test")


def test_ragged_csv_row(tmp_path):
    f = write(tmp_path / "r.csv", "question,answer\nq1,1\nq2,2,extra\n")
    with pytest.raises(DataError, match=r"r\.csv:3: .*different number of fields"):
        GSM8K.load(f)


def test_unsupported_extension(tmp_path):
    with pytest.raises(DataError, match=r"unsupported file type '\.txt'"):
        GSM8K.load(write(tmp_path / "q.txt", "hello"))


def test_not_utf8_names_file_line_column_and_byte(tmp_path):
    # Past the reader's first 8 KiB chunk, where the decoder's own offset restarts from 0.
    good = "".join(f'{{"question": "q{i} \u00fcber", "answer": "{i}"}}\n' for i in range(400))
    f = tmp_path / "latin.jsonl"
    f.write_bytes(good.encode("utf-8") + '{"question": "caf\u00e9", "answer": "1"}\n'.encode("cp1252"))
    offset = len(good.encode("utf-8")) + len('{"question": "caf')
    with pytest.raises(DataError, match=rf"latin\.jsonl:401: not UTF-8 text \(byte 0xe9 at column 18, "
                                        rf"offset {offset} in the file\)\. Save the file as UTF-8"):
        GSM8K.load(f)


@pytest.mark.parametrize("name,bom", [("excel.csv", b""), ("array.json", b"\xef\xbb\xbf")])
def test_not_utf8_csv_and_json(tmp_path, name, bom):
    text = "question,answer\nna\u00efve?,1\n" if name.endswith(".csv") else '[\n {"question": "na\u00efve?"}\n]\n'
    f = tmp_path / name
    f.write_bytes(bom + text.encode("cp1252"))
    offset = (f.read_bytes().index(b"\xef", len(bom)))
    with pytest.raises(DataError, match=rf"{name}:2: not UTF-8 text \(byte 0xef at column \d+, offset {offset} "):
        GSM8K.load(f)


def test_duplicate_ids(tmp_path):
    f = write(tmp_path / "d.jsonl", '{"id": 1, "question": "a"}\n{"id": 1, "question": "b"}\n')
    with pytest.raises(DataError, match=r"d\.jsonl:2: duplicate id 'gsm8k/1'"):
        GSM8K.load(f, fields=Fields(id="id", answer=None))


def test_carved_task_rejects_an_unknown_split(tmp_path):
    f = write(tmp_path / "s.jsonl", '{"question": "a", "answer": 1}\n')
    with pytest.raises(DataError, match="'train', 'test' or 'all'"):
        get_task("svamp").load(f, split="validation")


def test_hub_dataset_not_available_offline_is_one_clear_error(monkeypatch):
    import datasets

    def refuse(*args, **kwargs):  # what load_dataset does offline with nothing cached
        raise ConnectionError("Couldn't reach 'someone/nothing' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", refuse)
    with pytest.raises(DataError) as e:
        GSM8K.load("someone/nothing", split="test")
    assert "someone/nothing" in str(e.value) and "split 'test'" in str(e.value)
    assert "local file or directory" in str(e.value)


def test_hub_default_source_uses_config_and_split_names(monkeypatch):
    import datasets

    calls = []

    def fake(name, config, split):
        calls.append((name, config, split))
        return [{"question": "q?", "options": ["A)1", "B)2"], "rationale": "r", "correct": "B"}]

    monkeypatch.setattr(datasets, "load_dataset", fake)
    items = get_task("aqua").load(split="dev")
    assert calls == [("deepmind/aqua_rat", "raw", "validation")]
    assert items[0].question == "q?\nAnswer Choices: (A) 1 (B) 2" and items[0].id == "aqua/dev/0"
    GSM8K.load(split="test")
    assert calls[-1] == ("openai/gsm8k", "main", "test")
    GSM8K.load("openai/gsm8k:socratic", split="train")
    assert calls[-1] == ("openai/gsm8k", "socratic", "train")


# ---------------------------------------------------------------- the first rows only (preflight's look)

def test_preview_reads_the_first_rows_of_every_format(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"question": f"q{i}", "answer": str(i)} for i in range(10)]
    write(tmp_path / "d.jsonl", "".join(json.dumps(r) + "\n" for r in rows) + "{broken\n")  # past the preview
    write(tmp_path / "d.json", json.dumps(rows))
    write(tmp_path / "d.csv", "question,answer\n" + "".join(f"{r['question']},{r['answer']}\n" for r in rows))
    pq.write_table(pa.table({"question": [r["question"] for r in rows], "answer": [r["answer"] for r in rows]}),
                   tmp_path / "d.parquet")
    for name in ("d.jsonl", "d.json", "d.csv", "d.parquet"):
        items = GSM8K.preview(tmp_path / name, "train", None, 3)
        assert [it.gold for it in items] == ["0", "1", "2"], name
    with pytest.raises(DataError, match=r"d\.jsonl:11"):
        GSM8K.load(tmp_path / "d.jsonl")  # the whole file meets the broken line


def test_preview_of_a_directory_stops_within_the_first_shard(tmp_path):
    write(tmp_path / "train-00000-of-00002.jsonl",
          '{"question": "a", "answer": "1"}\n{"question": "b", "answer": "2"}\n')
    write(tmp_path / "train-00001-of-00002.jsonl", "{broken\n")
    assert [it.question for it in GSM8K.preview(tmp_path, "train", None, 2)] == ["a", "b"]
    with pytest.raises(DataError, match="00001-of-00002.jsonl:1"):
        GSM8K.preview(tmp_path, "train", None, 3)


@pytest.mark.parametrize("text, named", [("question;answer\n1+1?;2\n", "semicolons (';')"),
                                         ("question\tanswer\n1+1?\t2\n", "tabs ('\\t')"),
                                         ("question|answer\n1+1?|2\n", "vertical bars ('|')")])
def test_csv_separated_by_something_else_is_named(tmp_path, text, named):
    f = write(tmp_path / "d.csv", text)
    with pytest.raises(DataError, match=r"d\.csv:1: the columns are separated by") as err:
        GSM8K.load(f)
    assert named in str(err.value) and "comma-separated" in str(err.value)


def test_one_column_csv_is_not_taken_for_another_delimiter(tmp_path):
    f = write(tmp_path / "d.csv", "question\nWhat is 1+1; and 2+2?\n")
    assert [it.question for it in GSM8K.load(f, fields=Fields(answer=None))] == ["What is 1+1; and 2+2?"]


def test_an_unlabeled_pool_and_a_labelled_held_out_file_with_their_own_columns(tmp_path):
    """task.fields maps the pool, task.eval_fields the held-out set; a held-out error names eval_fields."""
    from selfimprove.stages.collect import load_heldout, load_pool
    from selfimprove.sections import TaskConfig

    (tmp_path / "pool.jsonl").write_text("".join(json.dumps({"problem": f"What is {i} + 1?"}) + "\n" for i in range(4)))
    (tmp_path / "heldout.jsonl").write_text(json.dumps({"q": "What is 7 + 5?", "sol": "12"}) + "\n")
    cfg = TaskConfig(name="gsm8k", source=str(tmp_path / "pool.jsonl"), split="train",
                     fields={"question": "problem", "answer": None},
                     eval_source=str(tmp_path / "heldout.jsonl"), eval_split="train",
                     eval_fields={"question": "q", "answer": "sol"})
    task = get_task("gsm8k")
    pool, gold = load_pool(task, cfg)
    assert [i.question for i in pool][:1] == ["What is 0 + 1?"] and gold == {}
    assert [(i.question, i.gold) for i in load_heldout(task, cfg)] == [("What is 7 + 5?", "12")]
    wrong = cfg.model_copy(update={"eval_fields": Fields(question="q", answer="answer").named("task.eval_fields")})
    with pytest.raises(DataError, match=r"`task.eval_fields.answer: <column>`"):
        load_heldout(task, wrong)
