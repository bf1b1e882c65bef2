"""Self-generated data as a dataset: each round's kept training examples as Parquet, pushable to a hub.

Reads `rounds/rNN/train.jsonl`; writes `RUN_DIR/dataset/rNN.parquet` and a `README.md` dataset
card whose `configs` section names one split per round, so `datasets.load_dataset(RUN_DIR/dataset)`
returns a DatasetDict {r01, r02, ...}. `push` uploads that folder with huggingface_hub (the user's
own token and repository; nothing is uploaded otherwise); `push_model` uploads the merged weights and
model card that `export.export_model` writes.
"""

from __future__ import annotations

from pathlib import Path

from selfimprove import layout
from selfimprove.names import is_replay
from selfimprove.store import RunStore


def export_dataset(run_dir: str | Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    store = RunStore(run_dir)
    out = store.root / "dataset"
    out.mkdir(exist_ok=True)
    rounds = sorted(r for k in store.manifest["artifacts"]
                    if (r := layout.round_of(k)) is not None and k == layout.round_file(r, layout.TRAIN))
    if not rounds:
        raise FileNotFoundError(f"{store.root} has no rounds/rNN/train.jsonl yet: run a round first")
    splits = []
    for r in rounds:
        rd = layout.round_dir(r).split("/")[1]
        rows = [row for row in store.read_jsonl(layout.round_file(r, layout.TRAIN)) if not is_replay(row["question_id"])]
        if rows:
            pq.write_table(pa.Table.from_pylist(rows), out / f"{rd}.parquet")
            splits.append(rd)
    files = "".join(f"  - split: {rd}\n    path: {rd}.parquet\n" for rd in splits)
    (out / "README.md").write_text(
        f"---\nconfigs:\n- config_name: default\n  data_files:\n{files}---\n\n"
        f"Kept self-generated training examples of the selfimprove run `{store.root.name}`, one split per round "
        "(pseudo-labels from majority vote, filtered by the run's gates; no human labels).\n")
    return out


def push(run_dir: str | Path, repo_id: str, private: bool = True) -> str:
    return upload(export_dataset(run_dir), repo_id, "dataset", private)


def push_model(run_dir: str | Path, repo_id: str, private: bool = True, round_: int | None = None) -> str:
    """Upload the run's final (or `round_`'s) weights, merged into one checkpoint, with their model card."""
    from selfimprove.export import export_model

    return upload(export_model(run_dir, round_), repo_id, "model", private)


def upload(folder: Path, repo_id: str, repo_type: str, private: bool) -> str:
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
    api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type=repo_type)
    return f"https://huggingface.co/{'datasets/' if repo_type == 'dataset' else ''}{repo_id}"
