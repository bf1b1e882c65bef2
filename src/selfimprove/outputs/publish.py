"""Self-generated data as a dataset: each round's kept training examples as Parquet, pushable to a hub.

Reads `rounds/rNN/train.jsonl`; writes `RUN_DIR/dataset/rNN.parquet` and a `README.md` dataset
card whose `configs` section names one split per round, so `datasets.load_dataset(RUN_DIR/dataset)`
returns a DatasetDict {r01, r02, ...}. `push` uploads that folder with huggingface_hub (the user's
own token and repository, on the Hub at HF_ENDPOINT, huggingface.co by default; nothing is uploaded
otherwise); `push_model` uploads the merged weights and model card that `export.export_model` writes.
"""

from __future__ import annotations

import os
from pathlib import Path

from selfimprove.rundir import layout
from selfimprove.names import is_replay
from selfimprove.rundir.store import RunStore


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


def push_model(run_dir: str | Path, repo_id: str, private: bool = True, round_: int | None = None,
               adapter: bool = False) -> str:
    """Upload the run's final (or `round_`'s) weights, merged into one checkpoint, with their model card;
    with `adapter`, the LoRA adapter alone (PEFT's files) and its card."""
    from selfimprove.outputs.export import export_adapter, export_model

    folder = export_adapter(run_dir, round_) if adapter else export_model(run_dir, round_)
    return upload(folder, repo_id, "model", private)


def upload(folder: Path, repo_id: str, repo_type: str, private: bool) -> str:
    """Create the repository (kept if it exists) and commit `folder` to it; its URL.

    The Hub is `HF_ENDPOINT` when set (read now, not when huggingface_hub was imported: a test's stand-in
    server, a private Hub), else huggingface.co. A refused token or an unreachable Hub is a ValueError
    saying what to do."""
    from huggingface_hub import HfApi

    api = HfApi(endpoint=os.environ.get("HF_ENDPOINT", "").rstrip("/") or None)
    try:
        api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
        api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type=repo_type)
    except Exception as err:  # noqa: BLE001 - the ones a user fixes are reworded, the rest raised as they are
        known = _hub_error(err, api.endpoint, f"{repo_type} repository {repo_id}")
        if known is None:
            raise
        raise known from err
    return f"{api.endpoint}/{'datasets/' if repo_type == 'dataset' else ''}{repo_id}"


def _hub_error(err: Exception, endpoint: str, repo: str) -> ValueError | None:
    """A one-line ValueError for a failure the user fixes (token, offline mode, no connection); None otherwise."""
    import httpx
    from huggingface_hub import get_token
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    login = "set HF_TOKEN to a token with write access, or run `hf auth login` (`huggingface-cli login`)"
    status = err.response.status_code if isinstance(err, HfHubHTTPError) and err.response is not None else None
    if status == 401:
        token = "no Hugging Face token is set" if get_token() is None else "the Hugging Face token was refused"
        return ValueError(f"{endpoint} answered 401 Unauthorized for {repo}: {token}; {login}")
    if status == 403:
        return ValueError(f"{endpoint} answered 403 Forbidden for {repo}: the token may not write there "
                          f"(a read-only token, or another user's namespace); {login}")
    if isinstance(err, OfflineModeIsEnabled):
        return ValueError(f"HF_HUB_OFFLINE is set, so {repo} cannot be uploaded: unset it to push")
    if isinstance(err, httpx.TransportError):
        return ValueError(f"cannot reach the Hub at {endpoint} ({type(err).__name__}: {err}); check the network "
                          "or HF_ENDPOINT")
    return None
