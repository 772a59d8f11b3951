# Two commands do all set-up from a fresh clone:  make demo  and  make test.
# Each creates (or reuses) the virtual environment .venv, installs torch first
# (pinned to the local CPU wheel, unless a torch is already importable), then gnnkit.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_PIN ?= torch==2.13.0
STAMP := $(VENV)/.gnnkit-installed

RUNS ?= 3

.PHONY: setup demo test lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@if [ ! -x $(PY) ]; then \
	  if $(PYTHON) -c "import torch" >/dev/null 2>&1; then \
	    echo "torch found in $(PYTHON): the venv reuses it (--system-site-packages)"; \
	    $(PYTHON) -m venv --system-site-packages $(VENV); \
	  else \
	    $(PYTHON) -m venv $(VENV); \
	  fi; \
	fi
	@if ! $(PY) -c "import torch" >/dev/null 2>&1; then \
	  echo "installing $(TORCH_PIN) first"; \
	  $(PY) -m pip install -q "$(TORCH_PIN)"; \
	fi
	$(PY) -m pip install -q -e ".[test]"
	@touch $(STAMP)

# The main job: 2-layer GCN on Cora, gnnkit and PyG side by side (accuracy, epoch time, step
# peak memory), 3 runs (about 20-40 s after set-up on 2 cores).  The 10-run table:  make demo RUNS=10
demo: setup
	$(VENV)/bin/gnnkit train --dataset Cora --model gcn --runs $(RUNS)

# The whole test suite, in one pytest-xdist worker per core (TEST_WORKERS=0: one process).  On the
# 2-core machine 2 workers took 11 min where one took 19 (2026-12-03, a slow day of the VM).
TEST_WORKERS ?= auto
test: setup
	$(PY) -m pytest -q -n $(TEST_WORKERS)

# ruff: lint (pycodestyle, pyflakes) and import order, configured in pyproject.toml.
lint: setup
	$(VENV)/bin/ruff check gnnkit kernels tests benchmarks

# The CPU benchmarks behind the README's speed and memory claims (JSON + plots in
# benchmarks/results/): compiled vs eager layers (gnnkit's, then gnnkit's beside PyG's and a plain Linear), then
# layers vs PyG on Cora, on MUTAG mini-batches, on the arxiv-like graph and on graphs of extreme shapes.
# Long: tens of minutes.
bench: setup
	$(PY) benchmarks/layers_compile.py
	$(PY) benchmarks/compile_peers.py
	$(PY) benchmarks/cora_layers.py
	$(PY) benchmarks/minibatch_layers.py
	$(PY) benchmarks/layers_speed.py
	$(PY) benchmarks/layers_shapes.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
