"""Generation spread over a Ray cluster: actors that each hold one inner engine (transformers, vLLM, ...).

The generate stage checkpoints a round in chunks of `generate.checkpoint_every` questions; with
this backend it runs up to `workers` chunks at once (`parallel_calls`), each whole chunk on one
actor, and saves each chunk as it finishes. A chunk is the same `generate` call, with the same
seed, that a single-process run makes, so with a deterministic inner engine the artifacts are the
same byte for byte. A worker that dies is restarted by Ray and its chunk is asked again
(`max_restarts`); a driver that dies resumes from the saved chunks: only lost chunks are redone.
`close()` (before training) ends the actors, so no GPU memory stays with them; the next round starts
new ones. An error the inner engine raises on purpose reaches the command line as itself (one line, its
exit code), not as Ray's remote traceback; workers that keep dying past `max_restarts` are one
`RayWorkersLostError` line (exit 5: the machine, most often its memory).

Options (`generate.backend_options`; their types and bounds are written in `RayBackend`'s signature; the
inner engine and its options are checked by that engine's own signature before any actor starts, by the
check `backends.BACKENDS` declares for this backend):
  workers: 2               actors, each with its own engine (and its own copy of the weights)
  inner: transformers      the engine inside each actor, a name from `selfimprove ls` or "module:factory"
  inner_options: {}        that engine's own backend_options
  address: null            null = the cluster named by RAY_ADDRESS, or a new local one; "auto" = the running one
  cpus_per_worker: 1       Ray resources each actor reserves (also its torch thread count)
  gpus_per_worker: 0
  max_restarts: 2          times a dead actor is restarted (its chunk is retried each time; -1 = always)

On a multi-node cluster: `ray start --head` on one machine, `ray start --address HEAD:6379` on the
others, the same selfimprove and model files everywhere, and `address: auto` on the head. vLLM on
several GPUs: `inner: vllm` with `gpus_per_worker: 1` (one engine per GPU), or, for one model over
many GPUs, Ray Data's LLM processor (`ray.data.llm.build_processor`) outside this loop.
"""

from __future__ import annotations

import os
import queue
import threading
from pathlib import Path
from typing import Annotated

from pydantic import Field

from selfimprove.backends.base import Completion, Prompt, SamplingParams
from selfimprove.records import Weights


class RayWorkersLostError(RuntimeError):
    """A worker process died (the OOM killer, a crash) more often than `max_restarts` allows."""


class _Engine:
    """One inner engine inside a Ray actor (created in the actor's process, loaded on first use)."""

    def __init__(self, inner: str, model, generate, options: dict, make_backend):
        self.engine = make_backend(inner, model, generate, options)

    def generate(self, prompts, params, weights):
        return self.engine.generate(prompts, params, weights)

    def count_tokens(self, prompts, weights):
        return [self.engine.count_tokens(p, weights) for p in prompts]

    def max_context(self, weights):
        return self.engine.max_context(weights)

    def has_chat_template(self, weights):
        return self.engine.has_chat_template(weights)

    def close(self):
        self.engine.close()

    def pid(self):
        import os

        return os.getpid()


