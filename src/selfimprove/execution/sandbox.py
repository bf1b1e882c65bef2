"""Run model-written Python in a separate, limited process: `run(code, timeout_s=, memory_mb=)`.

Reads nothing from the run directory and writes nothing there: the code is copied into a fresh
temporary directory (its cwd and $HOME), run, and the directory is deleted afterwards.

What is isolated, by layer (strongest first; `Result.isolation` says which layers took effect):
- process: a separate interpreter (`python -I -S`: no site-packages, no PYTHON* variables, no
  user site), a minimal environment, stdin closed, its own session (process group).
- "pidns": a fresh PID namespace. The process that runs the code is a child of a small init; when
  that init dies (time limit, or the code finishes), the kernel kills every process left in the
  namespace, including ones that called setsid(). Host processes are not visible to signal.
- "netns": a fresh network namespace with no interfaces up (not even loopback): no network at all,
  including 127.0.0.1 services on the host.
- "nobody" (only when the caller is root): the code runs as uid/gid 65534 with no capabilities
  except CAP_DAC_READ_SEARCH (so the interpreter can still read its stdlib under e.g. /root),
  which makes RLIMIT_NPROC apply (root is exempt from it) and blocks writes to root-owned files.
- rlimits: address space (`memory_mb`), CPU seconds (about `timeout_s`), number of processes
  (a fork bomb gets EAGAIN), file size, open files, no core dumps.
- wall clock: after `timeout_s` the whole process group (and with it the namespace) is SIGKILLed.
- output: stdout + stderr are capped at `max_output_bytes`; past it the process is killed.
- nothing left behind: with the PID namespace, `run` returns only after every process of the sandbox
  has exited (a pipe all of them inherit reaches its end of file).
- "guard": a Python audit hook installed before the code runs denies: opening files outside the
  temporary directory and the stdlib for reading, writing anywhere outside the temporary directory,
  listing other directories, exec/spawn/system/subprocess, sockets other than AF_UNIX and all
  connect/bind/sendto, ctypes, gc/frame introspection, and os.kill of other processes.

What it does NOT isolate (be careful with truly hostile code):
- The audit hook is not a security boundary (the CPython docs say so): a clever program may find a
  way around it. The kernel layers above are what contain such a program. So with the guard
  bypassed, files readable by "nobody" (mode o+r, which is common: a run directory made with the
  default umask is readable) can be read, and world-writable places (/tmp, /dev/shm) written.
  There is no mount namespace or chroot: the file system is the host's.
- Disk use: RLIMIT_FSIZE caps each file, not the number of files; the temporary directory lives
  on the host's /tmp.
- Memory: RLIMIT_AS is per process; a program that forks may use up to max_processes x memory_mb.
- CPU: RLIMIT_CPU is per process; the wall-clock kill bounds the total.
- Without root and without unprivileged user namespaces, "pidns", "netns" and "nobody" are absent:
  the code then runs as the caller's user, and only rlimits, the wall clock and the guard apply
  (processes that called setsid() may then outlive the time limit).
- Timing side channels, /proc of the own namespace, and the kernel's attack surface are not
  addressed; there is no seccomp filter.

This file is also the child's entry point: the host runs `python -I -S execution/sandbox.py <config>`, so
it imports only small stdlib modules at the top (notably not `subprocess`, whose
`_posixsubprocess` would hand the code a way to exec).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass

STATUSES = ("ok", "error", "timeout", "memory", "killed")
MEMORY_EXIT = 99  # the child's exit code when the code raised MemoryError
NOBODY = 65534
MAX_PROCESSES = 16  # processes the code may add on top of what "nobody" already runs
MAX_FILE_BYTES = 16 * 2**20
MAX_OPEN_FILES = 64


@dataclass(frozen=True)
class Result:
    status: str  # ok | error | timeout | memory | killed
    stdout: str
    stderr: str
    returncode: int | None  # negative = killed by that signal
    duration_s: float
    detail: str = ""  # why, in words, when the status is not ok
    isolation: tuple[str, ...] = ()  # kernel layers that took effect: pidns, netns, nobody


def run(code: str, *, timeout_s: float, memory_mb: int, max_output_bytes: int = 1_000_000) -> Result:
    """Run `code` as a Python program in a fresh sandboxed process; never raises for what it does."""
    import selectors
    import subprocess

    workdir = tempfile.mkdtemp(prefix="selfimprove-sandbox-")
    with open(os.path.join(workdir, "main.py"), "w", encoding="utf-8") as f:
        f.write(code)
    info_read, info_write = os.pipe()
    # Every process of the sandbox holds the write end (inherited, never written): its end of file says they
    # have all exited, so none is left behind when `run` returns, however slowly a busy machine reaps them.
    gone_read, gone_write = os.pipe()
    config = {"dir": workdir, "memory_mb": memory_mb, "cpu_s": max(1, int(timeout_s + 0.999)),
              "info_fd": info_write}
    env = {"PATH": "/usr/bin:/bin", "HOME": workdir, "LANG": "C.UTF-8", "TMPDIR": workdir}
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", os.path.abspath(__file__), json.dumps(config)],
            cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, start_new_session=True, pass_fds=(info_write, gone_write))
        os.close(info_write)
        os.close(gone_write)
        info_write = gone_write = None  # closed: closing the number again could close another thread's new one
        with selectors.DefaultSelector() as selector:
            stdout, stderr, stopped = _collect(proc, selector, start + timeout_s, max_output_bytes)
        _kill_group(proc.pid)
        returncode = proc.wait()
        duration = time.monotonic() - start
        isolation = tuple(x for x in _read_all(info_read).decode().split(",") if x)
        if "pidns" in isolation:  # the kernel kills the namespace's processes with its init: the end comes
            _wait_for_end_of_file(gone_read)
    finally:
        for fd in (info_read, info_write, gone_read, gone_write):
            if fd is None:
                continue
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(workdir, ignore_errors=True)
    out = stdout.decode("utf-8", "replace")
    err = stderr.decode("utf-8", "replace")
    status, detail = _classify(stopped, returncode, err, timeout_s, max_output_bytes)
    return Result(status, out, err, returncode, duration, detail, isolation)


def run_many(codes: list[str], *, timeout_s: float, memory_mb: int, workers: int | None = None,
             max_output_bytes: int = 1_000_000) -> list[Result]:
    """`run` for each program, up to `workers` at once (default: the CPU count), results in order.

    Every program gets exactly the limits `run` gives it alone (its own process tree, namespaces,
    rlimits and wall clock); only the waiting overlaps. Threads suffice: each one sits in
    `select()` on its own child's pipes.
    """
    from concurrent.futures import ThreadPoolExecutor

    workers = max(1, min(workers or os.cpu_count() or 1, len(codes) or 1))
    if workers == 1:
        return [run(c, timeout_s=timeout_s, memory_mb=memory_mb, max_output_bytes=max_output_bytes) for c in codes]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda c: run(c, timeout_s=timeout_s, memory_mb=memory_mb,
                                           max_output_bytes=max_output_bytes), codes))


def unavailable() -> str | None:
    """Why model-written programs cannot be run here, in words; None when the sandbox works.

    The sandbox needs POSIX processes, rlimits and /proc (Linux); checked before a code task starts.
    """
    if not sys.platform.startswith("linux"):
        return f"the sandbox runs programs only on Linux (this is {sys.platform})"
    try:
        import resource  # noqa: F401
    except ImportError:
        return "the sandbox needs the `resource` module (rlimits), which this Python lacks"
    if not os.path.isdir("/proc"):
        return "the sandbox needs /proc to count processes for its process limit"
    return None


def _collect(proc, selector, deadline: float, cap: int) -> tuple[bytes, bytes, str]:
    """Read stdout/stderr until both close, the deadline passes, or the output cap is reached."""
    import selectors

    chunks = {proc.stdout.fileno(): bytearray(), proc.stderr.fileno(): bytearray()}
    for stream in (proc.stdout, proc.stderr):
        selector.register(stream, selectors.EVENT_READ)
    total, stopped, exited_at = 0, "", None
    while selector.get_map():
        now = time.monotonic()
        if now >= deadline:
            stopped = "timeout"
            break
        if exited_at is None and proc.poll() is not None:
            exited_at = now
            _kill_group(proc.pid)  # stragglers in the group must not keep the pipes open
        if exited_at is not None and now - exited_at > 1.0:
            break
        for key, _ in selector.select(timeout=min(0.1, deadline - now)):
            data = os.read(key.fd, 65536)
            if not data:
                selector.unregister(key.fileobj)
                continue
            chunks[key.fd] += data
            total += len(data)
        if total > cap:
            stopped = "output"
            break
    if stopped:
        _kill_group(proc.pid)
    out, err = chunks[proc.stdout.fileno()], chunks[proc.stderr.fileno()]
    proc.stdout.close()
    proc.stderr.close()
    return bytes(out[:cap]), bytes(err[: max(0, cap - len(out))]), stopped


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _wait_for_end_of_file(fd: int) -> None:
    """Block until no process holds the pipe's write end any more (what it reads is ignored)."""
    while os.read(fd, 4096):
        pass


