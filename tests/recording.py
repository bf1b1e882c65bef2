"""A real transformers backend that also keeps every prompt it was asked to complete, for tests that
check what a plug-in showed the model (config: `generate.backend: recording:prompt_recording_backend`)."""

PROMPTS = []  # every prompt the recording backend was asked to complete


def prompt_recording_backend(model, generate, **options):
    from selfimprove.backends.transformers import TransformersBackend

    class Recording(TransformersBackend):
        def generate(self, prompts, params, weights, progress=None):
            PROMPTS.extend(prompts)
            return super().generate(prompts, params, weights, progress)

    return Recording(model, generate, **options)