class RayBackend:
    def __init__(self, model, generate=None, workers: Annotated[int, Field(ge=1)] = 2,
                 inner: str = "transformers", inner_options: dict | None = None,
                 address: str | None = None, cpus_per_worker: Annotated[float, Field(gt=0)] = 1,
                 gpus_per_worker: Annotated[float, Field(ge=0)] = 0, max_restarts: Annotated[int, Field(ge=-1)] = 2,
                 make_backend=None):
        import ray

        if inner == "ray":
            raise ValueError("generate.backend_options.inner: a Ray actor cannot hold another Ray backend")
        if workers < 1:
            raise ValueError("generate.backend_options.workers must be >= 1")
        self._starting = threading.Lock()
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        # Workers import the same selfimprove (a source checkout as well as an install) and see the same
        # PYTHONPATH as this process, so a user's plug-in engine imports there too.
        paths = [Path(__file__).resolve().parents[2]] + [Path(p).resolve() for p in
                                                         os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        env = {"env_vars": {"PYTHONPATH": os.pathsep.join(map(str, paths)),
                            "OMP_NUM_THREADS": str(max(1, int(cpus_per_worker))),
                            "TOKENIZERS_PARALLELISM": "false"}}
        self._actor = ray.remote(_Engine).options(num_cpus=cpus_per_worker, num_gpus=gpus_per_worker,
                                                  max_restarts=max_restarts, max_task_retries=max_restarts,
                                                  runtime_env=env)
        # make_backend (backends.create_backend_from, handed in by it) builds the inner engine in each actor:
        # this module needs no import of the registry that names it.
        self._args = (inner, model, generate, dict(inner_options or {}), make_backend)
        self.workers, self.max_restarts = workers, max_restarts
        self.actors: list = []
        self.idle: queue.Queue = queue.Queue()
        self.parallel_calls = workers  # generate calls the stage may run at once (one per actor)
        self._meta: dict = {}

    def _start(self) -> None:
        """Start the actors (on first use, and after `close()`); each loads its weights on its first call."""
        with self._starting:
            if not self.actors:
                self.actors = [self._actor.remote(*self._args) for _ in range(self.workers)]
                for a in self.actors:
                    self.idle.put(a)

    def _call(self, method: str, *args):
        """Run `method` on an idle actor: each actor does one thing at a time, so calls queue for a free one."""
        import ray

        self._start()
        actor = self.idle.get()
        try:
            return ray.get(getattr(actor, method).remote(*args))
        except ray.exceptions.RayTaskError as err:  # the engine raised inside its actor
            raise _as_raised_here(err) from None
        except ray.exceptions.RayActorError as err:  # its process died, and Ray gave up restarting it
            reason = " ".join(str(err).split()).split(". ")[0]
            raise RayWorkersLostError(
                f"generate.backend 'ray': a worker process died while generating and {self.max_restarts} restart(s) "
                f"did not finish its chunk ({reason}). Most often it ran out of memory (the kernel's OOM killer: "
                "see dmesg): give each worker more room (fewer generate.backend_options.workers, a smaller "
                "generate.batch_size or model) or raise max_restarts, then rerun the same command to resume: "
                "the chunks already saved are kept") from None
        finally:
            if actor in self.actors:  # not one that close() ended meanwhile
                self.idle.put(actor)

    def generate(self, prompts: list[Prompt], params: SamplingParams, weights: Weights,
                 progress=None) -> list[list[Completion]]:
        out = self._call("generate", prompts, params, weights)
        if progress:
            progress(len(prompts))
        return out

    def count_tokens(self, prompt: Prompt, weights: Weights) -> int:
        return self._call("count_tokens", [prompt], weights)[0]

    def max_context(self, weights: Weights) -> int:
        if ("context", weights) not in self._meta:
            self._meta["context", weights] = self._call("max_context", weights)
        return self._meta["context", weights]

    def has_chat_template(self, weights: Weights) -> bool:
        if ("chat", weights) not in self._meta:
            self._meta["chat", weights] = self._call("has_chat_template", weights)
        return self._meta["chat", weights]

    def close(self) -> None:
        """End the actors: their processes, weights and GPU memory (a CUDA context stays with a process
        while it lives). The next call starts new ones; the Ray cluster itself is left as it is."""
        import ray

        with self._starting:
            for a in self.actors:
                ray.kill(a)
            self.actors, self.idle = [], queue.Queue()


def _as_raised_here(err: BaseException) -> BaseException:
    """The inner engine's own error for one it raised on purpose (a selfimprove error, or out of memory or disk),
    so the command line reports it as itself; Ray's error, with the remote traceback, for anything else."""
    cause = getattr(err, "cause", None)
    if cause is not None and (type(cause).__module__.split(".")[0] == "selfimprove"
                              or isinstance(cause, (MemoryError, OSError))):
        return cause
    return err
