"""What a run hands to people and other tools, read from its run directory; none of it changes a run.

`report.py` (the self-contained HTML report: plots per round, every question's paths; each plug-in's own
section), `tracking.py` (metrics to TensorBoard, Weights & Biases, MLflow: `run.report_to`), `export.py`
(a run's final weights as one checkpoint with a model card), `gguf_export.py` (the same as a GGUF file,
through llama.cpp's converter), `publish.py` (kept examples or the model to the Hugging Face Hub).
"""