def _read_all(fd: int) -> bytes:
    os.set_blocking(fd, False)
    try:
        return os.read(fd, 4096)
    except (BlockingIOError, OSError):
        return b""


def _classify(stopped: str, returncode: int, stderr: str, timeout_s: float, cap: int) -> tuple[str, str]:
    if stopped == "timeout":
        return "timeout", f"wall-clock limit of {timeout_s:g}s reached"
    if stopped == "output":
        return "killed", f"output exceeded {cap} bytes"
    if returncode == 0:
        return "ok", ""
    if returncode == MEMORY_EXIT or "MemoryError" in stderr[-2000:]:
        return "memory", "memory limit reached"
    if returncode < 0:
        sig = -returncode
        if sig == signal.SIGXCPU:
            return "timeout", "CPU time limit reached"
        return "killed", f"killed by signal {signal.Signals(sig).name}"
    return "error", f"exit code {returncode}"


# ---------------------------------------------------------------------------------------------
# The child side. Runs in `python -I -S execution/sandbox.py CONFIG`, single-threaded, before any user code.
# Process tree: launcher (host namespaces) -> init (pid 1 of a new PID namespace) -> worker.

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
PR_SET_PDEATHSIG, PR_SET_KEEPCAPS, PR_SET_NO_NEW_PRIVS = 1, 8, 38
CAP_DAC_READ_SEARCH = 2


