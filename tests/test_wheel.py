"""The package as users install it: a wheel (not the checkout) runs the demo and `python -m selfimprove`."""

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_python_dash_m_selfimprove():
    out = subprocess.run([sys.executable, "-m", "selfimprove", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "demo" in out.stdout and "run" in out.stdout


def test_a_wheel_installs_and_runs_the_quick_demo(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
                    str(ROOT)], check=True, timeout=300, capture_output=True)
    [wheel] = wheels.glob("selfimprove-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True,
                   timeout=300, capture_output=True)
    # The dependencies come from this environment's site-packages, added as a plain path: its .pth files
    # (including the checkout's editable install) are not processed, so only the wheel provides selfimprove.
    site = next(Path(venv / "lib").glob("python*/site-packages"))
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"OMP_NUM_THREADS": "1"}
    where = subprocess.run([python, "-c", "import selfimprove; print(selfimprove.__file__)"], capture_output=True,
                           text=True, env=env, cwd=tmp_path, timeout=120)
    assert where.returncode == 0 and str(site) in where.stdout, where.stdout + where.stderr
    helped = subprocess.run([python, "-m", "selfimprove", "--help"], capture_output=True, text=True, env=env,
                            cwd=tmp_path, timeout=120)
    assert helped.returncode == 0, helped.stderr
    demo = subprocess.run([venv / "bin" / "selfimprove", "demo", "--quick", "--out", str(tmp_path / "demo")],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
    assert (tmp_path / "demo" / "summary.json").exists()
