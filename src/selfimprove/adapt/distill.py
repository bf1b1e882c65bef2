"""Distillation (LMSI's 540B -> 62B): a teacher samples and votes, a different student learns.

`adapt.method: distill` with `model.name` = the teacher (a model, or a finished run directory whose
final weights teach: see rundir/finished.py) and `adapt.learner` = the student, a smaller model of any
family. The round's paths are the teacher's, voted and gated exactly as in self-improvement; the
student is fine-tuned on the trusted ones with the SFT trainer. The pairs are rendered in the
student's own prompt style (its chat template or plain completion, `RunContext.student_style`), not
copied from the teacher's prompts, and the student is scored on the held-out set every round in that
style. The teacher's weights are only read. Writes `rounds/rNN/distill.json`: who taught whom, and how.
"""

from __future__ import annotations

from selfimprove.rundir import layout
from selfimprove.adapt.base import Adapted, AdaptInputs, start_weights
from selfimprove.adapt.sft import sft
from selfimprove.context import RunContext

RECORD = "distill.json"


def distill(ctx: RunContext, round_: int, inputs: AdaptInputs) -> Adapted:
    if not ctx.teacher_samples:
        raise ValueError(f"{ctx.config.where('adapt.method')}: adapt.method=distill needs a student: set "
                         "adapt.learner to the model that learns (model.name is the teacher)")
    start = start_weights(ctx, inputs)
    adapted = sft(ctx, round_, inputs)
    ctx.store.produce_json(layout.round_file(round_, RECORD), lambda: {
        "teacher": {"model": inputs.sampler.model, "adapter": inputs.sampler.adapter},
        "student_start": {"model": start.model, "adapter": start.adapter},
        "student": {"model": adapted.weights.model, "adapter": adapted.weights.adapter},
        "student_chat": ctx.student_style.chat, "teacher_chat": ctx.style.chat,
        "examples": adapted.examples})
    return adapted