def _child_main(config: dict) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    as_root = os.geteuid() == 0
    layers = _unshare(libc, as_root)
    status_read, status_write = os.pipe()
    init = os.fork()
    if init == 0:
        os.close(status_read)
        _init_main(libc, config, as_root, layers, status_write)
    os.close(status_write)
    os.waitpid(init, 0)
    status = int(os.read(status_read, 64) or b"-9")  # nothing written: init was killed
    _exit_like(status)


def _unshare(libc, as_root: bool) -> list[str]:
    """New PID + network namespaces if the kernel lets us (root, or unprivileged user namespaces)."""
    base = CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
    for flags in ((base,) if as_root else ()) + (base | CLONE_NEWUSER,):
        if libc.unshare(flags) == 0:
            return ["pidns", "netns"]
    return []


def _init_main(libc, config: dict, as_root: bool, layers: list[str], status_fd: int) -> None:
    """Pid 1 of the namespace: run the worker, report its wait status, exit (killing the rest)."""
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    worker = os.fork()
    if worker == 0:
        os.close(status_fd)
        _worker_main(libc, config, as_root, layers)
    _, wait_status = os.waitpid(worker, 0)
    code = -os.WTERMSIG(wait_status) if os.WIFSIGNALED(wait_status) else os.WEXITSTATUS(wait_status)
    os.write(status_fd, str(code).encode())
    os._exit(0)


def _exit_like(code: int) -> None:
    """Exit the launcher the way the worker exited, so the host sees the worker's status."""
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        time.sleep(1)
        os._exit(128 - code)
    os._exit(code)


def _worker_main(libc, config: dict, as_root: bool, layers: list[str]) -> None:
    import builtins
    import pathlib
    import resource

    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    workdir = os.path.realpath(config["dir"])
    try:
        if as_root and _drop_to_nobody(libc, workdir):
            layers = layers + ["nobody"]
    except OSError:
        pass  # a container without CAP_SETUID: run on as root; `isolation` will not say "nobody"
    os.write(config["info_fd"], ",".join(layers).encode())
    os.close(config["info_fd"])
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    uid = os.getuid()
    limits = {
        resource.RLIMIT_AS: config["memory_mb"] * 2**20,
        resource.RLIMIT_CPU: config["cpu_s"],
        resource.RLIMIT_NPROC: _count_processes(uid) + MAX_PROCESSES,
        resource.RLIMIT_FSIZE: MAX_FILE_BYTES,
        resource.RLIMIT_NOFILE: MAX_OPEN_FILES,
        resource.RLIMIT_CORE: 0,
    }
    for which, value in limits.items():
        hard = value + 1 if which == resource.RLIMIT_CPU else value  # SIGXCPU first, then SIGKILL
        resource.setrlimit(which, (value, hard))
    with open(os.path.join(workdir, "main.py"), encoding="utf-8") as f:
        source = f.read()
    stdlib = os.path.dirname(os.__file__)
    readable = (workdir, stdlib, "/dev/null", "/dev/zero", "/dev/urandom", "/usr/share/zoneinfo")
    _install_guard(workdir, readable, pathlib.PurePath.__fspath__)
    for name in ("ctypes", "_ctypes", "ctypes._endian"):
        sys.modules.pop(name, None)  # a fresh `import ctypes` now meets the guard
    del libc
    _run_code(source, builtins)


