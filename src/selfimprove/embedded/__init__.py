"""The embedded demo: a tiny model, trained here from scratch, that improves itself without labels.

`train_base` builds a word-level tokenizer and a tiny Llama and trains it, deterministically, on a
labelled seed set of easy arithmetic word problems plus a few hard ones (`assets/base/` holds the
result). `demo` runs the self-improvement loop on unlabeled hard problems and reports the gain.
"""
