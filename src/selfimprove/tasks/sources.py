"""Reading a task's rows from a local file or directory, or from a Hugging Face dataset, into `Item`s.

Reads: JSONL (.jsonl, or .json holding JSON lines), a JSON array (.json), CSV (.csv) and Parquet
(.parquet) files; a directory holding one file per split ("train.jsonl", "test.json", sharded
"test-00000-of-00001.parquet", also one level down as in a cloned Hugging Face repo); or a
Hugging Face dataset id ("openai/gsm8k", "openai/gsm8k:main" for a config) through
`datasets.load_dataset`, which works offline (HF_HUB_OFFLINE=1) only for cached datasets.
Writes nothing.

Every problem with the input is one `DataError` that names the file, the line or row and the
field, and says how to fix it, in the config's terms (`task.fields.question: <column>`) since
most users write YAML, not Python; rows are never dropped silently. Every reader takes `limit`, the
rows to read at most: preflight reads the first `PREVIEW_ROWS` of a local file through the very
path a run loads it by (`load_items(..., prefix=...)`), so a bad file is found before any work.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from selfimprove.records import Exemplar, Item
from selfimprove.tasks.base import Fields

log = logging.getLogger(__name__)

SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")
# Rows preflight reads of each local data file: enough to meet a bad column or line near the top, and a
# few milliseconds however large the file is.
PREVIEW_ROWS = 200
# Delimiters a spreadsheet writes instead of commas (a locale whose decimal mark is the comma uses ";").
OTHER_DELIMITERS = {";": "semicolons", "\t": "tabs", "|": "vertical bars"}


class DataError(ValueError):
    """The input data cannot be read as asked; the message says where and how to fix it."""


@dataclass(frozen=True)
class Row:
    """One raw row and where it came from ("data/x.jsonl:17", "openai/gsm8k[test] row 17")."""

    data: dict[str, Any]
    origin: str
    index: int  # 0-based position within its split


@dataclass(frozen=True)
class Dataset:
    """Where a task's questions live and how its native columns become question / answer / id.

    `native` turns one row of the task's own dataset (local copy or Hugging Face) into the
    columns of `Fields()`; it is skipped when the user passes `fields` for their own data.
    """

    name: str  # task name; prefix of item ids
    default_source: str  # Hugging Face dataset id
    default_config: str | None = None
    native: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    hf_splits: dict[str, str] = field(default_factory=dict)  # our split -> the Hub's split name
    dir_splits: dict[str, str] = field(default_factory=dict)  # our split -> file stem when ours is absent
    # One set of questions without splits (SVAMP, ASDiv): train/test are carved by a hash of the id.
    carve_test_percent: int | None = None


# ---------------------------------------------------------------- reading rows


def _read_jsonl(path: Path, limit: int | None = None) -> list[Row]:
    rows = []
    with path.open(encoding="utf-8-sig") as f:
        for lineno, line in enumerate(f, 1):
            if limit is not None and len(rows) >= limit:
                break
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{lineno}: not valid JSON ({e.msg}, column {e.colno}). "
                                "Each line of a JSON Lines file must be one complete JSON object; "
                                "fix or delete that line.") from None
            rows.append(_as_row(data, f"{path}:{lineno}", len(rows)))
    return rows


def _read_json(path: Path, limit: int | None = None) -> list[Row]:
    text = path.read_text(encoding="utf-8-sig")  # an array is read whole: its end is needed to parse it
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        if e.msg == "Extra data":  # several top-level values: JSON lines in a .json file (AQuA)
            return _read_jsonl(path, limit)
        raise DataError(f"{path}:{e.lineno}: not valid JSON ({e.msg}, column {e.colno}). "
                        "Expected a JSON array of objects, or one JSON object per line.") from None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON array of objects, found a JSON {type(data).__name__}.")
    return [_as_row(d, f"{path} row {i}", i) for i, d in enumerate(data[:limit])]


def _read_csv(path: Path, limit: int | None = None) -> list[Row]:
    rows = []
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        _commas(path, header)
        for data in reader:
            if limit is not None and len(rows) >= limit:
                break
            where = f"{path}:{reader.line_num}"
            if None in data or None in data.values():
                raise DataError(f"{where}: this row has a different number of fields than the header "
                                f"({len(header)}: {', '.join(header)}). Quote values that contain commas.")
            rows.append(Row(dict(data), where, len(rows)))
    return rows


def _commas(path: Path, header: list[str]) -> None:
    """A header read as one column that holds another delimiter: the file is not comma-separated (a
    spreadsheet saved it with semicolons or tabs), and every row would be one column named by the whole line."""
    if len(header) != 1:
        return
    counts = {d: header[0].count(d) for d in OTHER_DELIMITERS}
    found = max(counts, key=counts.get)
    if counts[found]:
        raise DataError(f"{path}:1: the columns are separated by {OTHER_DELIMITERS[found]} ({found!r}), not commas "
                        f"(the header {header[0]!r} reads as one column). Save the file as comma-separated CSV "
                        "(a spreadsheet's \"CSV (comma delimited)\"), or as JSON Lines (.jsonl).")


def _read_parquet(path: Path, limit: int | None = None) -> list[Row]:
    import pyarrow.parquet as pq  # comes with `datasets`; only needed for parquet

    try:
        if limit is None:
            data = pq.read_table(path).to_pylist()
        else:  # the first batch only: a large file is not read whole for a look at its top
            batch = next(pq.ParquetFile(path).iter_batches(batch_size=max(1, limit)), None)
            data = [] if batch is None else batch.to_pylist()[:limit]
    except Exception as e:  # pyarrow raises several unrelated types for a bad file
        raise DataError(f"{path}: not a readable Parquet file ({type(e).__name__}: {e}).") from None
    return [Row(d, f"{path} row {i}", i) for i, d in enumerate(data)]


def _as_row(data: Any, where: str, index: int) -> Row:
    if not isinstance(data, dict):
        raise DataError(f"{where}: expected a JSON object with named fields, found a JSON {type(data).__name__}.")
    return Row(data, where, index)


def read_file(path: Path, limit: int | None = None) -> list[Row]:
    """The rows of one data file (the first `limit` of them; None = all), chosen by its extension."""
    readers = {".jsonl": _read_jsonl, ".json": _read_json, ".csv": _read_csv, ".parquet": _read_parquet}
    if path.suffix.lower() not in readers:
        raise DataError(f"{path}: unsupported file type {path.suffix!r}; use one of {', '.join(SUFFIXES)}.")
    try:
        return readers[path.suffix.lower()](path, limit)
    except UnicodeDecodeError:
        raise DataError(_not_utf8(path)) from None


def _not_utf8(path: Path) -> str:
    """Where the first byte that is not UTF-8 is. The decoder's own offset counts from the start of
    whichever chunk it was reading (and after a BOM), so the file is decoded again here, whole."""
    data = path.read_bytes()
    start = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        data[start:].decode("utf-8")
        return f"{path}: not UTF-8 text; save the file as UTF-8."  # it changed since it was read
    except UnicodeDecodeError as e:
        bad = start + e.start
    line_start = data.rfind(b"\n", 0, bad) + 1
    line = data.count(b"\n", 0, bad) + 1
    column = len(data[line_start:bad].decode("utf-8")) + 1  # everything before the first bad byte decodes
    return (f"{path}:{line}: not UTF-8 text (byte 0x{data[bad]:02x} at column {column}, offset {bad} in the file). "
            "Save the file as UTF-8 (in a spreadsheet: \"CSV UTF-8\"); `iconv -f cp1252 -t utf-8` converts "
            "a file saved on Windows.")


def split_files(directory: Path, split: str) -> list[Path]:
    """The file(s) of one split in a directory: "<split>.<ext>" or shards "<split>-*.<ext>", one level deep at most."""
    found = []
    for path in sorted(directory.glob("*")) + sorted(directory.glob("*/*")):
        named = path.stem == split or path.stem.startswith(f"{split}-")
        if path.is_file() and path.suffix.lower() in SUFFIXES and named:
            found.append(path)
    return found


def _read_directory(directory: Path, split: str, fallback: dict[str, str],
                    limit: int | None = None) -> tuple[list[Row], str]:
    paths = split_files(directory, split)
    if not paths and split in fallback:
        log.warning("%s: no %r split; using %r instead", directory, split, fallback[split])
        split = fallback[split]
        paths = split_files(directory, split)
    if not paths:
        present = ", ".join(sorted(p.name for p in directory.iterdir())) or "nothing"
        raise DataError(f"{directory}: no file for split {split!r} (looked for {split}.jsonl, {split}.json, "
                        f"{split}.csv, {split}.parquet or {split}-*.<ext>); the directory holds: {present}. "
                        "Pass the file itself as the source, or ask for a split that exists.")
    rows = []
    for path in paths:
        rows += read_file(path, None if limit is None else limit - len(rows))
        if limit is not None and len(rows) >= limit:
            break
    # Positions run across shards, so index-based ids stay unique.
    return [Row(row.data, row.origin, i) for i, row in enumerate(rows)], split


def looks_like_path(source: str) -> bool:
    return (source.startswith((".", "/", "~")) or "\\" in source or source.lower().endswith(SUFFIXES)
            or source.count("/") > 1)


def hub_dataset(dataset: Dataset, source: str | Path | None) -> tuple[str, str | None] | None:
    """(dataset id, config) that `read_rows` loads `source` (None: the task's own) from with
    `datasets.load_dataset`, or None when it reads a local file or directory."""
    source = source or dataset.default_source
    if isinstance(source, Path) or Path(source).expanduser().exists() or looks_like_path(source):
        return None
    name, _, given_config = source.partition(":")
    return name, given_config or (dataset.default_config if source == dataset.default_source else None)


def offline() -> bool:
    """Whether Hugging Face's offline mode is set ($HF_HUB_OFFLINE, or $HF_DATASETS_OFFLINE for datasets),
    read as huggingface_hub reads it, without importing datasets."""
    return any(os.environ.get(v, "").upper() in ("1", "ON", "YES", "TRUE")
               for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def not_cached_offline(name: str, config: str | None) -> str | None:
    """Why the Hub dataset `name` cannot load here, or None. Offline, `datasets.load_dataset` reads only
    what its own cache holds (a copy prepared by an earlier online load; the Hub's file cache alone does
    not do): `datasets.load_dataset_builder` looks there the same way, reading no rows. Online it
    downloads, so nothing is checked (a check would download the dataset before any work)."""
    if not offline():
        return None
    import datasets  # heavy; only for a Hub id, offline

    try:
        datasets.load_dataset_builder(name, config)
    except ConnectionError:  # offline and no cached copy: datasets says it "couldn't reach" the Hub
        return "not in the local Hugging Face cache"
    except (OSError, ValueError) as err:  # a cached copy without this config, a bad id
        return f"not loadable from the local Hugging Face cache ({type(err).__name__}: {str(err).splitlines()[0]})"
    return None


def _read_hub(source: str, split: str, config: str | None) -> list[Row]:
    import datasets  # heavy; only when a Hub dataset is asked for

    name, _, given_config = source.partition(":")
    config = given_config or config
    try:
        ds = datasets.load_dataset(name, config, split=split)
    except Exception as e:  # network, cache, unknown split: one message for all
        raise DataError(f"could not load Hugging Face dataset {name!r} (config {config!r}, split {split!r}): "
                        f"{type(e).__name__}: {e}. Offline (HF_HUB_OFFLINE=1) only cached datasets load; "
                        "pass a local file or directory as the source instead.") from None
    return [Row(dict(d), f"{name}[{split}] row {i}", i) for i, d in enumerate(ds)]


def read_rows(dataset: Dataset, source: str | Path, split: str,
              limit: int | None = None) -> tuple[list[Row], str, bool]:
    """Rows of `split` from `source` (the first `limit` of a local file or directory; None = all), the split
    actually read (a directory may fall back, see `Dataset.dir_splits`), and whether the source was one
    undivided set (a single file)."""
    path = Path(source).expanduser()
    if path.is_file():
        return read_file(path, limit), split, True
    if path.is_dir():
        rows, split = _read_directory(path, split, dataset.dir_splits, limit)
        return rows, split, False
    if isinstance(source, Path) or looks_like_path(str(source)):
        raise DataError(f"{source}: no such file or directory. Give the path of a data file "
                        f"({', '.join(SUFFIXES)}), a directory of split files, or a Hugging Face dataset id.")
    config = dataset.default_config if source == dataset.default_source else None
    hub_split = dataset.hf_splits.get(split, split)
    one_set = dataset.hf_splits.get("train") is not None and dataset.hf_splits.get("train") == dataset.hf_splits.get("test")
    return _read_hub(str(source), hub_split, config), split, one_set


# ---------------------------------------------------------------- rows -> items


# What a column holds, and what else the user can set when their data has no such column.
ROLE_ALTERNATIVE = {"question": "", "answer": ", or `{key}.answer: null` to load the questions unlabeled",
                    "id": ", or `{key}.id: null` to number the rows instead"}


def column(row: Row, name: str, role: str, columns: dict[str, Any] | None = None,
           key: str = "task.fields") -> Any:
    """`row[name]`, the row's `role` (question, answer or id), or a DataError naming the field, the
    row, the columns there are and the config key (`key`: task.fields or task.eval_fields) that fixes it."""
    data = row.data if columns is None else columns
    if name in data and data[name] is not None and str(data[name]).strip() != "":
        return data[name]
    have = ", ".join(map(str, row.data)) or "none"
    named = repr(name) if name == role else f"{name!r} (the {role})"
    alternative = ROLE_ALTERNATIVE[role].format(key=key)
    if name in data:
        raise DataError(f"{row.origin}: field {named} is empty in this row (columns: {have}). "
                        f"Fill it in or delete the row{alternative}.")
    raise DataError(f"{row.origin}: field {named} is missing from this row; the row's columns are: "
                    f"{have}. If the {role} is in one of them, name it in the config: "
                    f"`{key}.{role}: <column>`{alternative}.")


def carve(item_id: str, test_percent: int) -> str:
    """Deterministic split of an undivided set: sha256 of the id, so it is stable under reordering and limits."""
    bucket = int(hashlib.sha256(item_id.encode()).hexdigest(), 16) % 100
    return "test" if bucket < test_percent else "train"


def to_item(dataset: Dataset, row: Row, split: str, fields: Fields | None,
            gold: Callable[[Any], str | None]) -> Item | None:
    """One `Item`: question text, stable id, canonical gold (None when the data has no answer column).

    None when the task's own format says the row is not one of its questions (ASDiv's non-numeric answers).
    """
    columns = row.data
    if fields is not None:  # the user's own mapping: every column it names must be there
        for role, name in (("answer", fields.answer), ("id", fields.id)):
            if name is not None:
                column(row, name, role, key=fields._key)  # Fields(answer=None) for unlabeled data
    if fields is None:
        fields = Fields(id="id")
        columns = dataset.native(row.data) if dataset.native else row.data
        if columns is None:
            return None
    question = str(column(row, fields.question, "question", columns, fields._key)).strip()
    has_id = fields.id is not None and columns.get(fields.id) not in (None, "")
    item_id = f"{dataset.name}/{columns[fields.id]}" if has_id else f"{dataset.name}/{split}/{row.index}"
    answer = None
    if fields.answer is not None and columns.get(fields.answer) is not None:
        answer = gold(columns[fields.answer])
        if answer is None:
            raise DataError(f"{row.origin}: field {fields.answer!r} holds {columns[fields.answer]!r}, which is not "
                            f"a {dataset.name} answer. Fix the value, name the answer column in the config "
                            f"(`{fields._key}.answer: <column>`), or set `{fields._key}.answer: null` to load the "
                            "questions unlabeled.")
    return Item(id=item_id, question=question, gold=answer)


def load_items(dataset: Dataset, gold: Callable[[Any], str | None], source: str | Path | None, split: str,
               limit: int | None, fields: Fields | None, prefix: int | None = None) -> list[Item]:
    """The whole load path of a task: read rows, make items, check ids, carve a split if needed, limit.
    `prefix` reads only the first rows of a local source (preflight's look at it; None = all)."""
    source = source or dataset.default_source
    rows, read_split, one_set = read_rows(dataset, source, split, prefix)
    if not rows:
        raise DataError(f"{source}: no rows (split {split!r}); the source is empty. Put questions in it, one "
                        "a row (a line of JSON Lines), or name another source.")
    items, seen = [], {}
    for row in rows:
        item = to_item(dataset, row, read_split, fields, gold)
        if item is None:
            continue
        if item.id in seen:
            raise DataError(f"{row.origin}: duplicate id {item.id!r} (first at {seen[item.id]}); ids must be unique.")
        seen[item.id] = row.origin
        items.append(item)
    if len(items) < len(rows):
        log.warning("%s: skipped %d of %d rows that are not %s questions (see the task's docstring)",
                    source, len(rows) - len(items), len(rows), dataset.name)
    if one_set and dataset.carve_test_percent is not None and split != "all":
        if split not in ("train", "test"):
            raise DataError(f"{source}: {dataset.name} is one undivided set; ask for split 'train', 'test' or 'all'.")
        items = [it for it in items if carve(it.id, dataset.carve_test_percent) == split]
    return items[:limit] if limit is not None else items


@dataclass(frozen=True)
class DatasetTask:
    """A task over a dataset: how its gold answers read, how an answer is found in text, when two agree."""

    dataset: Dataset
    gold: Callable[[Any], str | None]  # a dataset's answer value -> canonical answer
    find_answer: Callable[[str], str | None]
    same_answer: Callable[[str, str], bool]
    exemplar_list: Callable[[], list[Exemplar]]
    answer_prefix: str = "The answer is"

    @property
    def name(self) -> str:
        return self.dataset.name

    @property
    def default_source(self) -> str:
        return self.dataset.default_source

    def load(self, source: str | Path | None = None, split: str = "train", limit: int | None = None,
             fields: Fields | None = None) -> list[Item]:
        return load_items(self.dataset, self.gold, source, split, limit, fields)

    def preview(self, source: str | Path, split: str, fields: Fields | None, rows: int) -> list[Item]:
        """`load` over the first `rows` rows of a local source: what preflight checks a data file with."""
        return load_items(self.dataset, self.gold, source, split, None, fields, prefix=rows)

    def extract(self, completion: str) -> str | None:
        return self.find_answer(completion)

    def is_equivalent(self, a: str, b: str) -> bool:
        return self.same_answer(a, b)

    def exemplars(self) -> list[Exemplar]:
        return list(self.exemplar_list())