def _drop_to_nobody(libc, workdir: str) -> bool:
    """uid/gid 65534 keeping only CAP_DAC_READ_SEARCH (the interpreter's files may be root-only)."""
    import ctypes

    os.chown(workdir, NOBODY, NOBODY)
    libc.prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0)
    os.setgroups([])
    os.setresgid(NOBODY, NOBODY, NOBODY)
    os.setresuid(NOBODY, NOBODY, NOBODY)

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]

    keep = 1 << CAP_DAC_READ_SEARCH
    data = (Data * 2)(Data(keep, keep, 0), Data(0, 0, 0))
    return libc.capset(ctypes.byref(Header(0x20080522, 0)), data) == 0


def _count_processes(uid: int) -> int:
    count = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    count += 1
            except OSError:
                pass
    return count


def _run_code(source: str, builtins) -> None:
    try:
        code = compile(source, "main.py", "exec")
        exec(code, {"__name__": "__main__", "__builtins__": builtins})
    except MemoryError:
        sys.stderr.write("MemoryError: the sandbox's memory limit was reached\n")
        sys.stderr.flush()
        os._exit(MEMORY_EXIT)
    except SystemExit:
        raise
    except BaseException:
        import traceback

        traceback.print_exc()
        sys.exit(1)
    sys.exit(0)


DENIED_EVENTS = frozenset({
    "os.exec", "os.posix_spawn", "os.spawn", "os.system", "os.startfile", "subprocess.Popen",
    "socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg", "socket.getaddrinfo",
    "socket.gethostbyname", "socket.gethostbyaddr", "gc.get_objects", "gc.get_referrers",
    "gc.get_referents", "os.setxattr", "os.removexattr",
})
DENIED_IMPORTS = frozenset({"ctypes", "_ctypes", "_posixsubprocess", "_xxsubinterpreters", "_testcapi",
                            "_testinternalcapi", "subprocess"})
WRITE_EVENTS = frozenset({"os.mkdir", "os.remove", "os.rmdir", "os.rename", "os.link", "os.truncate",
                          "os.chmod", "os.chown", "os.utime", "os.lockf", "shutil.rmtree",
                          "shutil.copyfile", "shutil.copymode", "shutil.copystat", "shutil.move"})
READ_EVENTS = frozenset({"os.listdir", "os.scandir", "os.chdir", "os.walk", "os.fwalk", "glob.glob",
                         "os.listxattr", "os.getxattr"})
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def _install_guard(workdir: str, readable: tuple[str, ...], pure_fspath) -> None:
    """The audit hook described in the module docstring. Denial = PermissionError in the code."""
    realpath, own_pid, write_roots = os.path.realpath, os.getpid(), (workdir, "/dev/null")

    def under(path, roots) -> bool:
        if path is None or isinstance(path, int):
            return True  # cwd or an already open descriptor
        if not isinstance(path, (str, bytes)):
            if getattr(type(path), "__fspath__", None) is not pure_fspath:
                return False  # a custom __fspath__ could answer differently the second time
            path = pure_fspath(path)
        if isinstance(path, bytes):
            path = path.decode("utf-8", "surrogateescape")
        full = realpath(path)
        return any(full == root or full.startswith(root.rstrip("/") + "/") for root in roots)

    def hook(event: str, args: tuple) -> None:
        if event in DENIED_EVENTS or event.startswith("ctypes."):
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event == "import" and args[0] in DENIED_IMPORTS:
            raise PermissionError(f"sandbox: importing {args[0]} is not allowed")
        if event == "open":
            path, flags = args[0], args[2] or 0
            roots = write_roots if flags & WRITE_FLAGS else readable
            if not under(path, roots):
                raise PermissionError(f"sandbox: no access to {path!r}")
        elif event in READ_EVENTS and args and not under(args[0], readable):
            raise PermissionError(f"sandbox: no access to {args[0]!r}")
        elif event in WRITE_EVENTS or event == "os.symlink":
            paths = args[1:2] if event == "os.symlink" else args[:2]
            for path in paths:
                if isinstance(path, (str, bytes)) and not under(path, write_roots):
                    raise PermissionError(f"sandbox: no writing to {path!r}")
        elif event == "socket.__new__" and args[1] != 1:  # only AF_UNIX (socketpair)
            raise PermissionError("sandbox: no network")
        elif event in ("os.kill", "os.killpg") and args[0] not in (0, own_pid):
            raise PermissionError("sandbox: no signals to other processes")
        elif event == "object.__setattr__" and args[1] in ("__code__", "__closure__", "__globals__"):
            raise PermissionError("sandbox: code objects are read-only")

    sys.addaudithook(hook)


if __name__ == "__main__":
    _child_main(json.loads(sys.argv[1]))
