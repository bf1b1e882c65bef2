"""A real transformers backend that also keeps every prompt it was asked to complete (and what it
answered), for tests that check what a plug-in showed the model and what came back (config:
`generate.backend: recording:prompt_recording_backend`)."""

PROMPTS = []  # every prompt the recording backend was asked to complete
ANSWERS = []  # (prompt, [completion texts]) for each of them, in the same order


def prompt_recording_backend(model, generate, **options):
    from selfimprove.backends.transformers import TransformersBackend

    class Recording(TransformersBackend):
        def generate(self, prompts, params, weights, progress=None):
            PROMPTS.extend(prompts)
            outs = super().generate(prompts, params, weights, progress)
            ANSWERS.extend((p, [c.text for c in completions]) for p, completions in zip(prompts, outs))
            return outs

    return Recording(model, generate, **options)
