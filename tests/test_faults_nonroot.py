"""Real faults, met as a user meets them: not as root, on a full disk, in a folder the user cannot write,
and out of memory. Each gives its exit code and one `error:` line naming the place, and after the fault
is gone the same command finishes the run with everything the interrupted run had done kept: the final
artifacts equal those of a run that never met the fault.

Run as root (CI's container), the runs drop privileges to `nobody` (setuid in the child, capabilities gone
with root); run as a plain user, they run as that user, who is one already. The full disk is a real
size-limited tmpfs mounted for the test (root only: that one test skips for a plain user, whose full disk
is test_errors_cli's file size limit); the memory limit is the child's address-space limit (RLIMIT_AS), and
what exhausts it is a real allocation by an engine (a plug-in backend that asks torch for a buffer as an
engine's KV cache would).
"""

from __future__ import annotations

import os
import pwd
import resource
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from test_errors_cli import base_config, cli, fake_model, write_config
from test_resume_kill import final_artifacts

ROOT = os.geteuid() == 0  # root drops to `nobody`; a plain user is one already
NOBODY = pwd.getpwnam("nobody")


def as_nobody():
    """preexec_fn: the child runs as `nobody`, with no supplementary groups (as root; else as this user)."""
    if not ROOT:
        return
    os.setgroups([])
    os.setgid(NOBODY.pw_gid)
    os.setuid(NOBODY.pw_uid)


def run_as_nobody(*args, home: Path, preexec=None, **extra):
    def drop():
        if preexec:
            preexec()
        as_nobody()

    return cli(*args, preexec_fn=drop, HOME=str(home), SELFIMPROVE_CACHE=str(home / "cache"), **extra)


def one_error_line(result, *needles) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stdout + result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


@pytest.fixture(scope="module", autouse=True)
def python_for_nobody():
    """Let `nobody` reach this Python: an interpreter under /root (pyenv's) sits behind a 0700 folder. Every
    folder on the way gets search permission (not listing) for the module's duration, then its mode back."""
    changed = []
    if not ROOT:  # this user runs the children, and runs this Python already
        yield
        return
    for folder in [*Path(os.path.realpath(sys.executable)).parents, *Path(sys.executable).parents]:
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            changed.append((folder, mode))
            os.chmod(folder, mode | stat.S_IXOTH)
    yield
    for folder, mode in changed:
        os.chmod(folder, stat.S_IMODE(mode))


@pytest.fixture
def lab():
    """A lab `nobody` can read (pytest's own temporary folders are root's alone): model folder, configs."""
    lab = Path(tempfile.mkdtemp(prefix="selfimprove-faults-"))
    os.chmod(lab, 0o755)
    fake_model(lab / "model")
    yield lab
    subprocess.run(["umount", "-l", str(lab / "disk")], check=False, capture_output=True)
    shutil.rmtree(lab, ignore_errors=True)


@pytest.fixture
def home(lab) -> Path:
    """A home folder `nobody` can write."""
    home = lab / "home"
    home.mkdir()
    if ROOT:
        os.chown(home, NOBODY.pw_uid, NOBODY.pw_gid)
    return home


@pytest.fixture
def small_disk(lab):
    """A 1 MB tmpfs owned by `nobody`: mounted for the test, unmounted after it."""
    if not ROOT or shutil.which("mount") is None:
        pytest.skip("mounting a small file system needs root and mount (a plain user's full disk is "
                    "test_errors_cli's file size limit)")
    mount = lab / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size=1m,uid={NOBODY.pw_uid},gid={NOBODY.pw_gid},mode=0755",
                    "tmpfs", str(mount)], check=True)
    return mount


def reference(lab, home) -> dict:
    """The artifacts of the same run where nothing goes wrong."""
    root = home / "reference"
    config = write_config(lab / "ref.yaml", base_config(lab, root))
    assert run_as_nobody("run", config, home=home).returncode == 0
    return final_artifacts(root)


