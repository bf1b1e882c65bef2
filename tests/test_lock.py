"""One process per run directory: a second holder fails at once naming the first; a killed holder
releases the directory. Real processes hold the lock; writes under pytest's tmp_path only."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import selfimprove
from selfimprove.rundir.lock import RunLockedError, run_lock

HOLDER = """
import sys, time
from selfimprove.rundir.lock import run_lock
with run_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(120)
"""


@pytest.fixture
def holder(tmp_path):
    """Start a real process that holds tmp_path/run; yield (process, run dir); kill it afterwards."""
    script = tmp_path / "hold_run.py"
    script.write_text(HOLDER)
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(Path(selfimprove.__file__).parents[1])}
    proc = subprocess.Popen([sys.executable, str(script), str(run_dir)], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "locked"
    yield proc, run_dir
    proc.kill()
    proc.wait()


def test_second_process_fails_at_once_naming_the_holder(holder):
    proc, run_dir = holder
    start = time.monotonic()
    with pytest.raises(RunLockedError) as e:
        with run_lock(run_dir):
            pytest.fail("two processes held one run directory")
    assert time.monotonic() - start < 2, "the second process must fail at once, not wait"
    message = str(e.value)
    for part in (str(run_dir), f"process {proc.pid}", "hold_run.py", "since 20", f"kill {proc.pid}",
                 "another directory"):
        assert part in message, (part, message)


def test_a_holder_killed_with_sigkill_does_not_wedge_the_directory(holder):
    proc, run_dir = holder
    os.kill(proc.pid, signal.SIGKILL)  # no cleanup code runs: the kernel must drop the lock
    proc.wait()
    assert (run_dir / ".lock").read_text().startswith(f"pid: {proc.pid}\n")  # stale text, no lock
    with run_lock(run_dir) as path:
        assert path.read_text().startswith(f"pid: {os.getpid()}\n")


def test_released_on_exit_and_on_error_and_held_once_per_process(tmp_path):
    with run_lock(tmp_path / "new" / "run") as path:
        assert path == tmp_path / "new" / "run" / ".lock"  # the directory is created
        with pytest.raises(RunLockedError, match=f"process {os.getpid()}"):
            with run_lock(tmp_path / "new" / "run"):  # a second `with` in the same process is refused too
                pass
        (path.parent / "config.yaml").write_text("")  # the run did something: its folder stays
    assert path.read_text() == ""  # the holder's name goes with its lock
    with pytest.raises(ZeroDivisionError):
        with run_lock(tmp_path / "new" / "run"):
            1 / 0
    with run_lock(tmp_path / "new" / "run"):
        pass


def test_a_folder_it_created_and_nothing_used_is_removed_on_the_way_out(tmp_path):
    with pytest.raises(ValueError):
        with run_lock(tmp_path / "run"):
            raise ValueError("refused before any work")
    assert not (tmp_path / "run").exists()
    (tmp_path / "mine").mkdir()  # a folder the user made stays, with the (released) lock file in it
    with run_lock(tmp_path / "mine"):
        pass
    assert [p.name for p in (tmp_path / "mine").iterdir()] == [".lock"]
