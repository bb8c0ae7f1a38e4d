# Quick start:  `make demo` (short M3PO training, writes logs/m3po/HalfCheetahFwdBwd-v0_N/)  and  `make test` (the test suite).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-learning docs-check benchmark clean

$(STAMP): setup.cfg pyproject.toml .ci/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c .ci/constraints.txt -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) examples/demo.py

test: $(STAMP)
	$(PY) -m pytest -n 2 -q

# The learning guard: M2PO and M3PO on Pendulum-v1, three seeds each (about 20 minutes on 2 cores).
test-learning: $(STAMP)
	M3PO_LEARNING_SEEDS=0,1,2 $(PY) -m pytest -n 2 -q -rP -m learning tests/test_learning.py

# The result tables of benchmarks/README.md and README.md against the committed run folders (fails if stale;
# `$(PY) benchmarks/results_page.py` regenerates them).
docs-check: $(STAMP)
	$(PY) benchmarks/results_page.py --check

clean:
	rm -rf $(VENV) logs runs build dist *.egg-info
