"""The sandbox contains hostile programs (real subprocesses) and reports each with its status.

Programs expected to end by themselves get a long wall-clock limit (a busy machine is slow to start
Python, and the limit counts that); only the cases that test the limit get a short one. Every case
also checks that this test process is unharmed: it can still fork, its files are intact, and no
process of its sandboxes is left behind (counted by their work folders, so that other jobs'
sandboxes on a busy machine are not counted), looked at once when `sandbox.run` returns: it returns only
after they have all exited, so no wait is needed however slow the machine.
"""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

import pytest

from selfimprove.execution import sandbox

FORK_BOMB = """
import os
while True:
    try:
        os.fork()
    except OSError:
        pass
"""
MEMORY_BOMB = "blocks = []\nwhile True:\n    blocks.append(bytearray(10**7))\n"
INFINITE_LOOP = "while True:\n    pass\n"
SLEEPER = "import time\ntime.sleep(60)\n"
HUGE_OUTPUT = "while True:\n    print('x' * 10000)\n"
ESCAPED_CHILD = """
import os, time
if os.fork() == 0:
    os.setsid()
    time.sleep(60)
print('parent done')
"""

CASES = [
    # name, code, expected status, text expected in stdout + stderr
    ("ok", "print(sum(range(10)))", "ok", "45"),
    ("stdlib", "import json, fractions\nprint(json.dumps(str(fractions.Fraction(1, 3))))", "ok", "1/3"),
    ("exception", "1 / 0", "error", "ZeroDivisionError"),
    ("exit code", "import sys\nsys.exit(3)", "error", ""),
    ("fork bomb", FORK_BOMB, "timeout", ""),
    ("memory bomb", MEMORY_BOMB, "memory", "MemoryError"),
    ("infinite loop", INFINITE_LOOP, "timeout", ""),
    ("sleeping", SLEEPER, "timeout", ""),
    ("huge output", HUGE_OUTPUT, "killed", "xxxx"),
    ("exec a shell", "import os\nos.execv('/bin/sh', ['sh', '-c', 'echo escaped'])", "error", "not allowed"),
    ("ctypes", "import ctypes", "error", "not allowed"),
    ("own files", "open('f.txt', 'w').write('hi')\nprint(open('f.txt').read())", "ok", "hi"),
    ("setsid child", ESCAPED_CHILD, "ok", "parent done"),
]


@pytest.fixture
def workdirs(monkeypatch) -> list[str]:
    """The work folders of the sandboxes this test starts (each child's command line names its own)."""
    made = []
    real = tempfile.mkdtemp

    def mkdtemp(*args, **kwargs):
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(sandbox.tempfile, "mkdtemp", mkdtemp)
    return made


def _sandbox_processes_alive(workdirs: list[str]) -> list[int]:
    """This test's sandboxed processes still alive, forked children included (they keep the command line)."""
    assert workdirs, "no sandbox was started"
    alive = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
            except OSError:
                continue
            if b"execution/sandbox.py" in cmdline and any(w.encode() in cmdline for w in workdirs):
                alive.append(int(name))
    return alive


def _assert_unharmed(workdirs: list[str]):
    pid = os.fork()  # a fork bomb must not have exhausted our process slots
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    assert _sandbox_processes_alive(workdirs) == []  # sandbox.run returns after they have all exited


@pytest.mark.parametrize("name,code,status,text", CASES, ids=[c[0] for c in CASES])
def test_status(name, code, status, text, workdirs):
    # A short wall-clock limit where the limit is what is tested; elsewhere room for a busy machine to
    # start Python, which the limit also counts.
    timeout_s = 1.5 if status == "timeout" else 60
    result = sandbox.run(code, timeout_s=timeout_s, memory_mb=256)
    assert result.status == status, (result.status, result.detail, result.stderr[-500:])
    assert text in result.stdout + result.stderr
    assert result.duration_s < timeout_s + 4.5  # the wall clock is enforced (until the program's exit is seen)
    assert len(result.stdout) + len(result.stderr) <= 1_000_000
    _assert_unharmed(workdirs)


def test_network_is_unreachable(workdirs):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        server.settimeout(0.3)
        port = server.getsockname()[1]
        code = f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=1)\ns.sendall(b'hi')"
        result = sandbox.run(code, timeout_s=60, memory_mb=256)
        with pytest.raises(socket.timeout):
            server.accept()  # nobody connected
    assert result.status == "error"
    _assert_unharmed(workdirs)


def test_cannot_write_outside_its_directory(tmp_path):
    target = tmp_path / "evil.txt"
    os.chmod(tmp_path, 0o777)  # even a world-writable directory stays out of reach
    result = sandbox.run(f"open({str(target)!r}, 'w').write('x')", timeout_s=60, memory_mb=256)
    assert result.status == "error"
    assert not target.exists()


def test_cannot_read_the_run_directory(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "rounds").mkdir(parents=True)
    (run_dir / "pool_gold.jsonl").write_text("SECRET-GOLD\n")
    os.chmod(tmp_path, 0o755)
    code = (f"import os\nprint(os.listdir({str(run_dir)!r}))\n"
            f"print(open({str(run_dir / 'pool_gold.jsonl')!r}).read())")
    result = sandbox.run(code, timeout_s=60, memory_mb=256)
    assert result.status == "error"
    assert "SECRET-GOLD" not in result.stdout + result.stderr
    assert "pool_gold" not in result.stdout
    code = f"print(open({str(run_dir / 'pool_gold.jsonl')!r}).read())"
    result = sandbox.run(code, timeout_s=60, memory_mb=256)
    assert result.status == "error"
    assert "SECRET-GOLD" not in result.stdout + result.stderr


def test_temporary_directory_is_fresh_and_removed():
    code = "import os\nprint(os.getcwd())\nprint(sorted(os.listdir('.')))"
    first = sandbox.run(code, timeout_s=60, memory_mb=256)
    second = sandbox.run(code, timeout_s=60, memory_mb=256)
    assert first.status == second.status == "ok"
    cwd_first, listing = first.stdout.splitlines()
    assert listing == "['main.py']"
    assert cwd_first != second.stdout.splitlines()[0]
    assert not os.path.exists(cwd_first)


def test_environment_is_minimal(monkeypatch):
    monkeypatch.setenv("SECRET_TOKEN", "abc123")
    result = sandbox.run("import os\nprint(dict(os.environ))", timeout_s=60, memory_mb=256)
    assert result.status == "ok"
    assert "abc123" not in result.stdout


def test_result_reports_isolation_layers():
    result = sandbox.run("pass", timeout_s=60, memory_mb=256)
    assert result.status == "ok"
    assert set(result.isolation) <= {"pidns", "netns", "nobody"}
    if os.geteuid() == 0:
        assert "nobody" in result.isolation
