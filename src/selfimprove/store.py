"""The run directory: every artifact written atomically and listed in a manifest, so reruns resume.

Layout:
    config.yaml, environment.json, manifest.json, metrics.jsonl
    pool.jsonl (questions, no answers), pool_gold.jsonl (hidden; diagnostics only), heldout.jsonl
    rounds/r01/samples.jsonl votes.jsonl verdicts.jsonl train.jsonl adapter/ train_log.jsonl eval_*.jsonl metrics.json

An artifact counts as done only when the manifest lists it with a matching checksum; anything
else (a half-written file from a kill) is redone.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterable

FORMAT_VERSION = 1


class StoreError(RuntimeError):
    pass


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def jsonl_bytes(rows: Iterable[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()


def read_jsonl(path: Path) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise StoreError(f"{path}:{n}: not valid JSON ({err.msg}); the file is damaged: "
                                 "delete it and rerun to regenerate it") from None
    return rows


class RunStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._manifest_path = self.root / "manifest.json"
        self.manifest: dict[str, Any] = {"format_version": FORMAT_VERSION, "artifacts": {}}
        if self._manifest_path.exists():
            self.manifest = json.loads(self._manifest_path.read_text())
            version = self.manifest.get("format_version")
            if version != FORMAT_VERSION:
                raise StoreError(f"{self.root} was written by run-directory format {version}, this is "
                                 f"{FORMAT_VERSION}: start a new run directory (run.out_dir)")

    def path(self, name: str) -> Path:
        return self.root / name

    def done(self, name: str) -> bool:
        entry = self.manifest["artifacts"].get(name)
        if entry is None or not self.path(name).exists():
            return False
        if entry.get("sha256") is not None:
            return _sha256(self.path(name)) == entry["sha256"]
        return True

    def _record(self, name: str, **info) -> None:
        self.manifest["artifacts"][name] = info
        _atomic_write_bytes(self._manifest_path, json.dumps(self.manifest, indent=1).encode())

    def write_jsonl(self, name: str, rows: list[dict]) -> None:
        data = jsonl_bytes(rows)
        _atomic_write_bytes(self.path(name), data)
        self._record(name, rows=len(rows), sha256=hashlib.sha256(data).hexdigest())

    def read_jsonl(self, name: str) -> list[dict]:
        if not self.done(name):
            raise StoreError(f"{self.path(name)} is missing or incomplete; rerun the stage that writes it")
        return read_jsonl(self.path(name))

    def write_json(self, name: str, obj: Any) -> None:
        data = json.dumps(obj, indent=1, ensure_ascii=False).encode()
        _atomic_write_bytes(self.path(name), data)
        self._record(name, sha256=hashlib.sha256(data).hexdigest())

    def read_json(self, name: str) -> Any:
        if not self.done(name):
            raise StoreError(f"{self.path(name)} is missing or incomplete; rerun the stage that writes it")
        return json.loads(self.path(name).read_text())

    def write_text(self, name: str, text: str) -> None:
        _atomic_write_bytes(self.path(name), text.encode())

    def commit_dir(self, name: str, build) -> Path:
        """Let `build(tmp_dir)` fill a folder, then move it into place and record it as done."""
        final = self.path(name)
        tmp = final.with_name(f".{final.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        build(tmp)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        self._record(name, kind="dir", files=sorted(p.name for p in final.iterdir()))
        return final


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
