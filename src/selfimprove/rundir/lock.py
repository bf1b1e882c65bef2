"""One process per run directory: an OS lock on `<run_dir>/.lock`.

Two processes writing one run directory (a run started twice, a resume while the first is still
going) would interleave their artifacts and overwrite each other's manifest. `run_lock(run_dir)`
takes an exclusive `fcntl.flock` on `<run_dir>/.lock` for as long as the `with` block lasts and
writes its holder's pid, host, start time and command line into that file as text, so that a
second process fails at once with a `RunLockedError` saying who holds the directory and what to do.

The kernel drops a flock when the process holding it exits, however it exits (SIGKILL and OOM
kills included), so a dead run never wedges its directory: the `.lock` file stays behind but
holds no lock, and the next run takes it. Reads and writes `<run_dir>/.lock` only, and removes a
run directory it created when the lock is all that is in it at the end.

POSIX only (fcntl). flock over NFS is only as reliable as the NFS server's locking.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import sys
import time
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Iterator

LOCK_NAME = ".lock"


class RunLockedError(RuntimeError):
    """Another process holds the run directory; the message names it and says what to do."""


@contextmanager
def run_lock(run_dir: str | Path) -> Iterator[Path]:
    """Hold `run_dir` for this process for the `with` block; raise RunLockedError at once if another holds it.

    Yields the lock file's path. Creates `run_dir` if it does not exist, and removes it again on the way
    out when nothing but the lock is in it then: a run refused before any work leaves no folder behind.
    """
    run_dir = Path(run_dir)
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_NAME
    # Python opens files non-inheritable, so a program this process starts (the sandbox) never
    # keeps the lock alive after it dies. A bare fork() does share it until the child exits.
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunLockedError(_locked_message(run_dir, _read_holder(path))) from None
        # Truncate only once the lock is ours: before that the text belongs to the holder.
        os.ftruncate(fd, 0)
        os.write(fd, _holder_text().encode())
        try:
            yield path
        finally:
            # Blank the text before letting go, so a stale name never outlives its lock. The file
            # itself stays: unlinking it would let two processes lock two different inodes. Except in
            # a folder this lock created and nothing used: no run is there to protect.
            os.ftruncate(fd, 0)
            if created and [p.name for p in run_dir.iterdir()] == [LOCK_NAME]:
                shutil.rmtree(run_dir, ignore_errors=True)
    finally:
        os.close(fd)  # closing the last descriptor releases the flock


def _holder_text() -> str:
    since = datetime.now().astimezone().isoformat(timespec="seconds")
    command = _one_line(" ".join(sys.argv) or sys.executable)
    return f"pid: {os.getpid()}\nhost: {socket.gethostname()}\nsince: {since}\ncommand: {command}\n"


def _read_holder(path: Path) -> dict[str, str]:
    """The holder's fields from the lock file; empty while the holder has locked but not yet written."""
    for _ in range(20):  # the holder writes right after locking: give it a moment, not forever
        text = path.read_text(errors="replace")
        if text.strip():
            break
        time.sleep(0.01)
    pairs = (line.partition(": ") for line in text.splitlines())
    return {key: value for key, _, value in pairs if value}


def _live_command(pid: str) -> str | None:
    """The command line of a process on this machine, as /proc shows it now (None when unreadable)."""
    try:
        raw = Path(f"/proc/{int(pid)}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return _one_line(raw.replace(b"\0", b" ").decode(errors="replace")) or None


def _one_line(command: str, limit: int = 200) -> str:
    """A command line fit for one line of an error message (`python -c` scripts span several)."""
    command = " ".join(command.split())
    return command if len(command) <= limit else command[:limit - 3] + "..."


def _age(since: str) -> str:
    """' (12 minutes ago)' for an ISO time, or '' when it does not parse."""
    try:
        seconds = (datetime.now().astimezone() - datetime.fromisoformat(since)).total_seconds()
    except (ValueError, TypeError):
        return ""
    if seconds < 120:
        return f" ({seconds:.0f} seconds ago)"
    return f" ({seconds / 60:.0f} minutes ago)" if seconds < 7200 else f" ({seconds / 3600:.1f} hours ago)"


def _locked_message(run_dir: Path, holder: dict[str, str]) -> str:
    pid, host = holder.get("pid"), holder.get("host")
    if pid is None:
        who = "another process (it has not written its name into the lock file yet)"
        stop = "stop it"
    else:
        here = host in (None, socket.gethostname())
        command = (_live_command(pid) if here else None) or holder.get("command")
        who = f"process {pid}" + ("" if here else f" on host {host}")
        who += f" ({command})" if command else ""
        who += f", since {holder['since']}{_age(holder['since'])}" if "since" in holder else ""
        stop = f"stop it (kill {pid})" if here else f"stop it on {host}"
    return (f"{run_dir} is in use by {who}. Only one process may write a run directory at a time. "
            f"Wait for that run to finish, {stop}, or give this run another directory. "
            f"The lock goes away by itself when that process exits, even if it is killed; deleting "
            f"{run_dir / LOCK_NAME} does not release it, it only lets two runs write at once.")
