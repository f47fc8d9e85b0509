# Two commands from a fresh clone: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo lint test test-fast bench bench-real-data bench-engines clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[all,test]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/keras-transformer demo --run-dir runs/demo --export-dir saved_models

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

bench: $(STAMP)
	$(PY) benchmarks/train_throughput.py
	$(PY) benchmarks/decode_latency.py
	$(PY) benchmarks/pipeline.py
	$(PY) benchmarks/export_latency.py
	$(PY) benchmarks/distribute_throughput.py
	$(PY) benchmarks/chaos.py
	$(PY) benchmarks/hostile_inputs.py

# The library against a plain PyTorch script on real text, 30 minutes of training each,
# English-French and English-Spanish: about two and a half hours.
bench-real-data: $(STAMP)
	$(PY) -m pip install --quiet -e ".[bench]"
	$(PY) benchmarks/real_data.py

# Our exported runtimes beside CTranslate2, the same weights, each in its own process.
bench-engines: $(STAMP)
	$(PY) -m pip install --quiet -e ".[bench]"
	$(PY) benchmarks/engines.py

clean:
	rm -rf $(VENV) runs build *.egg-info