def test_a_full_disk_is_one_line_and_the_run_resumes_when_there_is_room(lab, home, small_disk):
    root = small_disk / "run"
    config = write_config(lab / "c.yaml", base_config(lab, root))
    (small_disk / "ballast").write_bytes(b"\0" * (1024 * 1024 - 96 * 1024))  # leave ~96 kB: the run needs more
    os.chown(small_disk / "ballast", NOBODY.pw_uid, NOBODY.pw_gid)
    result = run_as_nobody("run", config, home=home)
    assert result.returncode == 5, result.stdout + result.stderr
    one_error_line(result, "the disk is full", str(root))
    (small_disk / "ballast").unlink()  # room again
    assert run_as_nobody("run", config, home=home).returncode == 0
    assert run_as_nobody("verify", root, home=home).returncode == 0
    assert final_artifacts(root) == reference(lab, home)


def test_a_folder_the_user_cannot_write_is_one_line_and_nothing_is_left_behind(lab, home):
    locked = lab / "shared-runs"  # root's, 0755 (a plain user's own, 0555): the user may read it, not create in it
    locked.mkdir(mode=0o755 if ROOT else 0o555)
    root = locked / "run"
    config = write_config(lab / "c.yaml", base_config(lab, root))
    result = run_as_nobody("run", config, home=home)
    assert result.returncode == 5, result.stdout + result.stderr
    one_error_line(result, "permission denied", str(locked))
    assert not root.exists()
    if ROOT:  # the admin gives the user the folder
        os.chown(locked, NOBODY.pw_uid, NOBODY.pw_gid)
    else:  # the user makes it writable
        os.chmod(locked, 0o755)
    assert run_as_nobody("run", config, home=home).returncode == 0
    assert final_artifacts(root) == reference(lab, home)


def test_a_run_folder_made_read_only_mid_run_stops_with_one_line_and_resumes(lab, home):
    root = home / "run"
    config = write_config(lab / "c.yaml", base_config(lab, root, run={"rounds": 2}))
    assert run_as_nobody("run", config, "run.rounds=1", home=home).returncode == 0  # round 1 done
    os.chmod(root / "rounds", 0o555)  # round 2 cannot make its folder
    more = ("run", config, "--allow-config-change")  # two rounds now: the run continues
    result = run_as_nobody(*more, home=home)
    assert result.returncode == 5, result.stdout + result.stderr
    one_error_line(result, "permission denied", str(root / "rounds"))
    os.chmod(root / "rounds", 0o755)
    assert run_as_nobody(*more, home=home).returncode == 0
    assert run_as_nobody("verify", root, home=home).returncode == 0
    ref_root = home / "reference"
    ref = write_config(lab / "ref.yaml", base_config(lab, ref_root, run={"rounds": 2}))
    assert run_as_nobody("run", ref, home=home).returncode == 0
    resumed = {k: v for k, v in final_artifacts(root).items() if k != "config_changes.jsonl"}
    assert resumed == final_artifacts(ref_root)


HUNGRY_ENGINE = '''
import os
import torch
from cli_plugins import EchoBackend

class Hungry(EchoBackend):
    """Round 1's sampling asks for a KV cache of HUNGRY_GIB gibibytes, as an engine sized for a bigger
    machine would; its other calls answer as the echo backend does."""

    def generate(self, prompts, params, weights, progress=None):
        if params.n > 2 and os.environ.get("HUNGRY_GIB"):
            torch.empty(int(float(os.environ["HUNGRY_GIB"]) * 2**30), dtype=torch.uint8).fill_(1)
        return super().generate(prompts, params, weights, progress)

def backend(model, generate):
    return Hungry()
'''


def test_memory_exhaustion_is_one_line_with_the_fix_and_the_run_resumes(lab, home):
    (lab / "hungry.py").write_text(HUNGRY_ENGINE)
    root = home / "run"
    config = write_config(lab / "c.yaml", base_config(lab, root, generate={"backend": "hungry:backend",
                                                                                     "k": 4}))

    def limit_memory():  # 6 GiB of address space: enough to start and score round 0, not for 16 GiB more
        resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))

    result = run_as_nobody("run", config, home=home, preexec=limit_memory, HUNGRY_GIB="16", path=str(lab))
    assert result.returncode == 5, result.stdout + result.stderr
    one_error_line(result, "out of memory", "batch_size")
    assert (root / "rounds" / "r00" / "metrics.json").is_file()  # round 0 was done before the fault: kept
    assert run_as_nobody("run", config, home=home, path=str(lab)).returncode == 0
    assert run_as_nobody("verify", root, home=home).returncode == 0
