"""The run directory: every artifact written atomically and listed in a manifest, so reruns resume.

The layout (which artifact lives where) is `rundir/layout.py`'s. A stage produces its artifact through
`produce_jsonl` / `produce_json` / `produce_dir` (skip it when complete, build and commit it when
not) or `produce_chunked` (the same, resuming from the chunks already saved).

An artifact counts as done only when the manifest lists it with a matching checksum; anything
else (a half-written file from a kill) is redone. A damaged file that is about to be rewritten is
moved to `damaged/` first, never deleted, so nothing a person might still want is thrown away;
`retire` moves an artifact there too when the loop must redo it (it, or what it was made from,
changed). `verify()` names every problem (missing, bad checksum, wrong row count, half-written
last line). `RunStore(root, create=False)` opens an existing run directory only, writing nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

FORMAT_VERSION = 2  # 2: round pools, typed round metrics, adapt.method split from adapt.tuning


class StoreError(RuntimeError):
    pass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a run directory: which artifact, what is wrong, what to do."""

    name: str
    what: str
    fix: str

    def __str__(self) -> str:
        return f"{self.name}: {self.what}; {self.fix}"


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except OSError as err:  # a full disk says nothing of which file: name it
        raise OSError(err.errno, err.strerror, str(path)) from err
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
    def __init__(self, root: str | Path, create: bool = True):
        self.root = Path(root)
        self._manifest_path = self.root / "manifest.json"
        if not create and not self.root.is_dir():
            what = "does not exist" if not self.root.exists() else "is a file"
            raise StoreError(f"{self.root} {what}: not a run directory (give the run.out_dir of a run)")
        if not create and not self._manifest_path.is_file():
            raise StoreError(f"{self.root} has no manifest.json: not a run directory (give the run.out_dir of "
                             "a run)")
        if create:
            self.root.mkdir(parents=True, exist_ok=True)
        self.manifest: dict[str, Any] = {"format_version": FORMAT_VERSION, "artifacts": {}}
        if self._manifest_path.exists():
            self.manifest = _load_manifest(self._manifest_path)
            version = self.manifest.get("format_version")
            if version != FORMAT_VERSION:
                raise StoreError(f"{self.root} was written by run-directory format {version}, this is "
                                 f"{FORMAT_VERSION}: start a new run directory (run.out_dir), or read it with "
                                 "the selfimprove version that wrote it")

    def path(self, name: str) -> Path:
        return self.root / name

    def done(self, name: str) -> bool:
        entry = self.manifest["artifacts"].get(name)
        if entry is None or not self.path(name).exists():
            return False
        if entry.get("sha256") is not None:
            return _sha256(self.path(name)) == entry["sha256"]
        if entry.get("sizes") is not None:
            return _dir_sizes(self.path(name)) == entry["sizes"]
        return True

    def problem(self, name: str) -> Problem | None:
        """Why `name` is not a complete artifact, or None when it is."""
        entry = self.manifest["artifacts"].get(name)
        path = self.path(name)
        redo = "rerun the same command: the stage that writes it runs again"
        if entry is None:
            what = "exists but is not in the manifest (written by a killed stage)" if path.exists() else "missing"
            return Problem(name, what, redo)
        if not path.exists():
            return Problem(name, "listed in the manifest but the file is gone", redo)
        if entry.get("sha256") is not None and _sha256(path) != entry["sha256"]:
            what = "checksum does not match the manifest (changed or damaged after it was written)"
            if path.suffix == ".jsonl":
                what += "; " + _jsonl_damage(path, entry.get("rows"))
            return Problem(name, what, redo + " (the damaged copy is kept under damaged/)")
        if entry.get("sizes") is not None and _dir_sizes(path) != entry["sizes"]:
            return Problem(name, "folder contents differ from the manifest", redo)
        return None

    def verify(self) -> list[Problem]:
        """Every artifact the manifest lists, checked; plus leftovers of killed writes."""
        problems = [p for name in sorted(self.manifest["artifacts"]) if (p := self.problem(name))]
        for tmp in sorted(self.root.rglob(".*.tmp")):
            problems.append(Problem(str(tmp.relative_to(self.root)), "unfinished write left by a kill",
                                    "harmless: it is replaced when the stage reruns"))
        return problems

    def _keep_damaged(self, name: str) -> None:
        """Before overwriting a listed artifact that no longer matches its checksum, move it aside."""
        path = self.path(name)
        if name in self.manifest["artifacts"] and path.exists() and not self.done(name):
            self._move_aside(path, name)

    def _move_aside(self, path: Path, name: str) -> None:
        aside = self.root / "damaged" / f"{name}.{time.strftime('%Y%m%d-%H%M%S')}"
        n = 1
        while aside.exists():  # two in one second: keep both
            aside, n = aside.with_name(f"{aside.name}.{n}"), n + 1
        aside.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, aside)

    def retire(self, name: str) -> None:
        """Move artifact `name` (file or folder) to damaged/ and forget it, and everything under it, in
        the manifest: the stage that writes it runs again."""
        if self.path(name).exists():
            self._move_aside(self.path(name), name)
        self._update(lambda artifacts: {k: v for k, v in artifacts.items()
                                        if k != name and not k.startswith(name + "/")})

    def _record(self, name: str, **info) -> None:
        self._update(lambda artifacts: artifacts | {name: info})

    def _update(self, change) -> None:
        """Re-read the manifest before changing it: another process (`review import`) may have added entries."""
        if self._manifest_path.exists():
            self.manifest = _load_manifest(self._manifest_path)
        self.manifest["artifacts"] = change(self.manifest["artifacts"])
        _atomic_write_bytes(self._manifest_path, json.dumps(self.manifest, indent=1).encode())

    def write_jsonl(self, name: str, rows: list[dict]) -> None:
        data = jsonl_bytes(rows)
        self._keep_damaged(name)
        _atomic_write_bytes(self.path(name), data)
        self._record(name, rows=len(rows), sha256=hashlib.sha256(data).hexdigest())

    def read_jsonl(self, name: str) -> list[dict]:
        if (problem := self.problem(name)) is not None:
            raise StoreError(f"{self.root}/{problem}")
        return read_jsonl(self.path(name))

    def write_json(self, name: str, obj: Any) -> None:
        data = json.dumps(obj, indent=1, ensure_ascii=False).encode()
        self._keep_damaged(name)
        _atomic_write_bytes(self.path(name), data)
        self._record(name, sha256=hashlib.sha256(data).hexdigest())

    def read_json(self, name: str) -> Any:
        if (problem := self.problem(name)) is not None:
            raise StoreError(f"{self.root}/{problem}")
        return json.loads(self.path(name).read_text())

    def write_text(self, name: str, text: str) -> None:
        """A text artifact (config.yaml, metrics.jsonl), listed like the others, so `verify` finds it damaged."""
        data = text.encode()
        self._keep_damaged(name)
        _atomic_write_bytes(self.path(name), data)
        rows = {"rows": len(data.splitlines())} if name.endswith(".jsonl") else {}
        self._record(name, **rows, sha256=hashlib.sha256(data).hexdigest())

    def remove(self, name: str) -> None:
        """Delete a file or folder and forget it and everything under it in the manifest."""
        path = self.path(name)
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        self._update(lambda artifacts: {k: v for k, v in artifacts.items()
                                        if k != name and not k.startswith(name + "/")})

    def produce_jsonl(self, name: str, build) -> list[dict]:
        """The rows of artifact `name`: read when complete, else `build()` them and commit them first."""
        if not self.done(name):
            self.write_jsonl(name, build())
        return self.read_jsonl(name)

    def produce_json(self, name: str, build) -> Any:
        if not self.done(name):
            self.write_json(name, build())
        return self.read_json(name)

    def produce_dir(self, name: str, build) -> Path:
        """Folder artifact `name`, filled by `build(tmp_dir)` and committed whole unless complete."""
        if not self.done(name):
            self.commit_dir(name, build)
        return self.path(name)

    def produce_chunked(self, name: str, chunks: int, build_chunk, workers: int = 1) -> list[dict]:
        """A JSONL artifact built in `chunks` parts, each saved as it finishes (`build_chunk(c)` -> rows),
        so a kill loses at most the chunks in progress; the merged file replaces the parts once all are done.
        `workers` > 1 builds that many missing chunks at once (threads that wait on a parallel backend);
        the parts are still written one at a time, here, and a failed chunk fails the artifact only after
        the chunks already finished are saved."""
        parts = f"{name}.parts"
        if self.done(name):
            if self.path(parts).exists():
                self.remove(parts)  # left by a kill between merging the chunks and cleaning them up
            return self.read_jsonl(name)
        part = [f"{parts}/{c:05d}.jsonl" for c in range(chunks)]
        if workers > 1:
            self._build_parallel([c for c in range(chunks) if not self.done(part[c])], part, build_chunk, workers)
        for c in range(chunks):
            self.produce_jsonl(part[c], lambda: build_chunk(c))
        rows = [r for c in range(chunks) for r in self.read_jsonl(part[c])]
        self.write_jsonl(name, rows)
        self.remove(parts)  # the merged file is the artifact now
        return rows

    def _build_parallel(self, missing: list[int], part: list[str], build_chunk, workers: int) -> None:
        from concurrent.futures import ThreadPoolExecutor, as_completed

        error = None
        with ThreadPoolExecutor(workers) as pool:
            futures = {pool.submit(build_chunk, c): c for c in missing}
            for f in as_completed(futures):
                if f.cancelled():
                    continue
                if f.exception() is None:
                    self.write_jsonl(part[futures[f]], f.result())
                elif error is None:
                    error = f.exception()
                    for other in futures:
                        other.cancel()  # chunks not started yet; those in progress finish and are saved
        if error is not None:
            raise error

    def commit_dir(self, name: str, build) -> Path:
        """Let `build(tmp_dir)` fill a folder, then move it into place and record it as done."""
        final = self.path(name)
        tmp = final.with_name(f".{final.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        build(tmp)
        self._keep_damaged(name)
        shutil.rmtree(final, ignore_errors=True)  # a folder left by a killed commit, never listed
        os.replace(tmp, final)
        self._record(name, kind="dir", files=sorted(p.name for p in final.iterdir()), sizes=_dir_sizes(final))
        return final


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _dir_sizes(path: Path) -> dict[str, int]:
    """File sizes under a folder: cheap to check, unlike hashing gigabytes of full-model weights."""
    return {str(p.relative_to(path)): p.stat().st_size for p in sorted(path.rglob("*")) if p.is_file()}


def _jsonl_damage(path: Path, rows: int | None) -> str:
    """Describe how a JSONL file differs from what was recorded: half-written line, row count."""
    data = path.read_bytes()
    lines = data.splitlines()
    bad = []
    for n, line in enumerate(lines, 1):
        try:
            json.loads(line)
        except ValueError:
            bad.append(n)
    parts = []
    if data and not data.endswith(b"\n"):
        parts.append("the last line is half-written (no newline)")
    if bad:
        parts.append(f"line(s) {', '.join(map(str, bad[:5]))} are not valid JSON")
    if rows is not None and len(lines) != rows:
        parts.append(f"{len(lines)} rows, the manifest says {rows}")
    return ", ".join(parts) or "rows parse but their content changed"


def _load_manifest(path: Path) -> dict:
    try:
        manifest = json.loads(path.read_text())
    except ValueError:
        raise StoreError(f"{path} is not valid JSON (damaged): move the run directory aside and start a new "
                         "one; its JSONL artifacts are still readable by hand") from None
    if not isinstance(manifest, dict) or "artifacts" not in manifest:
        raise StoreError(f"{path} is not a selfimprove manifest: is {path.parent} a run directory?")
    return manifest
