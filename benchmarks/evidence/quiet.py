"""The one place a worker process quiets torch, transformers and datasets before it runs a job."""

from __future__ import annotations

import os


def quiet_worker(threads: int = 1) -> None:
    """One torch thread (two single-thread jobs beat one two-thread job on 2 cores), no progress bars
    (the workers' bars would interleave in one log), transformers' warnings off."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import datasets
    import torch
    import transformers

    torch.set_num_threads(threads)
    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
