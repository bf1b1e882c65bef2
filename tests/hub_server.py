"""A stand-in for the Hugging Face Hub's HTTP API on loopback, for `selfimprove push`'s tests: the real
huggingface_hub client (`HfApi.create_repo`, `upload_folder`) talks HTTP to it, pointed there by
`HF_ENDPOINT`, and it keeps what arrived so a test can compare it with the local files.

The endpoints huggingface_hub 1.33 calls for `publish.upload`, answered as the Hub answers them:
  POST /api/repos/create                          create {type, organization/name, visibility}; 409 (with
                                                  the url, as the Hub does) when it exists: `exist_ok`
  POST /api/{type}s/{repo}/preupload/{revision}   every file "regular" (content inline in the commit: no
                                                  LFS, no Xet) with the oid of the file there, so an
                                                  unchanged file is skipped as on the Hub
  POST /api/{type}s/{repo}/commit/{revision}      ndjson: a header line, then file lines (base64 content)
  GET  /api/{type}s/{repo}[/revision/{revision}]  repo info (id, sha, private): asked after an upload that
                                                  changed nothing, and after a refused create
  POST /api/validate-yaml                         README metadata check (the path without hf_xet)
Every request must carry `Authorization: Bearer TOKEN`, else 401 with the Hub's "Invalid credentials"
header. `repos[(type, repo_id)]` is a `Repo` (private, files {path: bytes}, commit summaries);
`log` lists each request as "METHOD path".
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

REPO_PATH = re.compile(r"^/api/(model|dataset|space)s/([^/]+/[^/]+)(?:/(preupload|commit|revision)/([^/]+))?$")


@dataclass
class Repo:
    private: bool
    files: dict[str, bytes] = field(default_factory=dict)
    commits: list[str] = field(default_factory=list)  # each commit's summary, oldest first

    @property
    def sha(self) -> str:
        return hashlib.sha1(f"{len(self.commits)}:{sorted(self.files)}".encode()).hexdigest()


def git_oid(data: bytes) -> str:
    """The git blob id the Hub reports for a regular file (what huggingface_hub compares its own with)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class HubStandIn:
    def __init__(self, token: str = "hf_standin"):
        self.token = token
        self.repos: dict[tuple[str, str], Repo] = {}
        self.log: list[str] = []
        self.lock = threading.Lock()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as huggingface_hub's pooled client expects

            def log_message(self, *args):
                pass

            def do_GET(self):
                self._serve(b"")

            def do_POST(self):
                self._serve(self.rfile.read(int(self.headers.get("content-length", 0))))

            def _serve(self, body: bytes):
                path = urlsplit(self.path).path
                with hub.lock:
                    hub.log.append(f"{self.command} {path}")
                    if self.headers.get("authorization") != f"Bearer {hub.token}":
                        return self._answer(401, {"error": "Invalid username or password."},
                                            {"X-Error-Message": "Invalid credentials in Authorization header"})
                    status, answer = hub.route(self.command, path, body)
                self._answer(status, answer)

            def _answer(self, status: int, answer: dict, headers: dict | None = None):
                data = json.dumps(answer).encode()
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def repo_url(self, repo_type: str, repo_id: str) -> str:
        return f"{self.url}/{'' if repo_type == 'model' else repo_type + 's/'}{repo_id}"

    def route(self, method: str, path: str, body: bytes) -> tuple[int, dict]:
        if (method, path) == ("POST", "/api/repos/create"):
            return self.create(json.loads(body))
        if (method, path) == ("POST", "/api/validate-yaml"):
            return 200, {"errors": [], "warnings": []}
        match = REPO_PATH.match(path)
        if match is None:
            return 404, {"error": f"the stand-in has no {method} {path}"}
        repo_type, repo_id, action, _revision = match.groups()
        repo = self.repos.get((repo_type, repo_id))
        if repo is None:
            return 404, {"error": "Repository not found"}
        if method == "GET" and action in (None, "revision"):
            return 200, {"id": repo_id, "sha": repo.sha, "private": repo.private}
        if method == "POST" and action == "preupload":
            return 200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                                    "oid": git_oid(repo.files[f["path"]]) if f["path"] in repo.files else None}
                                   for f in json.loads(body)["files"]]}
        if method == "POST" and action == "commit":
            return self.commit(repo_type, repo_id, repo, body)
        return 404, {"error": f"the stand-in has no {method} {path}"}

    def create(self, payload: dict) -> tuple[int, dict]:
        repo_type = payload.get("type") or "model"
        repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else payload["name"]
        url = self.repo_url(repo_type, repo_id)
        if (repo_type, repo_id) in self.repos:
            return 409, {"error": f"You already created this {repo_type} repo", "url": url}
        self.repos[(repo_type, repo_id)] = Repo(private=payload.get("visibility") == "private")
        return 200, {"url": url, "name": repo_id}

    def commit(self, repo_type: str, repo_id: str, repo: Repo, body: bytes) -> tuple[int, dict]:
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        if not lines or lines[0]["key"] != "header":
            return 400, {"error": "the first line must be the header"}
        for line in lines[1:]:
            if line["key"] != "file" or line["value"].get("encoding") != "base64":
                return 400, {"error": f"the stand-in takes inline base64 files only, not {line['key']}"}
            repo.files[line["value"]["path"]] = base64.b64decode(line["value"]["content"])
        repo.commits.append(lines[0]["value"]["summary"])
        return 200, {"commitUrl": f"{self.repo_url(repo_type, repo_id)}/commit/{repo.sha}", "commitOid": repo.sha}

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def point_at(hub: HubStandIn, monkeypatch, token: str | None = None) -> None:
    """huggingface_hub in this process talks to `hub` with `token` (the hub's own by default). HF_ENDPOINT
    is read by `publish.upload` at each call; the offline switch (conftest's guard against the real Hub)
    was read when huggingface_hub was imported, so it is turned off where the client reads it."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_TOKEN", token or hub.token)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
