"""A merged transformers folder as one GGUF file, with llama.cpp's own converter (`convert_hf_to_gguf.py`).

The converter is not on the package index as a package of its own; it ships in llama.cpp's source tree,
which llama-cpp-python's source distribution vendors. So it is found, in this order:
1. `LLAMA_CPP_DIR`: a llama.cpp checkout (a user who builds llama.cpp has one; its converter matches it);
2. the cache, `$XDG_CACHE_HOME/selfimprove/llama.cpp-<LLAMA_CPP_PYTHON>/`, filled once by 3;
3. `pip download llama-cpp-python==<LLAMA_CPP_PYTHON>` (the source archive, about 75 MB, from the package
   index pip is configured for), of which only the converter, its `conversion/` package and `gguf-py/` are
   kept in the cache.
The version is the one `make server-deps` builds the llama.cpp runtime from, so the GGUF the converter
writes is one the tested runtime reads. The converter runs in its own process with this Python (it needs
torch, transformers and numpy, which are here) and its own `gguf-py`, the version it was written against.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

LLAMA_CPP_PYTHON = "0.3.36"
# What the converter writes without a separate quantize step (llama.cpp's `--outtype`); k-quants such as
# Q4_K_M need llama.cpp's `llama-quantize` on the f16 file.
OUTTYPES = ("f16", "bf16", "f32", "q8_0")
CONVERTER = "convert_hf_to_gguf.py"
KEEP = (CONVERTER, "conversion", "gguf-py")  # what of llama.cpp's tree the converter imports


class GGUFExportError(RuntimeError):
    """The converter cannot be found, fetched or run; the message says what to do."""


def cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "selfimprove"


def converter(outtype: str = "f16") -> Path:
    """The llama.cpp folder holding `convert_hf_to_gguf.py` (`LLAMA_CPP_DIR`, else the cache, else fetched),
    once `outtype` is known to be one it writes."""
    if outtype not in OUTTYPES:
        raise GGUFExportError(f"--gguf {outtype!r} is not a type llama.cpp's converter writes: use one of "
                              f"{', '.join(OUTTYPES)} (quantize further with llama.cpp's llama-quantize)")
    if os.environ.get("LLAMA_CPP_DIR"):
        folder = Path(os.environ["LLAMA_CPP_DIR"]).expanduser()
        if not (folder / CONVERTER).is_file():
            raise GGUFExportError(f"LLAMA_CPP_DIR={folder} has no {CONVERTER}: point it at a llama.cpp checkout "
                                  "(its top folder), or unset it to fetch the converter from the package index")
        return folder
    cached = cache_root() / f"llama.cpp-{LLAMA_CPP_PYTHON}"
    if not (cached / CONVERTER).is_file():
        fetch(cached)
    return cached


def fetch(into: Path) -> None:
    """Download llama-cpp-python's source archive with pip and keep llama.cpp's converter from it. Written
    to a temporary folder first and renamed, so an interrupted fetch leaves no half converter behind."""
    into.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=into.parent, prefix=".fetch-") as tmp:
        pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--quiet",
               "--dest", tmp, f"llama-cpp-python=={LLAMA_CPP_PYTHON}"]
        print(f"fetching llama.cpp's GGUF converter (llama-cpp-python {LLAMA_CPP_PYTHON} source, ~75 MB) into "
              f"{into}", file=sys.stderr)
        done = subprocess.run(pip, capture_output=True, text=True)
        archives = list(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
        if done.returncode or not archives:
            raise GGUFExportError(
                f"could not download llama-cpp-python=={LLAMA_CPP_PYTHON}'s source for llama.cpp's GGUF converter "
                f"({_last_line(done.stderr) or 'pip found no source archive'}); set LLAMA_CPP_DIR to a llama.cpp "
                "checkout instead, or export without --gguf")
        vendor = f"llama_cpp_python-{LLAMA_CPP_PYTHON}/vendor/llama.cpp/"
        staged = Path(tmp) / "llama.cpp"
        with tarfile.open(archives[0]) as archive:
            members = [m for m in archive.getmembers() if m.name.startswith(vendor)
                       and m.name[len(vendor):].split("/")[0] in KEEP and (m.isfile() or m.isdir())]
            for m in members:
                m.name = m.name[len(vendor):]
            archive.extractall(staged, members=members, filter="data")
        if not (staged / CONVERTER).is_file():
            raise GGUFExportError(f"llama-cpp-python {LLAMA_CPP_PYTHON}'s source has no {CONVERTER}; set "
                                  "LLAMA_CPP_DIR to a llama.cpp checkout")
        shutil.rmtree(into, ignore_errors=True)
        staged.rename(into)


def to_gguf(folder: Path, outtype: str = "f16", tool: Path | None = None, out: Path | None = None) -> Path:
    """Convert the transformers folder `folder` to `out` (default `folder/model-<outtype>.gguf`) and return it.
    A failure keeps the converter's log beside `out` and names it with the converter's last line."""
    tool = tool or converter(outtype)
    out = out or folder / f"model-{outtype}.gguf"
    log = out.with_suffix(".log")
    partial = out.with_name(f".{out.name}.partial")
    with log.open("w") as sink:
        done = subprocess.run([sys.executable, str(tool / CONVERTER), str(folder), "--outfile", str(partial),
                               "--outtype", outtype], cwd=tool, stdout=sink, stderr=subprocess.STDOUT,
                              env={**os.environ, "PYTHONPATH": str(tool)})
    if done.returncode or not partial.is_file():
        partial.unlink(missing_ok=True)
        raise GGUFExportError(f"llama.cpp's converter ({tool / CONVERTER}) could not convert {folder}: "
                              f"{_last_line(log.read_text())} (full log: {log})")
    partial.replace(out)  # whole or absent: a reader never sees a half-written GGUF
    log.unlink()
    return out


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""
